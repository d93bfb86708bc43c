"""``opsbook winrm audit`` through ``cli.app.main``: options, password sources, formats, secrecy."""

from __future__ import annotations

import inspect
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsbook.cli.commands import winrm_audit
from tests.fake_winrm import FakeWinRM, canned, cert_entry, inventory, listener_entry
from tests.helpers import run_main
from tests.tlspeers import TestCA

FQDN = "srv1.corp.test"
USER = "CORP\\svc-audit"
PASSWORD = "S3cret-Audit-Pw"
HOST = "127.0.0.30"


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeWinRM, Path, object, object]]:
    ca = TestCA("Corp Root CA")
    ca_file = ca.write(tmp_path_factory.mktemp("audit-cli"))
    old = ca.issue(FQDN, names=[FQDN, HOST], days=9)
    new = ca.issue(FQDN, names=[FQDN, HOST], days=365)
    fake = FakeWinRM(old, host=HOST, users={USER: PASSWORD})
    fake.behaviour = canned(
        inventory(
            [
                listener_entry(port=fake.port, hostname=FQDN, thumbprint=old.thumbprint),
                listener_entry("HTTP", port=5985),
            ],
            [cert_entry(old), cert_entry(new)],
            ssl_hash=old.thumbprint,
            port=fake.port,
        )
    )
    yield fake, ca_file, old, new
    fake.stop()


