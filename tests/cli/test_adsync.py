"""opsbook adsync check through cli.app.main: options, bad input (exit 3), output, build_report."""

from __future__ import annotations

import json
import socket

import pytest

from tests.helpers import run_main


def test_help_lists_options_and_examples(capsys) -> None:
    r = run_main(capsys, "adsync", "check", "--help")
    assert r.code == 0
    for option in (
        "--domain",
        "--dns",
        "--dc",
        "--ports",
        "--timeout",
        "--resolve",
        "--graph",
        "--tenant-id",
        "--client-id",
        "--client-secret-file",
        "--client-cert",
        "--authority-host",
        "--graph-endpoint",
        "--max-sync-age",
        "--max-password-sync-age",
        "--format",
        "--textfile",
    ):
        assert option in r.out
    assert "Examples:" in r.out and "opsbook adsync check --domain" in r.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dns", "127.0.0.1"], "--domain"),
        (["--domain", "corp.test", "--dns", "dns.example.test"], "IP address"),
        (["--domain", "corp.test", "--dns", "127.0.0.1", "--dns", "127.0.0.1:53"], "twice"),
        (["--domain", "corp test", "--dns", "127.0.0.1"], "invalid --domain"),
        (["--domain", "corp.test", "--dns", "127.0.0.1", "--ports", "389/sctp"], "tcp or udp"),
        (["--domain", "corp.test", "--dns", "127.0.0.1", "--resolve", "dc1:notanip"], "--resolve"),
        (["--domain", "corp.test", "--dns", "127.0.0.1", "--tenant-id", "t"], "need --graph"),
        (
            [
                "--domain",
                "corp.test",
                "--dns",
                "127.0.0.1",
                "--graph",
                "--tenant-id",
                "contoso.onmicrosoft.com",
                "--client-id",
                "abc",
                "--max-sync-age",
                "3",
            ],
            "unit",
        ),
        (["--domain", "corp.test", "--dns", "[::1"], "]"),
        (["--domain", "corp.test", "--dns", "127.0.0.1:abc"], "invalid port in '127.0.0.1:abc'"),
        (["--domain", "corp.test", "--dns", "[::1]:70000"], "expected 1-65535"),
        (["--domain", "corp.test", "--dns", "::1", "--dns", "[::1]:53"], "given twice"),
        (["--domain", "corp.test", "--dns", "[::1]:5353", "--dns", "[::1]:5353"], "given twice"),
        (["--domain", "corp.test", "--dns", "127.0.0.1", "--ports", "88/sctp"], "protocol must be tcp or udp"),
        (["--domain", "corp.test", "--dns", "127.0.0.1", "--ports", "70000/tcp"], "ports are 1-65535"),
        (["--domain", "corp.test", "--dns", "127.0.0.1", "--ports", "0/udp"], "ports are 1-65535"),
        (["--domain", "corp.test", "--dns", "127.0.0.1", "--ports", "389-88/tcp"], "ranges FIRST-LAST"),
        (["--domain", "corp.test", "--dns", "127.0.0.1", "--ports", ","], "--ports is empty"),
        (["--domain", "", "--dns", "127.0.0.1"], "--domain is empty"),
        (["--domain", " . ", "--dns", "127.0.0.1"], "--domain is empty"),
        (["--domain", "a\u200db.test", "--dns", "127.0.0.1"], "not a valid internationalised domain name"),
        (["--domain", "corp..test", "--dns", "127.0.0.1"], "invalid --domain"),
        (["--domain", "corp.test", "--dns", "127.0.0.1", "--dc", "dc 1"], "invalid --dc"),
        (["--domain", "corp.test", "--dns", "127.0.0.1", "--timeout", "0"], "--timeout"),
        (["--domain", "corp.test", "--dns", "127.0.0.1", "--timeout", "-1"], "--timeout"),
        (["--domain", "corp.test", "--dns", "127.0.0.1", "--timeout", "abc"], "--timeout"),
        (["--domain", "corp.test", "--dns", "127.0.0.1", "-f", "xml"], "--format"),
    ],
)
def test_bad_input_exits_3_with_one_line(capsys, args: list[str], message: str) -> None:
    r = run_main(capsys, "adsync", "check", *args)
    assert r.code == 3
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("opsbook: error: "), r.err
    assert message in lines[0]
    assert "Traceback" not in r.err and r.out == ""


def test_idn_and_trailing_dot_domain_are_asked_in_a_label_form(capsys) -> None:
    """``--domain Bücher.TEST.`` asks for xn--bcher-kva.test (as Windows 8+ sends IDN names), and finds its DC."""
    from tests.e2e.dnsmasq_peer import ZoneServer, ad_records

    domain = "xn--bcher-kva.test"
    with (
        ZoneServer("127.0.10.42", ad_records(domain, {f"dc1.{domain}": "127.0.20.42"})) as dns,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as dc,
    ):
        dc.bind(("127.0.20.42", 0))
        dc.listen(8)
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            "Bücher.TEST.",
            "--dns",
            dns.label,
            "--ports",
            f"{dc.getsockname()[1]}/tcp",
            "--timeout",
            "1",
            "-f",
            "json",
        )
    assert r.code == 0, r.out + r.err
    doc = json.loads(r.out)
    targets = {c["target"] for c in doc["checks"]}
    assert {domain, f"dc1.{domain}"} <= targets
    assert (domain, "A") in dns.queries and (f"_ldap._tcp.dc._msdcs.{domain}", "SRV") in dns.queries
    assert all(name.isascii() for name, _ in dns.queries)


