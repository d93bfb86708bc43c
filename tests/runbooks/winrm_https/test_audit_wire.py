"""``winrm audit`` over the wire: pywinrm against a fake WinRM HTTPS listener on loopback.

The fake (tests/fake_winrm.py) does real TLS and real NTLM (pyspnego acceptor); nothing of
opsbook is patched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsbook.runbooks.errors import InputError
from opsbook.runbooks.model import Status
from opsbook.runbooks.probes import parse_host_port
from opsbook.runbooks.secrets import Secret
from opsbook.runbooks.winrm_https.audit import AuditOptions, audit_host, run_audit
from opsbook.runbooks.winrm_https.transport import endpoint, scrub
from tests.fake_winrm import FakeBehaviour, FakeWinRM, canned, cert_entry, inventory, listener_entry
from tests.powershell_grammar import parse
from tests.tlspeers import TestCA, free_port

FQDN = "srv1.corp.test"
USER = "CORP\\svc-audit"
PASSWORD = "Tr0ub4dor-and-3"


@pytest.fixture(scope="module")
def ca_and_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestCA, Path]:
    ca = TestCA("Corp Root CA")
    return ca, ca.write(tmp_path_factory.mktemp("audit-ca"))


@pytest.fixture
def fakes() -> Iterator:
    started: list[FakeWinRM] = []

    def start(leaf, host: str = "127.0.0.10", **kw) -> FakeWinRM:  # type: ignore[no-untyped-def]
        fake = FakeWinRM(leaf, host=host, users={USER: PASSWORD}, **kw)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


def opts(ca_file: Path | None, password: str = PASSWORD, **kw: object) -> AuditOptions:
    return AuditOptions(
        username=USER,
        password=Secret(password),
        ca_file=str(ca_file) if ca_file else None,
        timeout=kw.pop("timeout", 5),
        **kw,
    )  # type: ignore[arg-type]


def healthy_doc(leaf, port: int) -> dict:  # type: ignore[no-untyped-def]
    return inventory(
        [listener_entry(port=port, hostname=FQDN, thumbprint=leaf.thumbprint)],
        [cert_entry(leaf)],
        ssl_hash=leaf.thumbprint,
        port=port,
    )


def test_ntlm_login_runs_one_script_and_reports(ca_and_file, fakes, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    ca, ca_file = ca_and_file
    leaf = ca.issue(FQDN, names=[FQDN, "127.0.0.10"])
    fake = fakes(leaf)
    fake.behaviour = canned(healthy_doc(leaf, fake.port))
    results = audit_host(parse_host_port(fake.target, 5986), opts(ca_file))
    status = {r.id: r.status for r in results}
    assert status["winrm.audit.login"] is Status.OK, results[0].summary
    assert set(status.values()) == {Status.OK}, [(r.id, r.summary) for r in results]
    assert "winrm.audit.presented" in status  # the presented certificate was fetched and compared
    assert fake.auth_log == [f"ntlm-ok {USER}"]
    assert fake.actions() == ["create", "command", "receive", "signal", "delete"]
    scripts = fake.decoded_scripts()
    assert len(scripts) == 1
    assert parse(scripts[0]).errors == []
    assert f"$port = {fake.port}" in scripts[0]
    everything = repr([(r.summary, r.details) for r in results]) + caplog.text
    assert PASSWORD not in everything


def test_wrong_password_is_a_clear_critical_without_the_password(ca_and_file, fakes, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    ca, ca_file = ca_and_file
    leaf = ca.issue(FQDN, names=["127.0.0.10"])
    fake = fakes(leaf)
    fake.behaviour = canned(healthy_doc(leaf, fake.port))
    wrong = "Wrong-Password-123"
    results = audit_host(parse_host_port(fake.target, 5986), opts(ca_file, password=wrong))
    assert len(results) == 1
    r = results[0]
    assert r.id == "winrm.audit.login" and r.status is Status.CRITICAL
    assert "login refused (HTTP 401)" in r.summary and USER in r.summary
    assert "winrm.audit.renewal" in r.details["not_checked"]
    assert fake.auth_log == ["ntlm-fail"] and fake.actions() == []
    assert wrong not in repr((r.summary, r.details)) + caplog.text


def test_untrusted_certificate_stops_before_any_credential_is_sent(ca_and_file, fakes) -> None:  # type: ignore[no-untyped-def]
    ca, _ = ca_and_file
    rogue = TestCA("Rogue CA", slot=4).issue(FQDN, names=["127.0.0.10"])
    fake = fakes(rogue)
    fake.behaviour = canned(healthy_doc(rogue, fake.port))
    r = audit_host(parse_host_port(fake.target, 5986), opts(ca.write(Path(fake._tmp.name))))[0]
    assert r.status is Status.CRITICAL and "not trusted" in r.summary
    assert fake.auth_log == [] and fake.actions() == []  # never reached authentication


def test_presented_certificate_differs_from_configured(ca_and_file, fakes) -> None:  # type: ignore[no-untyped-def]
    ca, ca_file = ca_and_file
    served = ca.issue(FQDN, names=[FQDN, "127.0.0.10"], days=12)
    configured = ca.issue(FQDN, names=[FQDN, "127.0.0.10"], days=300)
    fake = fakes(served)
    fake.behaviour = canned(
        inventory(
            [listener_entry(port=fake.port, hostname=FQDN, thumbprint=configured.thumbprint)],
            [cert_entry(served), cert_entry(configured)],
        )
    )
    res = {r.id: r for r in audit_host(parse_host_port(fake.target, 5986), opts(ca_file))}
    assert res["winrm.audit.presented"].status is Status.CRITICAL
    assert served.thumbprint in res["winrm.audit.presented"].summary


def test_script_failure_and_garbage_are_unknown(ca_and_file, fakes) -> None:  # type: ignore[no-untyped-def]
    ca, ca_file = ca_and_file
    leaf = ca.issue(FQDN, names=["127.0.0.10"])
    fake = fakes(leaf, behaviour=FakeBehaviour(stdout=b"", stderr=b"Access is denied.\r\n", exit_code=1))
    r = audit_host(parse_host_port(fake.target, 5986), opts(ca_file))[0]
    assert r.status is Status.UNKNOWN and "exit 1" in r.summary and "Access is denied." in r.summary
    fake.behaviour = FakeBehaviour(stdout=b"Windows PowerShell\r\nnot what we asked\r\n")
    r = audit_host(parse_host_port(fake.target, 5986), opts(ca_file))[0]
    assert r.status is Status.UNKNOWN and "no audit answer" in r.summary
    assert fake.actions().count("delete") == 2  # the shell is closed either way


def test_script_error_echoing_the_password_in_another_case_is_masked(ca_and_file, fakes) -> None:  # type: ignore[no-untyped-def]
    """The one shared scrubber masks the password whatever its case (the old twin matched it exactly)."""
    ca, ca_file = ca_and_file
    leaf = ca.issue(FQDN, names=["127.0.0.10"])
    stderr = f"Logon failure: {PASSWORD.upper()} / {PASSWORD.lower()} rejected\r\n".encode()
    fake = fakes(leaf, behaviour=FakeBehaviour(stdout=b"", stderr=stderr, exit_code=1))
    r = audit_host(parse_host_port(fake.target, 5986), opts(ca_file))[0]
    assert r.status is Status.UNKNOWN and "Logon failure: *** / *** rejected" in r.summary
    everything = repr((r.summary, r.details)).lower()
    assert PASSWORD.lower() not in everything


def test_scrub_masks_any_case_and_nothing_without_a_secret() -> None:
    assert scrub("bad Tr0ub4dor-AND-3 here", Secret(PASSWORD)) == "bad *** here"
    assert scrub("bad Tr0ub4dor-and-3 here", None) == "bad Tr0ub4dor-and-3 here"


def test_a_script_that_never_finishes_is_bounded(ca_and_file, fakes) -> None:  # type: ignore[no-untyped-def]
    ca, ca_file = ca_and_file
    leaf = ca.issue(FQDN, names=["127.0.0.10"])
    fake = fakes(leaf, behaviour=FakeBehaviour(hang=True))
    start = time.monotonic()
    r = audit_host(parse_host_port(fake.target, 5986), opts(ca_file, timeout=2))[0]
    took = time.monotonic() - start
    assert r.status is Status.UNKNOWN and "did not finish within 2s" in r.summary
    assert took < 6
    assert "signal" in fake.actions() and "delete" in fake.actions()


def test_closed_port_is_critical(ca_and_file) -> None:  # type: ignore[no-untyped-def]
    _, ca_file = ca_and_file
    port = free_port("127.0.0.1")
    r = audit_host(parse_host_port(f"127.0.0.1:{port}", 5986), opts(ca_file, timeout=3))[0]
    assert r.status is Status.CRITICAL and "cannot connect" in r.summary


def test_unresolvable_host_is_one_short_line(ca_and_file) -> None:  # type: ignore[no-untyped-def]
    _, ca_file = ca_and_file
    r = audit_host(parse_host_port("no-such-host.invalid", 5986), opts(ca_file, timeout=3))[0]
    assert r.status is Status.CRITICAL
    assert r.summary.startswith("cannot connect to no-such-host.invalid:5986: cannot resolve no-such-host.invalid")
    assert "HTTPSConnectionPool" not in r.summary and "Max retries" not in r.summary


def test_fleet_runs_concurrently(ca_and_file, fakes) -> None:  # type: ignore[no-untyped-def]
    ca, ca_file = ca_and_file
    hosts = []
    for i in range(4):
        ip = f"127.0.0.{20 + i}"
        leaf = ca.issue(f"srv{i}.corp.test", names=[f"srv{i}.corp.test", ip])
        fake = fakes(leaf, host=ip)
        doc = healthy_doc(leaf, fake.port)
        doc["Listeners"][0]["Hostname"] = f"srv{i}.corp.test"
        fake.behaviour = canned(doc)
        fake.behaviour.receive_delay = 0.5
        hosts.append(parse_host_port(fake.target, 5986))
    start = time.monotonic()
    report = run_audit(hosts, opts(ca_file), concurrency=4)
    took = time.monotonic() - start
    assert report.status is Status.OK, [(c.target, c.summary) for c in report.checks if c.status is not Status.OK]
    assert {c.target for c in report.checks} == {str(h) for h in hosts}
    assert took < 4 * 0.5 + 1.5  # the 0.5 s receives overlap


def test_bad_options_are_refused_before_connecting(tmp_path: Path) -> None:
    hp = [parse_host_port("127.0.0.1:1", 5986)]
    with pytest.raises(InputError, match="password"):
        run_audit(hp, AuditOptions(username=USER, password=None))
    with pytest.raises(InputError, match="--username"):
        run_audit(hp, AuditOptions(username=None, password=Secret("x")))
    with pytest.raises(InputError, match="--cert-pem"):
        run_audit(hp, AuditOptions(transport="certificate"))
    with pytest.raises(InputError, match="transport"):
        run_audit(hp, AuditOptions(username=USER, password=Secret("x"), transport="basic"))
    with pytest.raises(InputError, match="ca-file"):
        run_audit(hp, AuditOptions(username=USER, password=Secret("x"), ca_file=str(tmp_path / "nope.pem")))
    assert endpoint(parse_host_port("[::1]:5986", 5986)) == "https://[::1]:5986/wsman"


def test_certificate_transport_uses_the_client_certificate(ca_and_file, fakes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ca, ca_file = ca_and_file
    leaf = ca.issue(FQDN, names=["127.0.0.10"])
    client = ca.issue("svc-audit", names=[], eku=["client"])
    cert_pem, key_pem = client.write(tmp_path, "client")
    fake = fakes(leaf, client_ca_pem=ca.cert_pem)
    fake.behaviour = canned(healthy_doc(leaf, fake.port))
    cert_opts = AuditOptions(
        transport="certificate", cert_pem=str(cert_pem), cert_key_pem=str(key_pem), ca_file=str(ca_file), timeout=5
    )
    results = audit_host(parse_host_port(fake.target, 5986), cert_opts)
    assert results[0].status is Status.OK, results[0].summary
    assert "client certificate" in results[0].summary
    assert set(fake.auth_log) == {"cert-ok svc-audit"} and len(fake.auth_log) == len(fake.actions()) == 5
    # without a client certificate the fake refuses, as WinRM does
    other = TestCA("Unrelated CA", slot=5).issue("svc-audit", names=[], eku=["client"])
    bad_cert, bad_key = other.write(tmp_path, "other")
    bad = AuditOptions(
        transport="certificate", cert_pem=str(bad_cert), cert_key_pem=str(bad_key), ca_file=str(ca_file), timeout=5
    )
    r = audit_host(parse_host_port(fake.target, 5986), bad)[0]
    assert r.status in (Status.CRITICAL, Status.UNKNOWN)


_PROPERTY_FAKES: dict[int, FakeWinRM] = {}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=st.text(min_size=8, max_size=40).filter(lambda p: "\x00" not in p))
def test_no_password_ever_reaches_the_results(ca_and_file, fakes, password: str) -> None:  # type: ignore[no-untyped-def]
    ca, ca_file = ca_and_file
    fake = _PROPERTY_FAKES.get(id(fakes))
    if fake is None:  # one listener for all the examples of this run (the fixture stops it)
        leaf = ca.issue(FQDN, names=["127.0.0.11"])
        fake = _PROPERTY_FAKES[id(fakes)] = fakes(leaf, host="127.0.0.11")
        fake.behaviour = canned(healthy_doc(leaf, fake.port))
    results = audit_host(parse_host_port(fake.target, 5986), opts(ca_file, password=password))
    assert results[0].status is Status.CRITICAL and "login refused" in results[0].summary, results[0].summary
    assert password not in repr([(r.summary, r.details, r.metrics) for r in results])


def test_renewal_from_a_second_issuing_ca_is_found_over_the_wire(fakes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue #12: the inventory (over real NTLM + WS-Man) holds a renewal from another issuing CA of the same root."""
    root = TestCA("Corp Root CA", slot=5)
    first, second = root.intermediate("Corp Issuing CA 1", slot=11), root.intermediate("Corp Issuing CA 2", slot=12)
    old = first.issue(FQDN, names=[FQDN, "127.0.0.10"], days=10.5)
    new = second.issue(FQDN, names=[FQDN, "127.0.0.10"], days=365)
    fake = fakes(old)
    fake.behaviour = canned(
        inventory(
            [listener_entry(port=fake.port, hostname=FQDN, thumbprint=old.thumbprint)],
            [cert_entry(old, root=root), cert_entry(new, root=root)],
            ssl_hash=old.thumbprint,
            port=fake.port,
        )
    )
    results = audit_host(parse_host_port(fake.target, 5986), opts(root.write(tmp_path)))
    res = {r.id: r for r in results}
    assert res["winrm.audit.login"].status is Status.OK, res["winrm.audit.login"].summary
    renewal = res["winrm.audit.renewal"]
    assert renewal.status is Status.CRITICAL and "renewed but not rebound" in renewal.summary, renewal.summary
    assert new.thumbprint in renewal.summary
    assert res["winrm.audit.presented"].status is Status.OK  # the chain (leaf + issuing CA 1) verified


