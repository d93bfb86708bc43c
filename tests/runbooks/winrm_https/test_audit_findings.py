"""``winrm audit`` findings from an inventory (as the remote script reports it)."""

from __future__ import annotations

import datetime as dt

import pytest

from opsbook.runbooks.model import Status
from opsbook.runbooks.probes import HostPort
from opsbook.runbooks.winrm_https import audit_script
from opsbook.runbooks.winrm_https.certinfo import parse_certificate
from opsbook.runbooks.winrm_https.findings import findings, replacement
from opsbook.runbooks.winrm_https.inventory import parse_inventory
from tests.fake_winrm import cert_entry, inventory, listener_entry
from tests.powershell_grammar import parse
from tests.tlspeers import TestCA, days_from_now

FQDN = "srv1.corp.test"
HP = HostPort(FQDN, 5986)


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA("Corp Issuing CA")


def by_id(results: list) -> dict:
    out = {}
    for r in results:
        assert (r.id, r.target) not in {(x.id, x.target) for x in out.values()}
        out[r.id] = r
    return out


#: The two ways the template shows in Certificate.Extensions.Format(): a v2+ template (OID 1.3.6.1.4.1.311.21.7)
#: and the v1 name extension (1.3.6.1.4.1.311.20.2) the Computer template ("Machine") carries.
WINRM_TPL = "Template=WinRM HTTPS(1.3.6.1.4.1.311.21.8.4242.1.7), Major Version Number=100, Minor Version Number=3"
WINRM_TPL_OID_ONLY = "Template=1.3.6.1.4.1.311.21.8.4242.1.7, Major Version Number=100, Minor Version Number=4"
COMPUTER_TPL = "Machine"


def run(doc: dict, presented: object = None, **kw: object) -> dict:
    inv = parse_inventory(doc)
    return by_id(findings(HP, inv, presented, port=5986, **kw))  # type: ignore[arg-type]


def test_healthy_listener_all_ok(ca: TestCA) -> None:
    leaf = ca.issue(FQDN, days=200)
    doc = inventory(
        [listener_entry(hostname=FQDN, thumbprint=leaf.thumbprint)], [cert_entry(leaf)], ssl_hash=leaf.thumbprint
    )
    res = run(doc, parse_certificate(leaf.cert_der))
    assert {k: v.status for k, v in res.items()} == {
        "winrm.audit.http": Status.OK,
        "winrm.audit.listener": Status.OK,
        "winrm.audit.listener.thumbprint": Status.OK,
        "winrm.audit.renewal": Status.OK,
        "winrm.audit.hostname": Status.OK,
        "winrm.audit.binding": Status.OK,
        "winrm.audit.presented": Status.OK,
    }
    assert 198 <= res["winrm.audit.renewal"].metrics["days_left"].value <= 200  # type: ignore[union-attr]


def test_renewed_but_not_rebound_is_critical_with_outage_date(ca: TestCA) -> None:
    old = ca.issue(FQDN, days=10.5)
    new = ca.issue(FQDN, days=365)
    doc = inventory(
        [listener_entry(hostname=FQDN, thumbprint=old.thumbprint)],
        [cert_entry(old), cert_entry(new)],
        ssl_hash=old.thumbprint,
    )
    r = run(doc, parse_certificate(old.cert_der))["winrm.audit.renewal"]
    assert r.status is Status.CRITICAL
    outage = old.cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
    assert "renewed but not rebound" in r.summary and outage in r.summary
    assert new.thumbprint in r.summary
    assert r.details["replacement"]["thumbprint"] == new.thumbprint
    assert r.details["outage_starts"].startswith(old.cert.not_valid_after_utc.strftime("%Y-%m-%d"))


def test_renewed_early_is_a_warning(ca: TestCA) -> None:
    old = ca.issue(FQDN, days=60)
    new = ca.issue(FQDN, days=365)
    doc = inventory([listener_entry(hostname=FQDN, thumbprint=old.thumbprint)], [cert_entry(old), cert_entry(new)])
    assert run(doc, warn_days=30)["winrm.audit.renewal"].status is Status.WARNING
    assert run(doc, warn_days=90)["winrm.audit.renewal"].status is Status.CRITICAL