def test_graph_without_credential_is_refused_before_any_output(capsys) -> None:
    r = run_main(
        capsys,
        "adsync",
        "check",
        "--domain",
        "corp.test",
        "--dns",
        "127.0.10.99:5353",
        "--dc",
        "127.0.10.99",
        "--ports",
        "1/tcp",
        "--timeout",
        "0.2",
        "--graph",
        "--tenant-id",
        "contoso.onmicrosoft.com",
        "--client-id",
        "00000000-0000-0000-0000-000000000000",
    )
    assert r.code == 3
    assert "no client credential" in r.err


def test_dead_only_server_json_and_prometheus(capsys, tmp_path) -> None:
    # A bound UDP socket that never answers: the only DNS server is dead -> CRITICAL.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dead:
        dead.bind(("127.0.10.98", 0))
        port = dead.getsockname()[1]
        textfile = tmp_path / "adsync.prom"
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            "corp.test",
            "--dns",
            f"127.0.10.98:{port}",
            "--dc",
            "127.0.10.98",
            "--ports",
            "1/tcp",
            "--timeout",
            "0.3",
            "-f",
            "json",
            "--textfile",
            str(textfile),
        )
    assert r.code == 2
    doc = json.loads(r.out)
    assert doc["command"] == "adsync check" and doc["status"] == "CRITICAL"
    by_id = {(c["id"], c["target"]): c for c in doc["checks"]}
    failover = by_id[("adsync.dns.failover", "corp.test")]
    assert failover["status"] == "CRITICAL" and "no DNS server answers" in failover["summary"]
    assert by_id[("adsync.dc.ports", "127.0.10.98")]["details"]["ports"][0]["state"] == "closed"
    assert 'check="adsync.dns.failover"' in textfile.read_text()


def test_build_report_is_callable_with_option_names() -> None:
    from opsbook.cli.commands.adsync import build_report
    from opsbook.runbooks.errors import InputError

    with pytest.raises(InputError):
        build_report(domain="corp.test", dns=["127.0.0.1"], ports="")


def test_graph_wiring_secret_file_and_thresholds(capsys, monkeypatch, tmp_path) -> None:
    """--graph end to end through the CLI against the loopback fake of Entra ID + Graph."""
    from tests.fake_graph import FakeGraph, Scenario, graph_network
    from tests.tlspeers import TestCA

    ca = TestCA("adsync cli fake Entra CA")
    ca_path = str(ca.write(tmp_path / "ca"))
    scenario = Scenario(last_sync_age=2 * 3600, password_sync_age=60)
    with (
        graph_network(monkeypatch, ca_path) as proxy,
        FakeGraph(ca, scenario) as fake,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dead,
    ):
        dead.bind(("127.0.10.96", 0))
        secret_file = tmp_path / "secret"
        secret_file.write_text(scenario.client_secret + "\n")
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            "corp.test",
            "--dns",
            f"127.0.10.96:{dead.getsockname()[1]}",
            "--dc",
            "127.0.10.96",
            "--ports",
            "1/tcp",
            "--timeout",
            "0.3",
            "-f",
            "json",
            "--graph",
            "--tenant-id",
            scenario.tenant_id,
            "--client-id",
            scenario.client_id,
            "--client-secret-file",
            str(secret_file),
            "--authority-host",
            fake.authority_host,
            "--graph-endpoint",
            fake.graph_endpoint,
            "--max-sync-age",
            "1h,3h",
        )
        assert proxy.targets == []
    doc = json.loads(r.out)
    by_id = {c["id"]: c for c in doc["checks"]}
    assert by_id["adsync.graph.token"]["status"] == "OK", by_id["adsync.graph.token"]["summary"]
    assert by_id["adsync.graph.last_sync"]["status"] == "WARNING"  # 2 h old: above 1 h, below 3 h
    assert by_id["adsync.graph.last_password_sync"]["status"] == "OK"
    assert "adsync.dns.failover" in by_id  # DNS checks and Graph checks in one report
    assert scenario.client_secret not in r.out + r.err


def test_runbook_document_covers_the_graph_check(capsys) -> None:
    r = run_main(capsys, "runbooks", "show", "adsync")
    assert r.code == 0
    section = r.out.split("Tenant sync freshness through Microsoft Graph", 1)[1].split("Rollback", 1)[0]
    for needle in (
        "Organization.Read.All",
        "not *Delegated*",
        "admin consent",
        "onPremisesLastSyncDateTime",
        "onPremisesLastPasswordSyncDateTime",
        "beta",
        "--client-cert",
        "OPSBOOK_GRAPH_CLIENT_SECRET",
        "--max-sync-age",
        "--max-password-sync-age",
        "Connect Health",
        "REQUESTS_CA_BUNDLE",
    ):
        assert needle in section, needle


def test_unwritable_textfile_is_refused_before_any_query(capsys, tmp_path) -> None:
    from tests.e2e.dnsmasq_peer import ZoneServer

    with ZoneServer("127.0.10.43") as dns:
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            "corp.test",
            "--dns",
            dns.label,
            "--dc",
            "127.0.0.1",
            "--ports",
            "1/tcp",
            "--timeout",
            "0.3",
            "-f",
            "prometheus",
            "--textfile",
            str(tmp_path / "missing" / "adsync.prom"),
        )
    assert r.code == 3 and r.out == ""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("opsbook: error: cannot write --textfile"), r.err
    assert "does not exist" in lines[0]
    assert dns.queries == []
