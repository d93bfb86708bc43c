"""Suite secrets: only declared (or OPSBOOK_*) variables are read, and their values are masked in
every spelling a check may echo back (lower case, IDNA A-labels), in stdout and in the textfile."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import run_main
from tests.tlspeers import TestCA, TlsServer, make_leaf

SECRET_HOST = "Geheim-München.Corp.Test"
FORMS = ("geheim-münchen", "xn--geheim-mnchen-3ob", "geheim-mnchen")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[TlsServer, Path]]:
    ca = TestCA("Corp WinRM CA")
    srv = TlsServer(make_leaf("valid", ca, "winrm1.corp.test"), mode="winrm", host="127.0.0.1")
    try:
        yield srv, ca.write(tmp_path)
    finally:
        srv.stop()


def test_a_secret_host_name_does_not_leak_in_lower_case_or_idna_form(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: tuple[TlsServer, Path]
) -> None:
    srv, ca_file = server
    monkeypatch.setenv("OPSBOOK_T_HOST", SECRET_HOST)
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "version: 1\nchecks:\n  - name: fleet\n    runbook: winrm\n    with:\n"
        f"      hosts: ['${{OPSBOOK_T_HOST}}:{srv.port}']\n"
        "      resolve: ['${OPSBOOK_T_HOST}:127.0.0.1']\n"
        f"      ca-file: {ca_file}\n      timeout: 3\n"
    )
    textfile = tmp_path / "opsbook.prom"
    result = run_main(capsys, "run", str(suite), "-f", "json", "--textfile", str(textfile))
    assert result.code == 2, result.err  # the certificate does not cover the name: a real finding
    doc = json.loads(result.out)
    assert any(c["id"] == "winrm.cert.name" and c["status"] == "CRITICAL" for c in doc["checks"])
    for text in (result.out, result.err, textfile.read_text()):
        for form in FORMS:
            assert form not in text.lower(), (form, text)


def test_an_undeclared_variable_is_refused_with_its_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-value-123")
    monkeypatch.setenv("CORP_ISSUER", "Corp Issuing CA")
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "version: 1\nenv: [CORP_ISSUER]\nchecks:\n  - name: a\n    runbook: winrm\n    with:\n"
        "      hosts: [127.0.0.1]\n      issuer: ${CORP_ISSUER}\n      ca-file: ${AWS_SECRET_ACCESS_KEY}\n"
    )
    result = run_main(capsys, "run", "--validate", str(suite))
    assert result.code == 3 and result.out == ""
    assert re.fullmatch(
        rf"opsbook: error: {re.escape(str(suite))}:9:16: \$\{{AWS_SECRET_ACCESS_KEY\}}: the suite does not declare "
        r"AWS_SECRET_ACCESS_KEY; list it under the top-level 'env:' \(or use a name starting with OPSBOOK_\)\n",
        result.err,
    ), result.err
    assert "aws-value-123" not in result.err
    suite.write_text(suite.read_text().replace("      ca-file: ${AWS_SECRET_ACCESS_KEY}\n", ""))
    assert run_main(capsys, "run", "--validate", str(suite)).code == 0  # the declared one is fine
