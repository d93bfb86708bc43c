"""``opsbook adsync check --graph`` through the real command, against the loopback fake of Entra ID + Graph.

The DNS side is a healthy Python zone server and one listening "DC" port, so the exit code
is decided by the Graph checks alone. TLS to the fake is trusted only through
``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE`` (as the contract says); a refusing proxy records
any attempt to leave loopback.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.dnsmasq_peer import ZoneServer, ad_records
from tests.fake_graph import FakeGraph, ProxyRecorder, Scenario, graph_network
from tests.helpers import Result, run_cli, run_main
from tests.tlspeers import TestCA

DOMAIN = "corp.test"
DC_NAME, DC_IP = "dc1.corp.test", "127.0.20.41"
GRAPH_IDS = (
    "adsync.graph.token",
    "adsync.graph.sync_enabled",
    "adsync.graph.last_sync",
    "adsync.graph.last_password_sync",
)


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA("adsync CLI fake Entra CA")


@pytest.fixture
def ca_path(ca: TestCA, tmp_path: Path) -> str:
    return str(ca.write(tmp_path / "ca"))


@dataclass
class Lab:
    """The healthy DNS server, the DC port, the fake tenant and the recording proxy."""

    dns: ZoneServer
    dc_port: int
    fake: FakeGraph
    proxy: ProxyRecorder

    def args(self, *graph: str, fmt: str = "json") -> list[str]:
        """``adsync check`` arguments: the DNS part, then ``--graph`` with the fake's ids and *graph*."""
        sc = self.fake.scenario
        return [
            "adsync",
            "check",
            "--domain",
            DOMAIN,
            "--dns",
            self.dns.label,
            "--ports",
            f"{self.dc_port}/tcp",
            "--timeout",
            "1",
            "-f",
            fmt,
            "--graph",
            "--tenant-id",
            sc.tenant_id,
            "--client-id",
            sc.client_id,
            "--authority-host",
            self.fake.authority_host,
            "--graph-endpoint",
            self.fake.graph_endpoint,
            *graph,
        ]

    def secrets(self) -> list[str]:
        """Everything that must never be printed: the client secret and every token issued."""
        return [self.fake.scenario.client_secret, *self.fake.issued_tokens]


def _lab(ca: TestCA, scenario: Scenario, monkeypatch: pytest.MonkeyPatch, ca_path: str | None) -> Iterator[Lab]:
    with (
        graph_network(monkeypatch, ca_path) as proxy,
        FakeGraph(ca, scenario) as fake,
        ZoneServer("127.0.10.41", ad_records(DOMAIN, {DC_NAME: DC_IP})) as dns,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as dc,
    ):
        dc.bind((DC_IP, 0))
        dc.listen(16)
        monkeypatch.delenv("OPSBOOK_GRAPH_CLIENT_SECRET", raising=False)
        monkeypatch.delenv("OPSBOOK_FORMAT", raising=False)
        yield Lab(dns, dc.getsockname()[1], fake, proxy)


@pytest.fixture
def scenario() -> Scenario:
    return Scenario()


@pytest.fixture
def lab(ca: TestCA, scenario: Scenario, monkeypatch: pytest.MonkeyPatch, ca_path: str) -> Iterator[Lab]:
    yield from _lab(ca, scenario, monkeypatch, ca_path)


def checks(r: Result) -> dict[str, dict]:
    doc = json.loads(r.out)
    return {c["id"]: c for c in doc["checks"]}


def assert_no_secret(lab: Lab, *texts: str) -> None:
    blob = "\n".join(texts)
    for value in lab.secrets():
        assert value not in blob
    assert "Bearer" not in blob and "eyJ0eXAiOiJKV1Qi" not in blob