def test_computer_template_certificate_over_the_wire(ca_and_file, fakes) -> None:  # type: ignore[no-untyped-def]
    """Issue #12: a newer Computer-template certificate in the store is not proposed; --template switches."""
    ca, ca_file = ca_and_file
    tpl = "Template=WinRM HTTPS(1.3.6.1.4.1.311.21.8.4242.1.7), Major Version Number=100, Minor Version Number=3"
    old = ca.issue(FQDN, names=[FQDN, "127.0.0.10"], days=10.5)
    computer = ca.issue(FQDN, eku=["client", "server"], days=365)
    fake = fakes(old)
    fake.behaviour = canned(
        inventory(
            [listener_entry(port=fake.port, hostname=FQDN, thumbprint=old.thumbprint)],
            [cert_entry(old, template=tpl), cert_entry(computer, template="Machine")],
            ssl_hash=old.thumbprint,
            port=fake.port,
        )
    )
    res = {r.id: r for r in audit_host(parse_host_port(fake.target, 5986), opts(ca_file))}
    assert res["winrm.audit.renewal"].status is Status.WARNING, res["winrm.audit.renewal"].summary
    assert computer.thumbprint not in res["winrm.audit.renewal"].summary
    res = {r.id: r for r in audit_host(parse_host_port(fake.target, 5986), opts(ca_file, template="Machine"))}
    assert res["winrm.audit.renewal"].status is Status.CRITICAL
    assert computer.thumbprint in res["winrm.audit.renewal"].summary


