"""opsbook.runbooks.adsync.graph against a fake Entra ID + Graph over real HTTPS on 127.0.30.1.

Nothing of ours is mocked: MSAL, requests and our code run as in production, pointed at
the fake with ``--authority-host``/``--graph-endpoint`` and the test CA through
``REQUESTS_CA_BUNDLE``. A refusing proxy records any attempt to leave loopback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from opsbook.cli.formats import render_json, render_junit, render_nagios, render_prometheus
from opsbook.runbooks.adsync.checks import format_age, parse_age_thresholds, parse_duration
from opsbook.runbooks.adsync.graph import GraphOptions, check_tenant
from opsbook.runbooks.errors import InputError
from opsbook.runbooks.model import CheckResult, Metric, Report, Status
from opsbook.runbooks.secrets import Secret
from tests.fake_graph import FakeGraph, ProxyRecorder, graph_network
from tests.tlspeers import HangServer, TestCA


@pytest.fixture(scope="module")
def graph_ca() -> TestCA:
    return TestCA("Fake Entra Root CA")


@pytest.fixture
def graph_ca_path(graph_ca: TestCA, tmp_path: Path) -> str:
    return str(graph_ca.write(tmp_path / "ca"))


@pytest.fixture
def graph_proxy(monkeypatch: pytest.MonkeyPatch, graph_ca_path: str) -> Iterator[ProxyRecorder]:
    with graph_network(monkeypatch, graph_ca_path) as proxy:
        yield proxy
    # Whatever the test did, nothing tried to leave loopback unless the test said so.


@pytest.fixture
def fake(graph_ca: TestCA, graph_proxy: ProxyRecorder) -> Iterator[FakeGraph]:
    with FakeGraph(graph_ca) as server:
        yield server


def options_for(fake: FakeGraph, **overrides: object) -> GraphOptions:
    sc = fake.scenario
    values: dict[str, object] = {
        "tenant_id": sc.tenant_id,
        "client_id": sc.client_id,
        "client_secret": Secret(sc.client_secret),
        "authority_host": fake.authority_host,
        "graph_endpoint": fake.graph_endpoint,
        "timeout": 5.0,
    }
    values.update(overrides)
    return GraphOptions(**values)  # type: ignore[arg-type]


def by_id(results: list[CheckResult]) -> dict[str, CheckResult]:
    ids = [r.id for r in results]
    assert len(ids) == len(set(ids)), ids
    return {r.id: r for r in results}


def all_output(results: list[CheckResult]) -> str:
    """Every rendering a user or a monitoring system can see, plus the raw results."""
    report = Report(command="adsync check", checks=results)
    parts = [render_json(report), render_nagios(report), render_junit(report), render_prometheus(report)]
    parts += [repr(r) for r in results]
    parts += [json.dumps(r.details) for r in results]
    return "\n".join(parts)


def assert_no_leak(fake: FakeGraph, results: list[CheckResult], *extra_secrets: str) -> None:
    text = all_output(results)
    for secret in (fake.scenario.client_secret, *fake.issued_tokens, *extra_secrets):
        assert secret not in text
        # Not even a recognisable chunk of it.
        assert secret[5:25] not in text


# ----------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", (5400.0, 10800.0)),
        ("3h", (10800.0, 10800.0)),
        ("45s", (45.0, 10800.0)),
        ("1d", (86400.0, 86400.0)),
        ("1h,3h", (3600.0, 10800.0)),
        ("30m, 2h", (1800.0, 7200.0)),
        ("1h30m,1d", (5400.0, 86400.0)),
        ("2H,2h", (7200.0, 7200.0)),
        ("0.5h,1h", (1800.0, 3600.0)),
    ],
)
def test_parse_age_thresholds_accepts(text: str, expected: tuple[float, float]) -> None:
    assert parse_age_thresholds(text) == expected


@pytest.mark.parametrize(
    "text", ["", "3", "1h,", ",1h", "1h,2h,3h", "3x", "h", "-1h", "0m", "1h,30m", "1 hour", "1h;2h", "abc,1h"]
)
def test_parse_age_thresholds_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_age_thresholds(text)


def test_crit_below_warn_message_names_both() -> None:
    with pytest.raises(InputError, match=r"critical age \(30m\).*warning age \(1h\)"):
        parse_age_thresholds("1h,30m")


def test_bare_number_asks_for_a_unit() -> None:
    with pytest.raises(InputError, match="no unit"):
        parse_duration("90")


def test_format_age() -> None:
    assert [format_age(s) for s in (0, 45, 600, 605, 7200, 7380, 86400, 90000)] == [
        "0s",
        "45s",
        "10m",
        "10m 5s",
        "2h",
        "2h 3m",
        "1d",
        "1d 1h",
    ]


# ----------------------------------------------------------------------------- happy path


def test_fresh_tenant_all_ok_and_exact_wire_conversation(fake: FakeGraph, graph_proxy: ProxyRecorder) -> None:
    results = check_tenant(options_for(fake))
    checks = by_id(results)
    assert list(checks) == [
        "adsync.graph.token",
        "adsync.graph.sync_enabled",
        "adsync.graph.last_sync",
        "adsync.graph.last_password_sync",
    ]
    assert all(r.status is Status.OK for r in results), [(r.id, r.summary) for r in results]
    assert all(r.target == fake.scenario.tenant_id for r in results)
    # Exactly what MSAL + Graph needed; no instance discovery anywhere, nothing through the proxy.
    tenant = fake.scenario.tenant_id
    assert fake.paths() == [
        f"/{tenant}/v2.0/.well-known/openid-configuration",
        f"/{tenant}/oauth2/v2.0/token",
        "/v1.0/organization",
        "/beta/organization",
    ]
    assert graph_proxy.targets == []
    token_form = fake.token_requests[0]
    assert token_form["scope"] == f"{fake.graph_endpoint}/.default"
    assert token_form["grant_type"] == "client_credentials"
    # Graph was asked with the issued token and only for the properties we need.
    graph_requests = [r for r in fake.requests if r.path.startswith(("/v1.0", "/beta"))]
    assert {r.headers["authorization"] for r in graph_requests} == {f"Bearer {fake.issued_tokens[0]}"}
    assert "onPremisesLastSyncDateTime" in graph_requests[0].path
    assert "onPremisesLastPasswordSyncDateTime" in graph_requests[1].path
    last = checks["adsync.graph.last_sync"]
    metric = last.metrics["age"]
    assert isinstance(metric, Metric)
    assert metric.uom == "s" and metric.warn == 3600 and metric.crit == 10800
    assert 595 <= metric.value <= 660
    assert "10m" in last.summary
    password = checks["adsync.graph.last_password_sync"]
    assert "beta" in password.name and password.details["api"] == "beta"
    assert_no_leak(fake, results)


@pytest.mark.parametrize(
    ("age", "status"),
    [(600, Status.OK), (2 * 3600, Status.WARNING), (5 * 3600, Status.CRITICAL)],
    ids=["fresh", "stale-2h", "stale-5h"],
)
def test_last_sync_age_thresholds(fake: FakeGraph, age: float, status: Status) -> None:
    fake.scenario.last_sync_age = age
    checks = by_id(check_tenant(options_for(fake)))
    last = checks["adsync.graph.last_sync"]
    assert last.status is status, last.summary
    assert checks["adsync.graph.last_password_sync"].status is Status.OK
    if status is not Status.OK:
        assert "ADSync" in last.summary


@pytest.mark.parametrize(
    ("age", "status"),
    [(20 * 60, Status.OK), (50 * 60, Status.WARNING), (3 * 3600, Status.CRITICAL)],
)
def test_password_sync_custom_thresholds(fake: FakeGraph, age: float, status: Status) -> None:
    fake.scenario.password_sync_age = age
    options = options_for(fake, max_password_sync_age=parse_age_thresholds("30m,2h"))
    checks = by_id(check_tenant(options))
    password = checks["adsync.graph.last_password_sync"]
    assert password.status is status, password.summary
    metric = password.metrics["age"]
    assert isinstance(metric, Metric) and (metric.warn, metric.crit) == (1800, 7200)
    assert checks["adsync.graph.last_sync"].status is Status.OK


def test_timestamp_in_future_blames_the_clock(fake: FakeGraph) -> None:
    fake.scenario.last_sync_age = -2 * 3600
    last = by_id(check_tenant(options_for(fake)))["adsync.graph.last_sync"]
    assert last.status is Status.WARNING
    assert "future" in last.summary and "clock" in last.summary


# ----------------------------------------------------------------------------- tenant states


def test_user_read_only_is_missing_permission_not_never_synced(fake: FakeGraph) -> None:
    """With User.Read alone, Graph nulls every organization property except id, displayName, verifiedDomains."""
    fake.scenario.org_permission = "User.Read"
    results = check_tenant(options_for(fake))
    checks = by_id(results)
    sync = checks["adsync.graph.sync_enabled"]
    assert sync.status is Status.UNKNOWN
    assert "missing permission" in sync.summary and "Organization.Read.All" in sync.summary
    assert "never" not in sync.summary.lower() and "not enabled" not in sync.summary
    assert not any(r.status is Status.CRITICAL for r in results)
    # The same tenant with the permission granted: sync state and dates are read.
    fake.scenario.org_permission = "Organization.Read.All"
    assert by_id(check_tenant(options_for(fake)))["adsync.graph.sync_enabled"].status is Status.OK


def test_null_timestamps_with_sync_enabled_point_at_permission(fake: FakeGraph) -> None:
    fake.scenario.last_sync_age = None
    fake.scenario.password_sync_age = None
    checks = by_id(check_tenant(options_for(fake)))
    assert checks["adsync.graph.sync_enabled"].status is Status.OK
    for check_id in ("adsync.graph.last_sync", "adsync.graph.last_password_sync"):
        check = checks[check_id]
        assert check.status is Status.UNKNOWN
        assert "Organization.Read.All" in check.summary
        assert "never" not in check.summary.lower()
        assert "age" not in check.metrics


@pytest.mark.parametrize("enabled", [False, None], ids=["disabled", "never-enabled"])
def test_sync_not_enabled_is_critical(fake: FakeGraph, enabled: bool | None) -> None:
    fake.scenario.sync_enabled = enabled
    fake.scenario.last_sync_age = None
    fake.scenario.password_sync_age = None
    checks = by_id(check_tenant(options_for(fake)))
    sync = checks["adsync.graph.sync_enabled"]
    assert sync.status is Status.CRITICAL
    assert "not enabled" in sync.summary or "DISABLED" in sync.summary
    assert sync.details["onPremisesSyncEnabled"] is enabled
    # No duplicate noise about timestamps that cannot exist.
    assert "adsync.graph.last_sync" not in checks
    assert "adsync.graph.last_password_sync" not in checks


def test_sync_disabled_still_reports_how_old_the_last_sync_is(fake: FakeGraph) -> None:
    fake.scenario.sync_enabled = False
    fake.scenario.last_sync_age = 40 * 86400
    checks = by_id(check_tenant(options_for(fake)))
    assert checks["adsync.graph.sync_enabled"].status is Status.CRITICAL
    last = checks["adsync.graph.last_sync"]
    assert last.status is Status.CRITICAL and "40d" in last.summary and "disabled" in last.summary


def test_forbidden_organization_gives_admin_consent_hint(fake: FakeGraph) -> None:
    fake.scenario.org_status = 403
    fake.scenario.beta_status = 403
    results = check_tenant(options_for(fake))
    checks = by_id(results)
    sync = checks["adsync.graph.sync_enabled"]
    assert sync.status is Status.UNKNOWN
    assert "403" in sync.summary and "Organization.Read.All" in sync.summary and "admin consent" in sync.summary
    assert sync.details["error"] == "Authorization_RequestDenied"
    assert "request_id" in sync.details
    assert "adsync.graph.last_sync" not in checks
    assert_no_leak(fake, results)


def test_forbidden_beta_only_affects_password_check(fake: FakeGraph) -> None:
    fake.scenario.beta_status = 403
    checks = by_id(check_tenant(options_for(fake)))
    assert checks["adsync.graph.last_sync"].status is Status.OK
    password = checks["adsync.graph.last_password_sync"]
    assert password.status is Status.UNKNOWN
    assert "beta" in password.summary and "admin consent" in password.summary


@pytest.mark.parametrize("status", [500, 503, 429])
def test_graph_server_errors_are_unknown(fake: FakeGraph, status: int) -> None:
    fake.scenario.org_status = status
    sync = by_id(check_tenant(options_for(fake)))["adsync.graph.sync_enabled"]
    assert sync.status is Status.UNKNOWN
    assert f"HTTP {status}" in sync.summary


def test_provisioning_errors_counted(fake: FakeGraph) -> None:
    fake.scenario.provisioning_errors = ["ann@contoso.test", "bob@contoso.test", "cy@contoso.test"]
    checks = by_id(check_tenant(options_for(fake, count_provisioning_errors=True)))
    prov = checks["adsync.graph.provisioning_errors"]
    assert prov.status is Status.WARNING
    assert prov.summary.startswith("3 user(s)") and "ann@contoso.test" in prov.summary
    metric = prov.metrics["count"]
    assert isinstance(metric, Metric) and metric.value == 3
    assert prov.details["sample"][0] == {
        "userPrincipalName": "ann@contoso.test",
        "property": "ProxyAddresses",
        "category": "PropertyConflict",
    }
    users_request = next(r for r in fake.requests if r.path.startswith("/v1.0/users"))
    assert users_request.headers["consistencylevel"] == "eventual"


def test_provisioning_errors_none_and_forbidden(fake: FakeGraph) -> None:
    checks = by_id(check_tenant(options_for(fake, count_provisioning_errors=True)))
    assert checks["adsync.graph.provisioning_errors"].status is Status.OK
    fake.scenario.users_status = 403
    checks = by_id(check_tenant(options_for(fake, count_provisioning_errors=True)))
    prov = checks["adsync.graph.provisioning_errors"]
    assert prov.status is Status.UNKNOWN and "User.Read.All" in prov.summary
    # Not asked for: not done.
    before = len(fake.requests)
    checks = by_id(check_tenant(options_for(fake)))
    assert "adsync.graph.provisioning_errors" not in checks
    assert not any(r.path.startswith("/v1.0/users") for r in fake.requests[before:])


# ----------------------------------------------------------------------------- token failures


def test_bad_secret_unknown_with_msal_error_and_no_leak(fake: FakeGraph) -> None:
    fake.scenario.echo_secret_in_error = True  # a hostile server echoing what it got
    wrong = "Wr0ng~secret.value-271828182845904523"
    results = check_tenant(options_for(fake, client_secret=Secret(wrong)))
    assert [r.id for r in results] == ["adsync.graph.token"]
    token = results[0]
    assert token.status is Status.UNKNOWN
    assert "invalid_client" in token.summary and "AADSTS7000215" in token.summary
    assert "secret is wrong or expired" in token.summary
    assert token.details["error_codes"] == [7000215]
    assert token.details["correlation_id"]
    assert "Trace ID" not in token.summary  # first line of the description only
    assert not any(p.startswith("/v1.0") for p in fake.paths())
    assert_no_leak(fake, results, wrong)


def test_secret_echoed_in_another_case_is_scrubbed(fake: FakeGraph) -> None:
    """The one shared scrubber masks the secret whatever its case (the old twin matched it exactly)."""
    fake.scenario.echo_secret_in_error = True
    fake.scenario.echo_secret_upper = True
    wrong = "Wr0ng~secret.value-314159265358979323"
    results = check_tenant(options_for(fake, client_secret=Secret(wrong)))
    token = results[0]
    assert token.status is Status.UNKNOWN and "(got '***')" in token.summary
    text = all_output(results)
    assert wrong.upper() not in text and wrong.upper()[5:25] not in text
    assert_no_leak(fake, results, wrong)


def test_unknown_tenant(fake: FakeGraph) -> None:
    results = check_tenant(options_for(fake, tenant_id="00000000-dead-beef-0000-000000000000"))
    assert [r.id for r in results] == ["adsync.graph.token"]
    assert results[0].status is Status.UNKNOWN
    assert "unknown to the authority" in results[0].summary
    assert results[0].details.get("error_code") == "AADSTS90002"
    assert results[0].target == "00000000-dead-beef-0000-000000000000"
    assert_no_leak(fake, results)


def test_authority_outage(fake: FakeGraph) -> None:
    fake.scenario.openid_status = 503
    results = check_tenant(options_for(fake))
    assert [(r.id, r.status) for r in results] == [("adsync.graph.token", Status.UNKNOWN)]
    assert "the authority 127.0.30.1 failed: HTTP Error: 503" in results[0].summary


def test_unknown_client_id(fake: FakeGraph) -> None:
    results = check_tenant(options_for(fake, client_id="99999999-0000-0000-0000-000000000000"))
    assert results[0].status is Status.UNKNOWN
    assert "AADSTS700016" in results[0].summary and "--client-id" in results[0].summary


def test_echoed_token_in_graph_error_is_scrubbed(fake: FakeGraph) -> None:
    fake.scenario.org_status = 403
    fake.scenario.echo_token_in_error = True
    results = check_tenant(options_for(fake))
    assert fake.issued_tokens
    assert "***" in by_id(results)["adsync.graph.sync_enabled"].summary
    assert_no_leak(fake, results)


# ----------------------------------------------------------------------------- certificate credential


@pytest.fixture
def app_cert(graph_ca: TestCA) -> object:
    return graph_ca.issue("opsbook-adsync-monitor", names=[], eku=["client"])


def write_pem(tmp_path: Path, *blocks: bytes, name: str = "app.pem") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join(blocks))
    path.chmod(0o600)
    return path


def test_client_certificate_login(fake: FakeGraph, app_cert: object, tmp_path: Path, graph_ca: TestCA) -> None:
    fake.scenario.client_cert = app_cert  # type: ignore[assignment]
    # key + leaf + the CA in one PEM, in an unusual order: the matching certificate is found.
    pem = write_pem(tmp_path, graph_ca.cert_pem, app_cert.key_pem, app_cert.cert_pem)  # type: ignore[attr-defined]
    results = check_tenant(options_for(fake, client_secret=None, client_cert=pem))
    checks = by_id(results)
    token = checks["adsync.graph.token"]
    assert token.status is Status.OK, token.summary
    assert token.details["credential"] == "certificate"
    assert token.details["certificate_thumbprint"] == app_cert.thumbprint  # type: ignore[attr-defined]
    form = fake.token_requests[-1]
    assert "client_secret" not in form
    header = json.loads(base64.urlsafe_b64decode(form["client_assertion"].split(".")[0] + "=="))
    expected_x5t = base64.urlsafe_b64encode(hashlib.sha1(app_cert.cert_der).digest()).rstrip(b"=").decode()  # type: ignore[attr-defined]
    assert header["x5t"].rstrip("=") == expected_x5t
    assert header["alg"] == "RS256"
    assert checks["adsync.graph.last_sync"].status is Status.OK
    key_text = app_cert.key_pem.decode()  # type: ignore[attr-defined]
    body = "".join(key_text.splitlines()[1:-1])
    assert body[10:60] not in all_output(results)
    assert_no_leak(fake, results)


def test_client_certificate_close_to_expiry_warns(fake: FakeGraph, graph_ca: TestCA, tmp_path: Path) -> None:
    leaf = graph_ca.issue("expiring-app", names=[], eku=["client"], days=12)
    fake.scenario.client_cert = leaf
    results = check_tenant(
        options_for(fake, client_secret=None, client_cert=write_pem(tmp_path, leaf.key_pem, leaf.cert_pem))
    )
    token = by_id(results)["adsync.graph.token"]
    assert token.status is Status.WARNING
    assert "expires in 12 days" in token.summary
    assert token.details["certificate_days_left"] == pytest.approx(12, abs=0.1)


def test_certificate_not_registered_on_the_app(fake: FakeGraph, graph_ca: TestCA, tmp_path: Path) -> None:
    registered = graph_ca.issue("registered-app", names=[], eku=["client"])
    other = graph_ca.issue("some-other-app", names=[], eku=["client"])
    fake.scenario.client_cert = registered
    pem = write_pem(tmp_path, other.key_pem, other.cert_pem)
    results = check_tenant(options_for(fake, client_secret=None, client_cert=pem))
    token = by_id(results)["adsync.graph.token"]
    assert token.status is Status.UNKNOWN
    assert "AADSTS700027" in token.summary and "uploaded" in token.summary


def test_bad_certificate_files_are_input_errors(fake: FakeGraph, graph_ca: TestCA, tmp_path: Path) -> None:
    leaf = graph_ca.issue("app", names=[], eku=["client"])
    encrypted = leaf.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    cases = {
        "missing": (tmp_path / "nope.pem", "cannot read"),
        "cert only": (write_pem(tmp_path, leaf.cert_pem, name="c.pem"), "no private key"),
        "key only": (write_pem(tmp_path, leaf.key_pem, name="k.pem"), "no certificate"),
        "encrypted": (write_pem(tmp_path, encrypted, leaf.cert_pem, name="e.pem"), "encrypted"),
        "mismatch": (write_pem(tmp_path, leaf.key_pem, graph_ca.cert_pem, name="m.pem"), "matches"),
    }
    for label, (path, message) in cases.items():
        with pytest.raises(InputError, match=message):
            check_tenant(options_for(fake, client_secret=None, client_cert=path))
        assert fake.requests == [], label  # refused before any traffic


# ----------------------------------------------------------------------------- input validation


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"client_secret": None}, "no client credential"),
        ({"client_secret": Secret("")}, "no client credential"),
        ({"client_cert": Path("/x.pem")}, "not both"),
        ({"tenant_id": ""}, "--tenant-id is required"),
        ({"tenant_id": "common"}, "not a tenant"),
        ({"tenant_id": "a/b"}, "invalid --tenant-id"),
        ({"client_id": ""}, "--client-id is required"),
        ({"authority_host": "http://127.0.30.1"}, "https://"),
        ({"authority_host": "https://login.example.test/tenant"}, "scheme and host only"),
        ({"graph_endpoint": "ftp://x"}, "https://"),
        ({"max_sync_age": (3600.0, 60.0)}, "critical age"),
        ({"timeout": 0}, "--timeout"),
    ],
)
def test_invalid_options(fake: FakeGraph, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_tenant(options_for(fake, **overrides))
    assert fake.requests == []


# ----------------------------------------------------------------------------- transport


def test_untrusted_certificate_fails_closed(graph_ca: TestCA, monkeypatch: pytest.MonkeyPatch) -> None:
    with graph_network(monkeypatch, None), FakeGraph(graph_ca) as server:
        results = check_tenant(options_for(server))
    assert [r.status for r in results] == [Status.UNKNOWN]
    assert "TLS verification failed" in results[0].summary
    assert "REQUESTS_CA_BUNDLE" in results[0].summary


def test_ssl_cert_file_alone_is_honoured(graph_ca: TestCA, graph_ca_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with graph_network(monkeypatch, None), FakeGraph(graph_ca) as server:
        monkeypatch.setenv("SSL_CERT_FILE", graph_ca_path)
        results = check_tenant(options_for(server))
    assert all(r.status is Status.OK for r in results), [r.summary for r in results]


def test_every_request_times_out(graph_proxy: ProxyRecorder) -> None:
    with HangServer("127.0.30.1") as hang:
        options = GraphOptions(
            tenant_id="contoso.onmicrosoft.com",
            client_id="0e6f5d4c-3b2a-4190-8f7e-6d5c4b3a2910",
            client_secret=Secret("whatever-secret-value"),
            authority_host=f"https://127.0.30.1:{hang.port}",
            graph_endpoint=f"https://127.0.30.1:{hang.port}",
            timeout=0.5,
        )
        start = time.monotonic()
        results = check_tenant(options)
        elapsed = time.monotonic() - start
    assert [r.status for r in results] == [Status.UNKNOWN]
    assert "timed out" in results[0].summary
    assert elapsed < 3


def test_custom_authority_never_triggers_microsoft_instance_discovery(graph_proxy: ProxyRecorder) -> None:
    """A private authority host: MSAL must talk to that host only (the proxy sees every attempt)."""
    options = GraphOptions(
        tenant_id="contoso.onmicrosoft.com",
        client_id="0e6f5d4c-3b2a-4190-8f7e-6d5c4b3a2910",
        client_secret=Secret("whatever-secret-value"),
        authority_host="https://login.example.test",
        graph_endpoint="https://graph.example.test",
        timeout=2,
    )
    results = check_tenant(options)
    assert results[0].status is Status.UNKNOWN and "proxy" in results[0].summary
    assert graph_proxy.targets == ["login.example.test:443"]


def test_the_discovery_guard_itself_catches_msal_defaults(graph_proxy: ProxyRecorder) -> None:
    """Control for the test above: MSAL's defaults WOULD ask login.microsoftonline.com first."""
    import msal
    import requests

    with pytest.raises(requests.exceptions.ProxyError):
        msal.ConfidentialClientApplication(
            "0e6f5d4c-3b2a-4190-8f7e-6d5c4b3a2910",
            authority="https://login.example.test/contoso.onmicrosoft.com",
            client_credential="x",
            timeout=2,
        )
    assert graph_proxy.targets and graph_proxy.targets[0] == "login.microsoftonline.com:443"


def test_public_cloud_defaults_go_through_the_proxy(graph_proxy: ProxyRecorder) -> None:
    """Default hosts: HTTPS_PROXY is honoured (and the proxy refuses, so nothing leaves loopback)."""
    options = GraphOptions(
        tenant_id="contoso.onmicrosoft.com",
        client_id="0e6f5d4c-3b2a-4190-8f7e-6d5c4b3a2910",
        client_secret=Secret("whatever-secret-value"),
        timeout=2,
    )
    results = check_tenant(options)
    assert results[0].status is Status.UNKNOWN and "login.microsoftonline.com" in results[0].summary
    assert graph_proxy.targets == ["login.microsoftonline.com:443"]
    assert "whatever-secret-value" not in all_output(results)