def test_json_report_finds_renewed_but_not_rebound(peer, capsys, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    fake, ca_file, old, new = peer
    monkeypatch.setenv("OPSBOOK_WINRM_PASSWORD", PASSWORD)
    res = run_main(capsys, "winrm", "audit", fake.target, "--username", USER, "--ca-file", str(ca_file), "-f", "json")
    assert res.code == 2, res.err
    doc = json.loads(res.out)
    assert doc["command"] == "winrm audit" and doc["status"] == "CRITICAL"
    checks = {c["id"]: c for c in doc["checks"]}
    assert checks["winrm.audit.login"]["status"] == "OK"
    assert checks["winrm.audit.renewal"]["status"] == "CRITICAL"
    assert new.thumbprint in checks["winrm.audit.renewal"]["summary"]
    assert old.cert.not_valid_after_utc.strftime("%Y-%m-%d") in checks["winrm.audit.renewal"]["summary"]
    assert checks["winrm.audit.http"]["status"] == "WARNING"
    assert checks["winrm.audit.presented"]["status"] == "OK"
    assert PASSWORD not in res.out + res.err + caplog.text


def test_template_option_limits_the_replacement(peer, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake, ca_file, _, new = peer
    monkeypatch.setenv("OPSBOOK_WINRM_PASSWORD", PASSWORD)
    res = run_main(
        capsys,
        "winrm",
        "audit",
        fake.target,
        "-u",
        USER,
        "--ca-file",
        str(ca_file),
        "-f",
        "json",
        "--template",
        "Machine",
    )
    checks = {c["id"]: c for c in json.loads(res.out)["checks"]}
    renewal = checks["winrm.audit.renewal"]
    assert renewal["status"] == "WARNING" and new.thumbprint not in renewal["summary"]
    assert "template Machine" in renewal["summary"]


def test_password_file_and_nagios(peer, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fake, ca_file, _, _ = peer
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    prom = tmp_path / "winrm.prom"
    res = run_main(
        capsys,
        "winrm",
        "audit",
        fake.target,
        "-u",
        USER,
        "--password-file",
        str(pw),
        "--ca-file",
        str(ca_file),
        "-f",
        "nagios",
        "--textfile",
        str(prom),
    )
    assert res.code == 2
    assert res.out.startswith("OPSBOOK CRITICAL - ")
    assert re.search(r'^opsbook_check_status\{.*check="winrm.audit.renewal".*\} 2$', prom.read_text(), re.M)
    assert PASSWORD not in res.out + res.err + prom.read_text()


def test_password_file_written_by_powershell_with_bom_and_crlf(peer, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``'pw' | Out-File -Encoding utf8 pw.txt`` (Windows PowerShell 5.1) writes a BOM: it is not part of the password."""
    fake, ca_file, _, _ = peer
    pw = tmp_path / "pw.txt"
    pw.write_bytes(("\ufeff" + PASSWORD + "\r\n").encode("utf-8"))
    res = run_main(
        capsys,
        "winrm",
        "audit",
        fake.target,
        "-u",
        USER,
        "--password-file",
        str(pw),
        "--ca-file",
        str(ca_file),
        "-f",
        "json",
    )
    checks = {c["id"]: c for c in json.loads(res.out)["checks"]}
    assert checks["winrm.audit.login"]["status"] == "OK", checks["winrm.audit.login"]["summary"]
    assert PASSWORD not in res.out + res.err


@pytest.mark.parametrize("flag", ["--password", "-p", "--password=S3cret-Audit-Pw", "--pass", "--passwd"])
def test_password_is_never_accepted_on_the_command_line(capsys, flag: str) -> None:  # type: ignore[no-untyped-def]
    args = [flag] if "=" in flag else [flag, PASSWORD]
    res = run_main(capsys, "winrm", "audit", "127.0.0.1", "-u", USER, *args)
    assert res.code == 3 and res.out == ""
    assert res.err.startswith("opsbook: error: No such option") and res.err.count("\n") == 1
    assert PASSWORD not in res.err


def test_wrong_password_exit_2_clean_message(peer, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake, ca_file, _, _ = peer
    monkeypatch.setenv("OPSBOOK_WINRM_PASSWORD", "Not-The-Password-9")
    res = run_main(capsys, "winrm", "audit", fake.target, "-u", USER, "--ca-file", str(ca_file), "-f", "json")
    assert res.code == 2
    check = json.loads(res.out)["checks"][0]
    assert check["id"] == "winrm.audit.login" and "login refused" in check["summary"]
    assert "Not-The-Password-9" not in res.out + res.err


def test_no_password_non_interactive_exit_3(capsys) -> None:  # type: ignore[no-untyped-def]
    res = run_main(capsys, "winrm", "audit", "127.0.0.1", "-u", USER)
    assert res.code == 3
    assert res.err.strip() == (
        "opsbook: error: no password: set OPSBOOK_WINRM_PASSWORD, give --password-file, "
        "or run on a terminal to be asked"
    )
    assert res.out == ""


@pytest.mark.parametrize(
    "args, message",
    [
        (["127.0.0.1"], "--username is required"),
        (["127.0.0.1", "--transport", "certificate"], "--cert-pem"),
        (["127.0.0.1", "-u", "x", "--password-file", "/nonexistent/pw"], "cannot read secret file"),
        (["127.0.0.1", "-u", "x", "--transport", "basic"], "Invalid value"),
        (["127.0.0.1:99999", "-u", "x"], "invalid port"),
        ([], "no hosts"),
        (["a..corp.test", "-u", "x"], "invalid host name 'a..corp.test': label empty or too long"),
        (["127.0.0.1", "-u", "x", "--ca-file", __file__], "cannot load --ca-file"),  # not PEM
        (["127.0.0.1", "-u", "x", "--template", " "], "--template must not be empty"),
        (["127.0.0.1", "-u", "x", "--resolve", "srv1.corp.test"], "invalid --resolve"),
        (["127.0.0.1", "-u", "x", "--resolve", "srv1.corp.test:not-an-ip"], "is not an IP address"),
    ],
)
def test_bad_input_exit_3(capsys, monkeypatch, args, message) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OPSBOOK_WINRM_PASSWORD", "x-pass")
    res = run_main(capsys, "winrm", "audit", *args)
    assert res.code == 3
    assert message in res.err and "Traceback" not in res.err
    assert res.err.startswith("opsbook: error: ") and res.err.count("\n") == 1 and res.out == ""


def test_missing_transport_library_exit_3(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import winrm.transport as wt

    monkeypatch.setenv("OPSBOOK_WINRM_PASSWORD", "x-pass")
    for transport, flag in (("kerberos", wt.HAVE_KERBEROS), ("credssp", wt.HAVE_CREDSSP)):
        if flag:
            continue
        res = run_main(capsys, "winrm", "audit", "127.0.0.1", "-u", "x", "--transport", transport)
        assert res.code == 3 and f"pywinrm[{transport}]" in res.err


def test_missing_transport_library_names_the_opsbook_extra(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import winrm.transport as wt

    monkeypatch.setenv("OPSBOOK_WINRM_PASSWORD", "x-pass")
    monkeypatch.setattr(wt, "HAVE_CREDSSP", False)
    res = run_main(capsys, "winrm", "audit", "127.0.0.1", "-u", "x", "--transport", "credssp")
    assert res.code == 3 and "pip install 'opsbook[credssp]'" in res.err and res.err.count("\n") == 1


def test_pyproject_extras_are_pywinrms_own() -> None:
    import tomllib

    from tests.helpers import REPO

    extras = tomllib.loads((Path(REPO) / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["kerberos"] == ["pywinrm[kerberos]>=0.5"]
    assert extras["credssp"] == ["pywinrm[credssp]>=0.5"]
    for doc in ("README.md", "runbooks/docs/winrm-https.md"):
        text = (Path(REPO) / doc).read_text()
        assert "opsbook[kerberos]" in text and "opsbook[credssp]" in text, doc


def test_build_report_takes_the_typer_parameters_by_name() -> None:
    typer_params = set(inspect.signature(winrm_audit.audit).parameters) - {"fmt", "textfile"}
    assert typer_params == set(inspect.signature(winrm_audit.build_report).parameters)


def test_help_lists_options_and_examples(capsys) -> None:  # type: ignore[no-untyped-def]
    res = run_main(capsys, "winrm", "audit", "--help")
    assert res.code == 0
    for needle in (
        "--username",
        "--password-file",
        "--transport",
        "--ca-file",
        "--cert-pem",
        "--cert-key-pem",
        "--timeout",
        "--port",
        "Examples:",
    ):
        assert needle in res.out
    assert "--password " not in res.out  # never a password flag