def test_expired_bound_certificate(ca: TestCA) -> None:
    old = ca.issue(FQDN, not_before=days_from_now(-400), not_after=days_from_now(-3))
    new = ca.issue(FQDN, days=365)
    doc = inventory([listener_entry(hostname=FQDN, thumbprint=old.thumbprint)], [cert_entry(old), cert_entry(new)])
    r = run(doc)["winrm.audit.renewal"]
    assert r.status is Status.CRITICAL and "expired since" in r.summary and new.thumbprint in r.summary
    doc = inventory([listener_entry(hostname=FQDN, thumbprint=old.thumbprint)], [cert_entry(old)])
    r = run(doc)["winrm.audit.renewal"]
    assert r.status is Status.CRITICAL and "no renewed certificate" in r.summary


@pytest.mark.parametrize("why", ["other_ca", "no_key", "client_eku", "other_name", "not_newer", "not_yet_valid"])
def test_unsuitable_newer_certificates_are_not_replacements(ca: TestCA, why: str) -> None:
    old = ca.issue(FQDN, days=10.5)
    if why == "other_ca":
        entry = cert_entry(TestCA("Some Other CA", slot=3).issue(FQDN))
    elif why == "no_key":
        entry = cert_entry(ca.issue(FQDN), has_private_key=False)
    elif why == "client_eku":
        entry = cert_entry(ca.issue(FQDN, eku=["client"]))
    elif why == "other_name":
        entry = cert_entry(ca.issue("srv2.corp.test"))
    elif why == "not_newer":
        entry = cert_entry(ca.issue(FQDN, days=5))
    else:
        entry = cert_entry(ca.issue(FQDN, not_before=days_from_now(2), not_after=days_from_now(400)))
    doc = inventory([listener_entry(hostname=FQDN, thumbprint=old.thumbprint)], [cert_entry(old), entry])
    r = run(doc)["winrm.audit.renewal"]
    assert r.status is Status.WARNING, r.summary
    assert "no renewed certificate" in r.summary


def test_renewal_from_another_issuing_ca_of_the_same_root_is_found() -> None:
    """Issue #12: the CA renewed from a second issuing CA; the binding script (chain to -RootCA) binds it."""
    root = TestCA("Corp Root CA", slot=5)
    first, second = root.intermediate("Corp Issuing CA 1", slot=11), root.intermediate("Corp Issuing CA 2", slot=12)
    old, new = first.issue(FQDN, days=10.5), second.issue(FQDN, days=365)
    doc = inventory(
        [listener_entry(hostname=FQDN, thumbprint=old.thumbprint)],
        [cert_entry(old, root=root), cert_entry(new, root=root)],
        ssl_hash=old.thumbprint,
    )
    r = run(doc)["winrm.audit.renewal"]
    assert r.status is Status.CRITICAL and "renewed but not rebound" in r.summary, r.summary
    assert r.details["replacement"]["thumbprint"] == new.thumbprint
    assert r.details["replacement"]["root_thumbprint"] == doc["Certificates"][0]["RootThumbprint"]


def test_same_issuer_name_under_another_root_is_not_a_replacement() -> None:
    root, rogue = TestCA("Corp Root CA", slot=5), TestCA("Rogue Root CA", slot=6)
    issuing, lookalike = root.intermediate("Corp Issuing CA", slot=11), rogue.intermediate("Corp Issuing CA", slot=13)
    old, other = issuing.issue(FQDN, days=10.5), lookalike.issue(FQDN, days=365)
    doc = inventory(
        [listener_entry(hostname=FQDN, thumbprint=old.thumbprint)],
        [cert_entry(old, root=root), cert_entry(other, root=rogue)],
    )
    assert doc["Certificates"][0]["Issuer"] == doc["Certificates"][1]["Issuer"]  # same issuer string
    r = run(doc)["winrm.audit.renewal"]
    assert r.status is Status.WARNING and "no renewed certificate" in r.summary, r.summary
    # A candidate whose chain does not build to a trusted root (no Root reported) is never chosen either.
    doc = inventory(
        [listener_entry(hostname=FQDN, thumbprint=old.thumbprint)],
        [cert_entry(old, root=root), {**cert_entry(issuing.issue(FQDN, days=365)), "RootThumbprint": ""}],
    )
    assert run(doc)["winrm.audit.renewal"].status is Status.WARNING