def test_resolve_connects_to_the_address_and_verifies_the_name(ca_and_file, fakes) -> None:  # type: ignore[no-untyped-def]
    """Issue #12: winrm audit --resolve (like winrm check): the certificate names only the FQDN."""
    from opsbook.runbooks.probes import parse_resolve
    from opsbook.runbooks.winrm_https.audit import parse_hosts

    ca, ca_file = ca_and_file
    name = "srv-resolve.corp.test"  # not in DNS: only --resolve can reach it
    leaf = ca.issue(name, names=[name])
    fake = fakes(leaf)
    fake.behaviour = canned(
        inventory(
            [listener_entry(port=fake.port, hostname=name, thumbprint=leaf.thumbprint)],
            [cert_entry(leaf)],
            ssl_hash=leaf.thumbprint,
            port=fake.port,
        )
    )
    [hp] = parse_hosts([f"{name}:{fake.port}"], 5986, parse_resolve([f"{name}:{fake.host}"]))
    assert hp.address == fake.host
    res = {r.id: r for r in audit_host(hp, opts(ca_file))}
    assert res["winrm.audit.login"].status is Status.OK, res["winrm.audit.login"].summary
    assert res["winrm.audit.presented"].status is Status.OK
    assert fake.requests and all(r.headers["host"] == f"{name}:{fake.port}" for r in fake.requests)
    # The name is really verified: a certificate for another name is refused before any credential.
    other = fakes(ca.issue("other.corp.test", names=["other.corp.test"]), host="127.0.0.11")
    other.behaviour = fake.behaviour
    [hp] = parse_hosts([f"{name}:{other.port}"], 5986, parse_resolve([f"{name}:{other.host}"]))
    r = audit_host(hp, opts(ca_file))[0]
    assert r.status is Status.CRITICAL and "not trusted or wrong name" in r.summary
    assert other.auth_log == []
