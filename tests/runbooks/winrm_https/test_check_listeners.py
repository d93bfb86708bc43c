"""``winrm check`` against real TLS listeners on loopback (certificates from a test CA)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsbook.runbooks.errors import InputError
from opsbook.runbooks.model import Metric, Status
from opsbook.runbooks.probes import HostPort, PortState, parse_resolve
from opsbook.runbooks.probes.tls import TlsProbe
from opsbook.runbooks.winrm_https.check import (
    DEPENDENT_CHECKS,
    CheckOptions,
    _tcp_result,
    check_host,
    parse_targets,
    presented_certificate,
    read_hosts_file,
    run_check,
    wire_name,
)
from tests.tlspeers import HangServer, TestCA, TlsServer, days_from_now, free_port, make_leaf, server_context

HOST = "srv1.corp.test"


@pytest.fixture(scope="module")
def corp_ca() -> TestCA:
    return TestCA("Corp Issuing CA")


@pytest.fixture(scope="module")
def ca_file(corp_ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(corp_ca.write(tmp_path_factory.mktemp("winrm-check-ca")))


def by_id(results: list) -> dict[str, object]:
    return {r.id: r for r in results}


def run_one(server: TlsServer | HangServer, ca_file: str | None, host: str = HOST, **kw: object) -> dict:
    opts = CheckOptions(ca_file=ca_file, timeout=kw.pop("timeout", 2.0), **kw)  # type: ignore[arg-type]
    results = check_host(HostPort(host, server.port, server.host), opts)
    ids = [r.id for r in results]
    assert len(ids) == len(set(ids))
    assert {r.target for r in results} == {f"{host}:{server.port}"}
    return by_id(results)


@pytest.fixture
def serve(corp_ca: TestCA) -> Iterator:
    servers: list = []

    def start(kind: str = "valid", mode: str = "winrm", host: str = "127.0.0.1", **kw: object) -> TlsServer:
        srv = TlsServer(make_leaf(kind, corp_ca, HOST), mode=mode, host=host, **kw)  # type: ignore[arg-type]
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


def test_healthy_listener_is_ok_everywhere(serve, ca_file: str) -> None:
    srv = serve("valid")
    res = run_one(srv, ca_file, issuer="Corp Issuing")
    assert set(res) == {"winrm.tcp", "winrm.tls", *DEPENDENT_CHECKS}
    assert all(r.status is Status.OK for r in res.values()), {k: r.summary for k, r in res.items()}
    assert res["winrm.tls.version"].details["legacy_accepted"] is None
    assert res["winrm.wsman"].details["auth_schemes"] == ["Negotiate", "Kerberos"]
    assert srv.sni_seen == [HOST]  # SNI = the host name, even when connecting by --resolve address
    assert srv.requests[0].path == "/wsman" and "authorization" not in srv.requests[0].headers
    tls = res["winrm.tls"]
    assert len(tls.details["thumbprint"]) == 40
    days = res["winrm.cert.expiry"].metrics["days_left"]
    assert isinstance(days, Metric) and days.value in (364, 365) and (days.warn, days.crit) == (30, 7)


@pytest.mark.parametrize(
    ("kind", "failing", "status", "words"),
    [
        ("expired", "winrm.cert.expiry", Status.CRITICAL, "expired 5 days ago"),
        ("expiring", "winrm.cert.expiry", Status.WARNING, "expires in 10 days"),
        ("not_yet_valid", "winrm.cert.expiry", Status.CRITICAL, "not valid before"),
        ("wrong_ca", "winrm.cert.chain", Status.CRITICAL, "wrong CA"),
        ("self_signed", "winrm.cert.chain", Status.CRITICAL, "self-signed"),
        ("name_mismatch", "winrm.cert.name", Status.CRITICAL, "not srv1.corp.test"),
        ("client_eku", "winrm.cert.eku", Status.CRITICAL, "Client Authentication"),
        # Issue #12: verified only at SECLEVEL=0; Python's default context refuses them.
        ("sha1", "winrm.cert.signature", Status.CRITICAL, "SHA1"),
        ("weak_key", "winrm.cert.key", Status.CRITICAL, "1024"),
    ],
)
def test_each_certificate_problem_is_named(
    serve, ca_file: str, kind: str, failing: str, status: Status, words: str
) -> None:
    res = run_one(serve(kind), ca_file)
    assert res[failing].status is status
    assert words in res[failing].summary
    # The certificate is still fetched (non-verifying handshake) and the listener still probed.
    assert res["winrm.tls"].status is Status.OK
    assert res["winrm.wsman"].status is Status.OK
    if kind in ("expired", "not_yet_valid"):  # issue #12: one root cause, one CRITICAL (the dates)
        assert res["winrm.cert.chain"].status is Status.OK
        assert "validity dates aside" in res["winrm.cert.chain"].summary
        assert [k for k, r in res.items() if r.status is not Status.OK] == ["winrm.cert.expiry"]
    if kind in ("wrong_ca", "self_signed", "client_eku"):
        assert res["winrm.cert.chain"].status is Status.CRITICAL
        chain_reason = {
            "wrong_ca": "root CA that is not trusted (wrong CA)",
            "self_signed": "self-signed certificate",
            "client_eku": "lacks the Server Authentication EKU",
        }[kind]
        assert chain_reason in res["winrm.cert.chain"].summary
    if kind == "expired":  # the metric agrees with the summary ("expired 5 days ago")
        assert res["winrm.cert.expiry"].metrics["days_left"].value == -5
    if kind in ("sha1", "weak_key"):
        assert "clients refuse this certificate" in res[failing].summary
        _python_default_context_refuses(serve(kind).target, ca_file)
    if kind in ("sha1", "weak_key", "expiring", "name_mismatch"):
        assert res["winrm.cert.chain"].status is Status.OK  # trust is judged apart from strength


def test_chain_uses_the_system_store_without_ca_file(serve) -> None:
    res = run_one(serve("valid"), None)
    assert res["winrm.cert.chain"].status is Status.CRITICAL
    assert "system store" in res["winrm.cert.chain"].summary


def test_issuer_prefix_is_compared(serve, ca_file: str) -> None:
    res = run_one(serve("valid"), ca_file, issuer="Other Issuing")
    assert res["winrm.cert.issuer"].status is Status.CRITICAL
    assert "Corp Issuing CA" in res["winrm.cert.issuer"].summary


def test_thresholds_follow_options(serve, ca_file: str) -> None:
    res = run_one(serve("expiring"), ca_file, warn_days=60, crit_days=20)
    assert res["winrm.cert.expiry"].status is Status.CRITICAL
    res = run_one(serve("expiring"), ca_file, warn_days=5, crit_days=2)
    assert res["winrm.cert.expiry"].status is Status.OK


@pytest.mark.parametrize(
    ("mode", "status", "words"),
    [
        ("basic", Status.WARNING, "Basic authentication offered"),
        ("credssp", Status.WARNING, "CredSSP authentication offered"),
        ("identify", Status.OK, "IdentifyResponse: Microsoft Corporation"),
        ("https", Status.CRITICAL, "not a WinRM listener: HTTP 200 OK from nginx"),
    ],
)
def test_wsman_probe(serve, ca_file: str, mode: str, status: Status, words: str) -> None:
    res = run_one(serve("valid", mode=mode), ca_file)
    assert res["winrm.wsman"].status is status
    assert words in res["winrm.wsman"].summary


@pytest.mark.parametrize(
    ("version", "status"),
    [
        (ssl.TLSVersion.TLSv1, Status.WARNING),
        (ssl.TLSVersion.TLSv1_1, Status.WARNING),
        (ssl.TLSVersion.TLSv1_2, Status.OK),
    ],
)
def test_old_tls_versions_warn(corp_ca: TestCA, ca_file: str, version: ssl.TLSVersion, status: Status) -> None:
    ctx = server_context(make_leaf("valid", corp_ca, HOST), min_version=version, max_version=version)
    with TlsServer(context=ctx) as srv:
        res = run_one(srv, ca_file)
    assert res["winrm.tls.version"].status is status
    assert (
        res["winrm.tls.version"].details["version"]
        == {ssl.TLSVersion.TLSv1: "TLSv1", ssl.TLSVersion.TLSv1_1: "TLSv1.1", ssl.TLSVersion.TLSv1_2: "TLSv1.2"}[
            version
        ]
    )
    assert res["winrm.cert.chain"].status is Status.OK


@pytest.mark.parametrize(
    ("minimum", "maximum", "negotiated", "accepted", "words"),
    [
        # Issue #12: a server that still takes TLS 1.0 is reported as TLS 1.0 (not the 1.1 it prefers).
        (
            ssl.TLSVersion.TLSv1,
            ssl.TLSVersion.MAXIMUM_SUPPORTED,
            "TLSv1.3",
            ["TLSv1", "TLSv1.1"],
            "TLSv1.3 negotiated, but TLS 1.0 and TLS 1.1 are still accepted",
        ),
        (
            ssl.TLSVersion.TLSv1_1,
            ssl.TLSVersion.MAXIMUM_SUPPORTED,
            "TLSv1.3",
            ["TLSv1.1"],
            "TLSv1.3 negotiated, but TLS 1.1 is still accepted",
        ),
        (
            ssl.TLSVersion.TLSv1,
            ssl.TLSVersion.TLSv1_1,
            "TLSv1.1",
            ["TLSv1"],
            "TLS 1.1 negotiated: obsolete, and TLS 1.0 is still accepted",
        ),
    ],
)
def test_legacy_protocols_still_enabled_warn(
    corp_ca: TestCA,
    ca_file: str,
    minimum: ssl.TLSVersion,
    maximum: ssl.TLSVersion,
    negotiated: str,
    accepted: list[str],
    words: str,
) -> None:
    ctx = server_context(make_leaf("valid", corp_ca, HOST), min_version=minimum, max_version=maximum)
    with TlsServer(context=ctx) as srv:
        res = run_one(srv, ca_file)
    version = res["winrm.tls.version"]
    assert version.status is Status.WARNING  # the severity old protocols had before (OLD_TLS)
    assert words in version.summary, version.summary
    assert version.details["version"] == negotiated
    assert version.details["legacy_accepted"] == accepted[0]  # the oldest one
    assert version.details["legacy_protocols"] == accepted


def test_expired_leaf_from_an_untrusted_ca_is_two_findings(ca_file: str) -> None:
    """Two root causes (wrong CA and expired) stay two CRITICAL findings."""
    other = TestCA("Some Other Root CA", slot=1)
    leaf = other.issue(HOST, not_before=days_from_now(-400), not_after=days_from_now(-5))
    with TlsServer(leaf) as srv:
        res = run_one(srv, ca_file)
    assert res["winrm.cert.expiry"].status is Status.CRITICAL
    chain = res["winrm.cert.chain"]
    assert chain.status is Status.CRITICAL and "wrong CA" in chain.summary, chain.summary


def test_expired_leaf_under_an_expired_intermediate_keeps_the_chain_finding(corp_ca: TestCA, ca_file: str) -> None:
    old = corp_ca.intermediate(
        "Corp Old Issuing CA", not_before=days_from_now(-900), not_after=days_from_now(-2), slot=8
    )
    with TlsServer(old.issue(HOST, not_before=days_from_now(-100), not_after=days_from_now(-1))) as srv:
        res = run_one(srv, ca_file)
    assert res["winrm.cert.expiry"].status is Status.CRITICAL
    chain = res["winrm.cert.chain"]
    assert chain.status is Status.CRITICAL and "a CA certificate in the chain is expired" in chain.summary


def test_never_handshaking_server_is_bounded_and_one_result(ca_file: str) -> None:
    with HangServer("127.0.0.1") as srv:
        start = time.monotonic()
        res = run_one(srv, ca_file, timeout=0.5)
        elapsed = time.monotonic() - start
    assert elapsed < 1.5
    assert set(res) == {"winrm.tcp", "winrm.tls"}
    assert res["winrm.tcp"].status is Status.OK
    assert res["winrm.tls"].status is Status.CRITICAL
    assert "no TLS handshake within 0.5s" in res["winrm.tls"].summary
    assert res["winrm.tls"].details["not_checked"] == list(DEPENDENT_CHECKS)


def test_closed_port_is_one_critical_result(ca_file: str) -> None:
    port = free_port()
    results = check_host(HostPort(HOST, port, "127.0.0.1"), CheckOptions(ca_file=ca_file, timeout=1))
    assert [r.id for r in results] == ["winrm.tcp"]
    assert results[0].status is Status.CRITICAL
    assert "refused" in results[0].summary
    assert results[0].details["state"] == "closed"


def test_plain_http_port_is_a_tls_failure(ca_file: str) -> None:
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        results = check_host(HostPort(HOST, port, "127.0.0.1"), CheckOptions(ca_file=ca_file, timeout=2))
    finally:
        thread.join(5)
        listener.close()
    res = by_id(results)
    assert res["winrm.tls"].status is Status.CRITICAL
    assert "does not speak TLS" in res["winrm.tls"].summary
    assert set(res) == {"winrm.tcp", "winrm.tls"}


def test_ip_target_matches_ip_san(corp_ca: TestCA, ca_file: str) -> None:
    leaf = corp_ca.issue("srv7.corp.test", names=["srv7.corp.test", "127.0.0.7"])
    with TlsServer(leaf, host="127.0.0.7") as srv:
        results = check_host(HostPort("127.0.0.7", srv.port), CheckOptions(ca_file=ca_file, timeout=2))
        assert srv.sni_seen == [None]  # no SNI for an address
    res = by_id(results)
    assert res["winrm.cert.name"].status is Status.OK
    assert "IP SAN 127.0.0.7" in res["winrm.cert.name"].summary


def test_presented_certificate_gives_the_windows_thumbprint(serve, ca_file: str, corp_ca: TestCA) -> None:
    leaf = make_leaf("expired", corp_ca, HOST)
    with TlsServer(leaf, host="127.0.0.3") as srv:
        info = presented_certificate(srv.target, timeout=2)
        verified = presented_certificate(HostPort(HOST, srv.port, srv.host), timeout=2, ca_file=ca_file)
    assert info is not None and verified is not None
    assert info.thumbprint == verified.thumbprint == leaf.thumbprint
    assert presented_certificate(f"127.0.0.1:{free_port()}", timeout=1) is None


def test_run_check_is_concurrent_and_keeps_order(serve, ca_file: str) -> None:
    servers = [serve("valid", host=f"127.0.0.{20 + i}") for i in range(4)]
    hangs = [HangServer(f"127.0.0.{30 + i}") for i in range(4)]
    try:
        targets = [HostPort(HOST, s.port, s.host) for s in [*hangs, *servers]]
        start = time.monotonic()
        report = run_check(targets, CheckOptions(ca_file=ca_file, timeout=1.0), concurrency=16)
        elapsed = time.monotonic() - start
    finally:
        for h in hangs:
            h.stop()
    assert elapsed < 2.0  # four hung handshakes in parallel, not one after another
    assert [c.target for c in report.checks if c.id == "winrm.tcp"] == [str(t) for t in targets]
    assert report.status is Status.CRITICAL
    assert sum(1 for c in report.checks if c.id == "winrm.tls" and c.status is Status.CRITICAL) == 4


def test_targets_and_hosts_file(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("# fleet\nsrv1.corp.test\n\nsrv2.corp.test:5999  # odd port\n[::1]:5986\n")
    names = read_hosts_file(hosts)
    assert names == ["srv1.corp.test", "srv2.corp.test:5999", "[::1]:5986"]
    targets = parse_targets([*names, "SRV1.corp.test"], 5986, {"srv1.corp.test": "127.0.0.5"})
    assert [str(t) for t in targets] == ["srv1.corp.test:5986", "srv2.corp.test:5999", "[::1]:5986"]
    assert targets[0].connect_host == "127.0.0.5"
    with pytest.raises(InputError, match="cannot read --hosts-file"):
        read_hosts_file(tmp_path / "missing.txt")


def test_hosts_file_from_windows_bom_crlf_comments_duplicates(tmp_path: Path) -> None:
    """Notepad / Out-File -Encoding utf8 write a BOM and CRLF: the first host must not become '\ufeff...'."""
    hosts = tmp_path / "fleet.txt"
    hosts.write_bytes(
        "\ufeff# WinRM fleet\r\nsrv1.corp.test\r\n  srv2.corp.test:5999  # odd port\r\n\r\nsrv1.corp.test\r\n".encode()
    )
    names = read_hosts_file(hosts)
    assert names == ["srv1.corp.test", "srv2.corp.test:5999", "srv1.corp.test"]
    assert [str(t) for t in parse_targets(names, 5986, {})] == ["srv1.corp.test:5986", "srv2.corp.test:5999"]
    hosts.write_bytes("\ufeffsrv1.corp.test\r\n".encode())
    assert read_hosts_file(hosts) == ["srv1.corp.test"]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("srv1.corp.test:99999", "line 3: invalid port"),
        ("a..corp.test", "line 3: invalid host name"),
        (("x" * 64) + ".corp.test", "line 3: invalid host name"),
        ("srv1:²", "line 3: invalid port"),
    ],
)
def test_hosts_file_bad_line_is_named(tmp_path: Path, line: str, words: str) -> None:
    hosts = tmp_path / "fleet.txt"
    hosts.write_text(f"# fleet\nsrv1.corp.test\n{line}\n", encoding="utf-8")
    with pytest.raises(InputError, match=words):
        read_hosts_file(hosts)
    (tmp_path / "utf16.txt").write_bytes("srv1.corp.test\r\n".encode("utf-16"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_hosts_file(tmp_path / "utf16.txt")


def test_wire_name_is_the_ascii_form() -> None:
    assert wire_name("münchen.corp.test") == "xn--mnchen-3ya.corp.test"
    assert wire_name("MÜNCHEN.corp.test.") == "xn--mnchen-3ya.corp.test."
    assert wire_name("srv1.corp.test") == "srv1.corp.test"
    assert wire_name("[::1]") == "::1" and wire_name("127.0.0.1") == "127.0.0.1"
    assert wire_name("\ufeffsrv1.corp.test") == "srv1.corp.test"  # UTS 46 drops the invisible U+FEFF
    for bad in (
        "a..b",
        "x" * 64 + ".test",
        "\ufeff",
        "a." * 130 + "b",
        "-\u00e4.test",
        "it's.corp.test",
        "srv1,srv2.corp.test",
        "srv1;rm.corp.test",
        "*.corp.test",
    ):
        with pytest.raises(InputError, match="invalid host name"):
            wire_name(bad)


def test_targets_by_either_idn_spelling_and_ipv6_resolve() -> None:
    resolve = parse_resolve(["münchen.corp.test:127.0.0.9", "v6.corp.test:2001:db8::1", "c.corp.test:5986:10.0.0.3"])
    targets = parse_targets(
        ["münchen.corp.test", "XN--MNCHEN-3YA.corp.test", "v6.corp.test", "c.corp.test"], 5986, resolve
    )
    assert [(t.host, t.connect_host) for t in targets] == [
        ("münchen.corp.test", "127.0.0.9"),  # the A-label spelling is the same target
        ("v6.corp.test", "2001:db8::1"),  # not 'port 2001, address db8::1'
        ("c.corp.test", "10.0.0.3"),  # curl's HOST:PORT:ADDRESS
    ]
    with pytest.raises(InputError, match="invalid host name"):
        parse_targets(["a..corp.test"], 5986, {})
    with pytest.raises(InputError, match="invalid port"):
        parse_targets(["srv1:²"], 5986, {})


def test_idn_host_is_checked_by_its_a_label(corp_ca: TestCA, ca_file: str) -> None:
    """SNI, Host header and the name check use the A-label the certificate carries."""
    alabel = "xn--mnchen-3ya.corp.test"
    with TlsServer(corp_ca.issue(alabel, names=[alabel])) as srv:
        results = check_host(
            HostPort("münchen.corp.test", srv.port, srv.host), CheckOptions(ca_file=ca_file, timeout=2)
        )
        assert srv.sni_seen[0] == alabel
        assert srv.requests[0].headers["host"] == f"{alabel}:{srv.port}"
    res = by_id(results)
    assert all(r.status is Status.OK for r in res.values()), {k: r.summary for k, r in res.items()}
    assert res["winrm.cert.name"].details["ascii_host"] == alabel
    assert {r.target for r in results} == {f"münchen.corp.test:{srv.port}"}


def test_wildcard_certificate_covers_an_idn_host(corp_ca: TestCA, ca_file: str) -> None:
    with TlsServer(corp_ca.issue("*.corp.test", names=["*.corp.test"])) as srv:
        res = by_id(
            check_host(HostPort("münchen.corp.test", srv.port, srv.host), CheckOptions(ca_file=ca_file, timeout=2))
        )
        deep = by_id(
            check_host(HostPort("a.b.corp.test", srv.port, srv.host), CheckOptions(ca_file=ca_file, timeout=2))
        )
    assert res["winrm.cert.name"].status is Status.OK
    assert deep["winrm.cert.name"].status is Status.CRITICAL


@pytest.fixture(scope="module")
def issuing(corp_ca: TestCA) -> TestCA:
    return corp_ca.intermediate("Corp Issuing CA 2")


def test_intermediate_sent_verifies_against_the_root(issuing: TestCA, ca_file: str) -> None:
    with TlsServer(issuing.issue(HOST)) as srv:
        res = run_one(srv, ca_file, issuer="Corp Issuing")
    assert all(r.status is Status.OK for r in res.values()), {k: r.summary for k, r in res.items()}
    assert "issuer Corp Issuing CA 2" in res["winrm.cert.chain"].summary


def test_intermediate_not_sent_is_named(issuing: TestCA, ca_file: str) -> None:
    with TlsServer(dataclasses.replace(issuing.issue(HOST), issuer_pem=b"")) as srv:
        res = run_one(srv, ca_file)
    chain = res["winrm.cert.chain"]
    assert chain.status is Status.CRITICAL and "does not send the intermediate" in chain.summary
    assert res["winrm.cert.name"].status is Status.OK  # the certificate was still fetched and judged


def test_ca_file_with_only_the_intermediate_says_to_add_the_root(issuing: TestCA, tmp_path: Path) -> None:
    inter_only = tmp_path / "issuing.pem"
    inter_only.write_bytes(issuing.cert_pem)
    with TlsServer(issuing.issue(HOST)) as srv:
        res = run_one(srv, str(inter_only))
    chain = res["winrm.cert.chain"]
    assert chain.status is Status.CRITICAL and "put the root CA in --ca-file" in chain.summary


def test_expired_intermediate_is_not_blamed_on_the_leaf(corp_ca: TestCA, ca_file: str) -> None:
    old = corp_ca.intermediate(
        "Corp Old Issuing CA", not_before=days_from_now(-900), not_after=days_from_now(-2), slot=8
    )
    with TlsServer(old.issue(HOST, not_before=days_from_now(-100))) as srv:
        res = run_one(srv, ca_file)
    chain = res["winrm.cert.chain"]
    assert chain.status is Status.CRITICAL and "a CA certificate in the chain is expired" in chain.summary
    assert res["winrm.cert.expiry"].status is Status.OK  # the leaf itself is still valid


def test_ecdsa_and_no_eku_and_cn_only_certificates(corp_ca: TestCA, ca_file: str) -> None:
    with TlsServer(corp_ca.issue(HOST, key_type="ec", eku=None, names=[])) as srv:
        res = run_one(srv, ca_file)
    assert all(r.status is Status.OK for r in res.values()), {k: r.summary for k, r in res.items()}
    assert res["winrm.cert.key"].summary.startswith("EC secp256r1 256-bit")
    assert "no EKU extension" in res["winrm.cert.eku"].summary
    assert "(no SAN)" in res["winrm.cert.name"].summary


def test_server_demanding_a_client_certificate_is_named(corp_ca: TestCA, ca_file: str) -> None:
    ctx = server_context(make_leaf("valid", corp_ca, HOST))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=corp_ca.cert_pem.decode())
    with _LingeringTlsServer(context=ctx) as srv:
        res = run_one(srv, ca_file)
    assert res["winrm.wsman"].status is Status.CRITICAL
    assert "requires a TLS client certificate" in res["winrm.wsman"].summary


class _LingeringTlsServer(TlsServer):
    """After a failed handshake, wait before closing (as a real server does) so our request cannot meet a reset
    that would discard the server's alert before we read it."""

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        conn = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        try:
            conn.do_handshake()
        except (OSError, ssl.SSLError):
            with contextlib.suppress(OSError):
                conn.recv(65536)  # read the client's request: closing with unread data would send a reset
            time.sleep(0.5)
        conn.close()