def test_replacement_choice_is_deterministic(ca: TestCA) -> None:
    old = ca.issue(FQDN, days=5)
    end = days_from_now(300)
    a, b = ca.issue(FQDN, not_after=end), ca.issue(FQDN, not_after=end)
    longer = ca.issue(FQDN, days=330)
    inv = parse_inventory(inventory([], [cert_entry(x) for x in (old, a, b)]))
    now = dt.datetime.now(dt.UTC)
    choice = replacement(inv, inv.cert(old.thumbprint), FQDN, now)
    assert choice is not None and choice.thumbprint == min(a.thumbprint, b.thumbprint)
    inv = parse_inventory(inventory([], [cert_entry(x) for x in (old, a, longer, b)]))
    assert replacement(inv, inv.cert(old.thumbprint), FQDN, now).thumbprint == longer.thumbprint  # type: ignore[union-attr]


def test_thumbprint_absent_from_store(ca: TestCA) -> None:
    gone = ca.issue(FQDN, days=20)
    new = ca.issue(FQDN, days=365)
    doc = inventory([listener_entry(hostname=FQDN, thumbprint=gone.thumbprint)], [cert_entry(new)])
    res = run(doc)
    r = res["winrm.audit.listener.thumbprint"]
    assert r.status is Status.CRITICAL and "not in Cert:\\LocalMachine\\My" in r.summary
    assert new.thumbprint in r.summary  # the replacement to bind
    assert "winrm.audit.renewal" not in res and "winrm.audit.hostname" not in res


def test_bound_without_private_key(ca: TestCA) -> None:
    leaf = ca.issue(FQDN)
    doc = inventory(
        [listener_entry(hostname=FQDN, thumbprint=leaf.thumbprint)], [cert_entry(leaf, has_private_key=False)]
    )
    assert run(doc)["winrm.audit.listener.thumbprint"].status is Status.CRITICAL


def test_hostname_mismatch_and_empty(ca: TestCA) -> None:
    leaf = ca.issue(FQDN)
    doc = inventory([listener_entry(hostname="old-name.corp.test", thumbprint=leaf.thumbprint)], [cert_entry(leaf)])
    r = run(doc)["winrm.audit.hostname"]
    assert r.status is Status.WARNING and "old-name.corp.test" in r.summary and FQDN in r.summary
    doc = inventory([listener_entry(hostname="", thumbprint=leaf.thumbprint)], [cert_entry(leaf)])
    assert run(doc)["winrm.audit.hostname"].status is Status.WARNING
    wild = ca.issue("*.corp.test", names=["*.corp.test"])
    doc = inventory([listener_entry(hostname=FQDN, thumbprint=wild.thumbprint)], [cert_entry(wild)])
    assert run(doc)["winrm.audit.hostname"].status is Status.OK


def test_http_listener_enabled_is_a_warning(ca: TestCA) -> None:
    leaf = ca.issue(FQDN)
    https = listener_entry(hostname=FQDN, thumbprint=leaf.thumbprint)
    doc = inventory([https, listener_entry("HTTP", port=5985, source="GPO")], [cert_entry(leaf)])
    r = run(doc)["winrm.audit.http"]
    assert r.status is Status.WARNING and "5985" in r.summary
    doc = inventory([https, listener_entry("HTTP", port=5985, enabled=False)], [cert_entry(leaf)])
    assert run(doc)["winrm.audit.http"].status is Status.OK


def test_presented_certificate_differs(ca: TestCA) -> None:
    configured, served = ca.issue(FQDN, days=300), ca.issue(FQDN, days=20)
    doc = inventory(
        [listener_entry(hostname=FQDN, thumbprint=configured.thumbprint)], [cert_entry(configured), cert_entry(served)]
    )
    r = run(doc, parse_certificate(served.cert_der))["winrm.audit.presented"]
    assert r.status is Status.CRITICAL
    assert served.thumbprint in r.summary and configured.thumbprint in r.summary
    r = run(doc, "no TLS handshake with x")["winrm.audit.presented"]
    assert r.status is Status.UNKNOWN