def test_secret_from_env_fresh_tenant_is_ok(
    lab: Lab, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSBOOK_GRAPH_CLIENT_SECRET", lab.fake.scenario.client_secret)
    r = run_main(capsys, *lab.args())
    assert r.code == 0, r.out + r.err
    by_id = checks(r)
    for check_id in GRAPH_IDS:
        assert by_id[check_id]["status"] == "OK", by_id[check_id]["summary"]
    assert by_id["adsync.graph.token"]["details"]["credential"] == "client secret"
    assert by_id["adsync.graph.last_sync"]["summary"].startswith("last directory sync 10m")
    assert "beta" in by_id["adsync.graph.last_password_sync"]["name"]
    assert by_id["adsync.dns.failover"]["status"] == "OK"  # DNS and Graph in one report
    assert len(lab.fake.issued_tokens) == 1
    assert {"/v1.0/organization", "/beta/organization"} <= set(lab.fake.paths())
    assert lab.proxy.targets == []  # no instance discovery, nothing left loopback
    assert_no_secret(lab, r.out, r.err)


@pytest.mark.parametrize(
    ("option", "value", "limits", "sync_age", "status", "code"),
    [
        ("--max-sync-age", "3h", (10800, 10800), 2 * 3600, "OK", 0),
        ("--max-sync-age", "90m", (5400, 10800), 2 * 3600, "WARNING", 1),  # WARN alone: CRIT stays at 3 h
        ("--max-sync-age", "1h,3h", (3600, 10800), 2 * 3600, "WARNING", 1),
        ("--max-sync-age", "30m,1h30m", (1800, 5400), 2 * 3600, "CRITICAL", 2),
        ("--max-sync-age", "4h", (14400, 14400), 5 * 3600, "CRITICAL", 2),  # WARN above 3 h: CRIT = WARN
        ("--max-password-sync-age", "1h", (3600, 10800), 30 * 60, "OK", 0),
        ("--max-password-sync-age", "20m", (1200, 10800), 30 * 60, "WARNING", 1),
        ("--max-password-sync-age", "10m,20m", (600, 1200), 30 * 60, "CRITICAL", 2),
    ],
)
def test_thresholds_with_secret_file(
    ca: TestCA,
    ca_path: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    limits: tuple[int, int],
    sync_age: float,
    status: str,
    code: int,
) -> None:
    password = option == "--max-password-sync-age"
    scenario = Scenario(last_sync_age=60 if password else sync_age, password_sync_age=sync_age if password else 60)
    for lab in _lab(ca, scenario, monkeypatch, ca_path):
        secret_file = tmp_path / "secret"
        secret_file.write_text(scenario.client_secret + "\n")
        secret_file.chmod(0o600)  # a group/world-readable secret file is a WARNING of its own
        r = run_main(capsys, *lab.args("--client-secret-file", str(secret_file), option, value))
        assert r.code == code, r.out + r.err
        by_id = checks(r)
        judged = by_id["adsync.graph.last_password_sync" if password else "adsync.graph.last_sync"]
        other = by_id["adsync.graph.last_sync" if password else "adsync.graph.last_password_sync"]
        assert judged["status"] == status, judged["summary"]
        assert other["status"] == "OK"
        assert json.loads(r.out)["status"] == status
        assert judged["metrics"]["age"] == pytest.approx(sync_age, abs=30)
        assert (judged["details"]["warn_s"], judged["details"]["crit_s"]) == limits
        if status != "OK":
            assert "warning above" in judged["summary"] and "check the ADSync service" in judged["summary"]
        assert_no_secret(lab, r.out, r.err)


def test_nagios_perfdata_carries_the_thresholds(
    lab: Lab, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSBOOK_GRAPH_CLIENT_SECRET", lab.fake.scenario.client_secret)
    lab.fake.scenario.last_sync_age = 2 * 3600
    r = run_main(capsys, *lab.args("--max-sync-age", "90m,3h", fmt="nagios"))
    assert r.code == 1, r.out
    first = r.out.splitlines()[0]
    assert first.startswith("OPSBOOK WARNING - ")
    assert ";5400;10800;0" in first  # 'age'=7200s;WARN;CRIT;min in seconds
    assert any("last directory sync" in line for line in r.out.splitlines()[1:])
    assert_no_secret(lab, r.out, r.err)


def test_client_certificate_instead_of_a_secret(
    lab: Lab, ca: TestCA, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leaf = ca.issue("opsbook-adsync-cli", names=[], eku=["client"])
    lab.fake.scenario.client_cert = leaf
    pem = tmp_path / "app.pem"
    pem.write_bytes(leaf.key_pem + leaf.cert_pem)
    pem.chmod(0o600)
    r = run_main(capsys, *lab.args("--client-cert", str(pem)))
    assert r.code == 0, r.out + r.err
    token = checks(r)["adsync.graph.token"]
    assert token["status"] == "OK"
    assert token["details"]["credential"] == "certificate"
    assert token["details"]["certificate_thumbprint"] == leaf.thumbprint
    sent = lab.fake.token_requests[-1]
    assert "client_assertion" in sent and "client_secret" not in sent
    key_body = leaf.key_pem.decode().splitlines()[1]
    assert key_body not in r.out + r.err
    assert_no_secret(lab, r.out, r.err)


@pytest.mark.parametrize("fmt", ["json", "table", "nagios", "junit", "prometheus"])
def test_no_secret_or_token_in_any_format_even_when_echoed(
    lab: Lab, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # The authority echoes the (wrong) secret it was sent; Graph echoes the token it got.
    sc = lab.fake.scenario
    sc.echo_secret_in_error = True
    wrong = "Wr0ng~secret.value-27182818284590452353"
    monkeypatch.setenv("OPSBOOK_GRAPH_CLIENT_SECRET", wrong)
    r = run_main(capsys, *lab.args(fmt=fmt))
    assert r.code == 3, r.out  # token UNKNOWN, DNS OK: the worst is UNKNOWN
    if fmt == "prometheus":  # no summaries there: the token check's status is the signal
        assert any(
            line.startswith("opsbook_check_status{") and 'check="adsync.graph.token"' in line and line.endswith(" 3")
            for line in r.out.splitlines()
        ), r.out
    else:
        assert "client secret is wrong or expired" in r.out
    assert wrong not in r.out + r.err
    # And with the right secret, Graph errors that echo the bearer token are scrubbed too.
    sc.echo_token_in_error, sc.beta_status = True, 403
    monkeypatch.setenv("OPSBOOK_GRAPH_CLIENT_SECRET", sc.client_secret)
    r = run_main(capsys, *lab.args(fmt=fmt))
    assert r.code == 3, r.out  # beta forbidden: password sync UNKNOWN
    assert fmt == "prometheus" or "Organization.Read.All" in r.out
    assert_no_secret(lab, r.out, r.err)


def test_ssl_cert_file_alone_is_trusted_in_a_real_process(
    ca: TestCA, ca_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for lab in _lab(ca, Scenario(), monkeypatch, None):  # REQUESTS_CA_BUNDLE unset
        sc = lab.fake.scenario
        r = run_cli(*lab.args(), env={"SSL_CERT_FILE": ca_path, "OPSBOOK_GRAPH_CLIENT_SECRET": sc.client_secret})
        assert r.code == 0, r.out + r.err
        assert checks(r)["adsync.graph.token"]["status"] == "OK"
        assert_no_secret(lab, r.out, r.err)
        # Without any CA variable the fake is not trusted: UNKNOWN with the hint, never verify=False.
        r = run_cli(*lab.args(), env={"OPSBOOK_GRAPH_CLIENT_SECRET": sc.client_secret})
        assert r.code == 3, r.out + r.err
        assert "REQUESTS_CA_BUNDLE" in checks(r)["adsync.graph.token"]["summary"]


@pytest.mark.parametrize(
    ("drop", "extra", "message"),
    [
        ("--tenant-id", [], "--tenant-id is required"),
        ("--client-id", [], "--client-id is required"),
        (None, ["--max-sync-age", "3"], "has no unit"),
        (None, ["--max-sync-age", "abc"], "invalid duration"),
        (None, ["--max-password-sync-age", "3h,1h"], "below the warning age"),
        (None, ["--max-sync-age", "1h,2h,3h"], "WARN,CRIT"),
        (None, ["--max-sync-age", "0m"], "greater than zero"),
        (None, ["--authority-host", "http://127.0.0.1:1"], "must be an https:// URL"),
        (None, ["--graph-endpoint", "https://127.0.0.1:1/v1.0"], "scheme and host only"),
        (None, ["--graph-endpoint", "https://[::1"], "is not a valid URL"),
        (None, ["--authority-host", "https://[fe80::1"], "is not a valid URL"),
        (None, ["--authority-host", "https://127.0.0.1:99999"], "invalid port"),
        (None, ["--tenant-id", "common"], "is not a tenant"),
        ("secret", [], "no client credential"),
        (None, ["--client-cert", "/nonexistent/app.pem"], "cannot read --client-cert"),
        (None, ["--client-secret-file", "/nonexistent/secret"], "cannot read secret file"),
        (None, ["--client-secret-file", "EMPTY"], "is empty"),
        (None, ["--client-cert", "KEYLESS"], "holds no private key"),
    ],
)
def test_bad_input_is_one_line_exit_3_before_any_traffic(
    lab: Lab,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    drop: str | None,
    extra: list[str],
    message: str,
) -> None:
    if drop != "secret":
        monkeypatch.setenv("OPSBOOK_GRAPH_CLIENT_SECRET", lab.fake.scenario.client_secret)
    (tmp_path / "EMPTY").write_text("\n")
    (tmp_path / "KEYLESS").write_bytes(lab.fake.leaf.cert_pem)
    extra = [str(tmp_path / e) if e in ("EMPTY", "KEYLESS") else e for e in extra]
    args = lab.args(*extra)
    if drop in ("--tenant-id", "--client-id"):
        i = args.index(drop)
        del args[i : i + 2]
    r = run_main(capsys, *args)
    assert r.code == 3, r.out + r.err
    assert r.out == ""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("opsbook: error: "), r.err
    assert message in lines[0]
    assert "Traceback" not in r.err
    # Refused before any traffic: no DNS query, no HTTPS request, nothing through the proxy.
    assert lab.dns.queries == []
    assert lab.fake.requests == []
    assert lab.proxy.targets == []
    assert_no_secret(lab, r.out, r.err)


def test_graph_options_without_graph_are_refused(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    r = run_main(
        capsys, "adsync", "check", "--domain", DOMAIN, "--dns", lab.dns.label, "--client-secret-file", "/etc/hostname"
    )
    assert r.code == 3 and "need --graph" in r.err
    assert lab.dns.queries == []


def test_secret_file_readable_by_others_warns(
    ca: TestCA,
    ca_path: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scenario = Scenario()
    for lab in _lab(ca, scenario, monkeypatch, ca_path):
        secret_file = tmp_path / "secret"
        secret_file.write_text(scenario.client_secret + "\n")
        secret_file.chmod(0o644)
        r = run_main(capsys, *lab.args("--client-secret-file", str(secret_file)))
        warning = checks(r)["adsync.graph.secret_file"]
        assert warning["status"] == "WARNING"
        assert "readable by group and others" in warning["summary"] and "chmod 600" in warning["summary"]
        assert scenario.client_secret not in r.out + r.err
        assert checks(r)["adsync.graph.last_sync"]["status"] == "OK"  # the check itself still ran
        secret_file.chmod(0o600)
        r = run_main(capsys, *lab.args("--client-secret-file", str(secret_file)))
        assert "adsync.graph.secret_file" not in checks(r)


def test_client_id_must_be_a_guid_before_any_traffic(capsys: pytest.CaptureFixture[str]) -> None:
    r = run_main(
        capsys,
        "adsync",
        "check",
        "--domain",
        "corp.test",
        "--dns",
        "127.0.0.1:1",
        "--graph",
        "--tenant-id",
        "contoso.onmicrosoft.com",
        "--client-id",
        "my-app",
        "--client-cert",
        "/etc/hostname",
    )
    assert r.code == 3
    assert "invalid --client-id 'my-app': expected the application (client) id GUID" in r.err
    assert "Traceback" not in r.err