FD_SCRIPT = """
import resource, sys
from opsbook.runbooks.winrm_https.check import fd_budget
soft, hard = (int(v) for v in sys.argv[1:3])
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
got = fd_budget(200)
print(got, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


@pytest.mark.parametrize(("soft", "hard", "expected"), [(100, 4096, "200 616"), (100, 100, "28 100"), (20, 20, "1 20")])
def test_concurrency_fits_the_open_file_limit(soft: int, hard: int, expected: str) -> None:
    """--concurrency 200 under 'ulimit -n 100': raise the soft limit, or check fewer hosts at once."""
    proc = subprocess.run(
        [sys.executable, "-c", FD_SCRIPT, str(soft), str(hard)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[3],
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == expected.split()


def test_out_of_descriptors_is_unknown_not_the_hosts_fault() -> None:
    probe = TlsProbe(
        host=HOST,
        port=5986,
        server_name=HOST,
        tcp_state=PortState.ERROR,
        tcp_error="Too many open files",
        tcp_errno=errno.EMFILE,
    )
    result = _tcp_result(HostPort(HOST, 5986), probe, 1.0)
    assert result.status is Status.UNKNOWN and "ulimit -n" in result.summary


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="crit-days"):
        CheckOptions(warn_days=5, crit_days=10).validate()
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(InputError, match="cannot load --ca-file"):
        CheckOptions(ca_file=str(bad)).validate()
    with pytest.raises(InputError, match="no hosts"):
        run_check([], CheckOptions())


def test_expiry_uses_the_given_clock(serve, ca_file: str, corp_ca: TestCA) -> None:
    with TlsServer(make_leaf("valid", corp_ca, HOST)) as srv:
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=360)
        results = check_host(HostPort(HOST, srv.port, srv.host), CheckOptions(ca_file=ca_file, timeout=2), now=later)
    res = by_id(results)
    assert res["winrm.cert.expiry"].status is Status.CRITICAL
    assert res["winrm.cert.expiry"].metrics["days_left"].value in (4, 5)


def _python_default_context_refuses(target: str, ca_file: str) -> None:
    """What pywinrm/Ansible do: the default context against the same listener fails the handshake."""
    import socket
    import ssl

    host, _, port = target.rpartition(":")
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.check_hostname = False
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="srv1.corp.test"):
                pass
        except ssl.SSLError:
            return
    raise AssertionError("Python's default context accepted the weak certificate")