def test_stale_http_sys_binding(ca: TestCA) -> None:
    leaf, other = ca.issue(FQDN), ca.issue(FQDN, days=3)
    doc = inventory(
        [listener_entry(hostname=FQDN, thumbprint=leaf.thumbprint)], [cert_entry(leaf)], ssl_hash=other.thumbprint
    )
    r = run(doc)["winrm.audit.binding"]
    assert r.status is Status.CRITICAL and other.thumbprint in r.summary


def test_no_https_listener_on_port(ca: TestCA) -> None:
    leaf = ca.issue(FQDN)
    doc = inventory([listener_entry(port=443, hostname=FQDN, thumbprint=leaf.thumbprint)], [cert_entry(leaf)])
    res = run(doc)
    assert res["winrm.audit.listener"].status is Status.CRITICAL
    assert "HTTPS *:443" in res["winrm.audit.listener"].summary
    assert set(res) == {"winrm.audit.http", "winrm.audit.listener"}


def test_two_https_listeners_get_distinct_targets(ca: TestCA) -> None:
    leaf = ca.issue(FQDN)
    doc = inventory(
        [
            listener_entry(hostname=FQDN, thumbprint=leaf.thumbprint),
            listener_entry(address="IP:10.0.0.5", hostname=FQDN, thumbprint=leaf.thumbprint),
        ],
        [cert_entry(leaf)],
    )
    results = findings(HP, parse_inventory(doc), None, port=5986)
    keys = [(r.id, r.target) for r in results]
    assert len(keys) == len(set(keys))
    assert any(t.endswith("(IP:10.0.0.5)") for _, t in keys)


def test_powershell_json_quirks_are_tolerated(ca: TestCA) -> None:
    leaf = ca.issue(FQDN, names=[FQDN, "srv1"])
    entry = cert_entry(leaf)
    entry["EnhancedKeyUsageList"] = "1.3.6.1.5.5.7.3.1"  # one element -> scalar
    entry["thumbprint"] = entry.pop("Thumbprint").lower()  # other case, lower-case hex
    doc = {
        "computer": "SRV1",
        "Listeners": listener_entry(hostname=FQDN, thumbprint=leaf.thumbprint),
        "SslCert": None,
        "Certificates": entry,
    }
    inv = parse_inventory(doc)
    assert inv.computer == "SRV1" and len(inv.listeners) == 1 and len(inv.certificates) == 1
    cert = inv.certificates[0]
    assert cert.thumbprint == leaf.thumbprint and cert.dns_names == (FQDN, "srv1") and cert.server_auth()
    assert cert.not_after is not None and cert.not_after.tzinfo is not None


def test_remote_script_parses_and_fits_a_command_line() -> None:
    text = audit_script.render(5986)
    assert parse(text).errors == []
    for needle in (
        "WSMan:\\localhost\\Listener",
        "netsh.exe http show sslcert",
        "Cert:\\LocalMachine\\My",
        "DnsNameList",
        "EnhancedKeyUsageList",
        "HasPrivateKey",
        "ToString('o')",
        "1.3.6.1.4.1.311.21.7",
        "ConvertTo-Json",
    ):
        assert needle in text
    # The root each certificate chains to, built as the binding script builds it (expired ones too).
    tree = parse(text)
    news = [text for name, text, _ in tree.calls() if name == "New-Object"]
    assert any("X509Chain" in n for n in news), news
    assert "IgnoreNotTimeValid" in text and "RevocationMode" in text
    assert "RootThumbprint =" in text and "Root =" in text
    command, args = audit_script.command_line(65535)
    assert command == "powershell.exe" and args[-2] == "-EncodedCommand"
    assert len(command) + 1 + len(" ".join(args)) < 8191
    with pytest.raises(ValueError):
        audit_script.render(0)


def test_output_round_trip_and_errors() -> None:
    doc = {"Computer": "SRV1", "Listeners": [], "Certificates": [], "Subject": "CN=Zoë"}
    noise = b"#< CLIXML\r\nsome progress\r\n" + audit_script.make_output(doc)
    assert audit_script.parse_output(noise) == doc
    for bad in (b"", b"hello", b"OPSBOOK-AUDIT:!!!", b"OPSBOOK-AUDIT:" + b"WzFd"):  # WzFd = [1]
        with pytest.raises(audit_script.AuditOutputError):
            audit_script.parse_output(bad)


def test_newer_computer_template_certificate_is_not_the_replacement(ca: TestCA) -> None:
    """Issue #12: a Computer-template certificate (Client + Server Auth, CN=FQDN) is not a WinRM renewal."""
    old = ca.issue(FQDN, days=10.5)
    computer = ca.issue(FQDN, eku=["client", "server"], days=365)
    listener = listener_entry(hostname=FQDN, thumbprint=old.thumbprint)
    doc = inventory([listener], [cert_entry(old, template=WINRM_TPL), cert_entry(computer, template=COMPUTER_TPL)])
    r = run(doc)["winrm.audit.renewal"]
    assert r.status is Status.WARNING and "no renewed certificate" in r.summary, r.summary
    assert "template WinRM HTTPS" in r.summary and computer.thumbprint not in r.summary
    assert r.details["template"] == "WinRM HTTPS"
    # A renewal of the same template (the name unresolved, the OID the same) is chosen over the newer Computer one.
    renewal = ca.issue(FQDN, days=300)
    doc = inventory(
        [listener],
        [
            cert_entry(old, template=WINRM_TPL),
            cert_entry(computer, template=COMPUTER_TPL),
            cert_entry(renewal, template=WINRM_TPL_OID_ONLY),
        ],
    )
    r = run(doc)["winrm.audit.renewal"]
    assert r.status is Status.CRITICAL and r.details["replacement"]["thumbprint"] == renewal.thumbprint
    # --template names the template to move to (by name or by OID).
    r = run(doc, template="Machine")["winrm.audit.renewal"]
    assert r.details["replacement"]["thumbprint"] == computer.thumbprint
    r = run(doc, template="1.3.6.1.4.1.311.21.8.4242.1.7")["winrm.audit.renewal"]
    assert r.details["replacement"]["thumbprint"] == renewal.thumbprint


def test_template_identity_is_read_from_either_extension() -> None:
    from opsbook.runbooks.winrm_https.inventory import template_identity

    assert template_identity(WINRM_TPL) == ("WinRM HTTPS", "1.3.6.1.4.1.311.21.8.4242.1.7")
    assert template_identity(WINRM_TPL_OID_ONLY) == ("", "1.3.6.1.4.1.311.21.8.4242.1.7")
    assert template_identity("Machine") == ("Machine", "")
    assert template_identity("") == ("", "")
    # German Windows: the labels are translated, the OID is not.
    assert (
        template_identity("Vorlage=WinRM HTTPS(1.3.6.1.4.1.311.21.8.1.2), Hauptversionsnummer=100")[1]
        == "1.3.6.1.4.1.311.21.8.1.2"
    )


@pytest.mark.parametrize(
    ("auth", "status", "words"),
    [
        (
            {"Basic": "false", "Kerberos": "true", "Negotiate": "true", "CredSSP": "false"},
            Status.OK,
            "Kerberos, Negotiate",
        ),
        ({"Basic": "true", "CredSSP": "false"}, Status.WARNING, "Basic authentication enabled"),
        # Issue #12: CredSSP is flagged like Basic (the server receives reusable credentials).
        ({"Basic": "false", "CredSSP": "true"}, Status.WARNING, "CredSSP authentication enabled"),
        ({"Basic": "true", "CredSSP": "true"}, Status.WARNING, "Basic and CredSSP authentication enabled"),
    ],
)
def test_service_authentication_methods(ca: TestCA, auth: dict, status: Status, words: str) -> None:
    leaf = ca.issue(FQDN)
    doc = inventory([listener_entry(hostname=FQDN, thumbprint=leaf.thumbprint)], [cert_entry(leaf)])
    assert "winrm.audit.auth" not in run(doc)  # an inventory without the service's Auth says nothing
    doc["ServiceAuth"] = auth
    r = run(doc)["winrm.audit.auth"]
    assert r.status is status and words in r.summary, r.summary
    assert "ServiceAuth" in audit_script.render(5986) and "WSMan:\\localhost\\Service\\Auth" in audit_script.render(
        5986
    )
