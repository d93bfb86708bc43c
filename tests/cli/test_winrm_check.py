"""``opsbook winrm check`` through the CLI (``cli.app.main``), against loopback TLS peers."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsbook.cli.commands import winrm_check
from tests.helpers import run_cli, run_main
from tests.tlspeers import HangServer, TestCA, TlsServer, free_port, make_leaf

NAME = "winrm1.corp.test"


@pytest.fixture(scope="module")
def cli_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestCA, Path]:
    ca = TestCA("Corp WinRM CA")
    return ca, ca.write(tmp_path_factory.mktemp("winrm-cli"))


@pytest.fixture
def listener(cli_ca: tuple[TestCA, Path]) -> Iterator:
    started: list[TlsServer] = []

    def start(kind: str = "valid", mode: str = "winrm", host: str = "127.0.0.1") -> TlsServer:
        srv = TlsServer(make_leaf(kind, cli_ca[0], NAME), mode=mode, host=host)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def target(srv: TlsServer) -> list[str]:
    return [f"{NAME}:{srv.port}", "--resolve", f"{NAME}:{srv.host}"]


def test_healthy_listener_exits_0_with_json(capsys, listener, cli_ca) -> None:
    srv = listener()
    res = run_main(
        capsys, "winrm", "check", *target(srv), "--ca-file", str(cli_ca[1]), "-f", "json", "--issuer", "Corp WinRM"
    )
    assert res.code == 0, res.out + res.err
    doc = json.loads(res.out)
    assert doc["command"] == "winrm check" and doc["status"] == "OK"
    ids = [c["id"] for c in doc["checks"]]
    assert ids[:2] == ["winrm.tcp", "winrm.tls"] and "winrm.cert.expiry" in ids and "winrm.wsman" in ids
    expiry = next(c for c in doc["checks"] if c["id"] == "winrm.cert.expiry")
    assert expiry["target"] == f"{NAME}:{srv.port}"
    assert expiry["metrics"]["days_left"] in (364, 365)
    tls = next(c for c in doc["checks"] if c["id"] == "winrm.tls")
    thumb = tls["details"]["thumbprint"]
    assert len(thumb) == 40 and thumb == thumb.upper() and int(thumb, 16) >= 0
    assert expiry["details"]["thumbprint"] == thumb


@pytest.mark.parametrize(("kind", "code"), [("expiring", 1), ("expired", 2), ("wrong_ca", 2), ("sha1", 2)])
def test_exit_code_follows_the_worst_check(capsys, listener, cli_ca, kind: str, code: int) -> None:
    res = run_main(capsys, "winrm", "check", *target(listener(kind)), "--ca-file", str(cli_ca[1]), "-f", "nagios")
    assert res.code == code, res.out
    first = res.out.splitlines()[0]
    assert first.startswith(f"OPSBOOK {['OK', 'WARNING', 'CRITICAL'][code]} - ")


def test_nagios_perfdata_has_lower_is_worse_ranges(capsys, listener, cli_ca) -> None:
    res = run_main(
        capsys,
        "winrm",
        "check",
        *target(listener("expiring")),
        "--ca-file",
        str(cli_ca[1]),
        "-f",
        "nagios",
        "--warn-days",
        "20",
        "--crit-days",
        "5",
    )
    assert res.code == 1
    assert "days_left'=10;20:;5:" in res.out.splitlines()[0]
    assert "WARNING: " in res.out and "certificate expires in 10 days" in res.out


def test_hosts_file_prometheus_textfile_and_unreachable_hosts(capsys, listener, cli_ca, tmp_path: Path) -> None:
    srv = listener()
    closed = free_port()
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"# fleet\n{NAME}:{srv.port}\n127.0.0.1:{closed}   # decommissioned\n")
    prom = tmp_path / "winrm.prom"
    res = run_main(
        capsys,
        "winrm",
        "check",
        "--hosts-file",
        str(hosts),
        "--resolve",
        f"{NAME}:{srv.host}",
        "--ca-file",
        str(cli_ca[1]),
        "-f",
        "prometheus",
        "--textfile",
        str(prom),
        "--timeout",
        "1",
    )
    assert res.code == 2

    def series(text: str) -> list[str]:
        return [line for line in text.splitlines() if "last_run_timestamp" not in line]

    assert series(prom.read_text()) == series(res.out)

    def status_of(check: str, where: str) -> list[str]:
        return [
            line.rsplit(" ", 1)[1]
            for line in res.out.splitlines()
            if line.startswith("opsbook_check_status{") and f'check="{check}"' in line and f'target="{where}"' in line
        ]

    assert status_of("winrm.tcp", f"127.0.0.1:{closed}") == ["2"]
    # The unreachable host is one CRITICAL check, not a pile of dependent failures.
    assert res.out.count(f'target="127.0.0.1:{closed}"') == 2  # status + duration series of winrm.tcp
    assert status_of("winrm.wsman", f"{NAME}:{srv.port}") == ["0"]
    assert status_of("winrm.cert.expiry", f"{NAME}:{srv.port}") == ["0"]


def test_unwritable_textfile_is_bad_input_not_an_internal_error(capsys, listener, cli_ca, tmp_path: Path) -> None:
    srv = listener()
    res = run_main(
        capsys,
        "winrm",
        "check",
        f"{NAME}:{srv.port}",
        "--resolve",
        f"{NAME}:{srv.host}",
        "--ca-file",
        str(cli_ca[1]),
        "-f",
        "prometheus",
        "--textfile",
        str(tmp_path / "no-dir" / "w.prom"),
    )
    assert res.code == 3
    assert res.err.startswith("opsbook: error: cannot write --textfile ") and res.err.count("\n") == 1
    assert "internal error" not in res.err and "Traceback" not in res.err


def test_hung_listener_table_output(capsys, cli_ca) -> None:
    with HangServer("127.0.0.2") as srv:
        res = run_main(capsys, "winrm", "check", srv.target, "--timeout", "0.5", "--ca-file", str(cli_ca[1]))
    assert res.code == 2
    assert "no TLS handshake within 0.5s" in res.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no hosts to check"),
        (["srv1", "--ca-file", "/nonexistent/ca.pem"], "--ca-file"),
        (["srv1", "--crit-days", "40"], "must not exceed --warn-days"),
        (["srv1:99999"], "invalid port"),
        (["srv1", "--resolve", "srv1"], "invalid --resolve"),
        (["srv1", "--hosts-file", "/nonexistent/hosts"], "hosts-file"),
        (["srv1", "--timeout", "0"], "timeout"),
        (["srv1", "--concurrency", "0"], "concurrency"),
        (["srv1:abc"], "invalid port"),
        (["srv1:²"], "invalid port"),
        (["[::1"], "missing ']'"),
        (["a..corp.test"], "invalid host name"),
        (["\ufeff"], "invalid host name"),
        (["srv1", "--timeout", "-1"], "timeout"),
        (["srv1", "--resolve", "srv1:not-an-ip"], "is not an IP address"),
    ],
)
def test_bad_input_is_one_line_and_exit_3(capsys, args: list[str], message: str) -> None:
    res = run_main(capsys, "winrm", "check", *args)
    assert res.code == 3
    assert message in res.err
    assert "Traceback" not in res.err and res.out == ""
    assert res.err.startswith("opsbook: error: ") and res.err.count("\n") == 1


def test_help_has_examples_and_every_contract_option() -> None:
    res = run_cli("winrm", "check", "--help")
    assert res.code == 0
    for option in (
        "--hosts-file",
        "--port",
        "--ca-file",
        "--issuer",
        "--warn-days",
        "--crit-days",
        "--timeout",
        "--concurrency",
        "--resolve",
        "--format",
        "--textfile",
        "Examples:",
    ):
        assert option in res.out


def test_build_report_takes_the_command_parameters_by_name() -> None:
    """``opsbook run`` passes a suite entry's options to build_report by the Typer parameter names."""
    command = set(inspect.signature(winrm_check.check).parameters) - {"fmt", "textfile"}
    assert set(inspect.signature(winrm_check.build_report).parameters) == command


def test_build_report_directly(listener, cli_ca) -> None:
    srv = listener(mode="identify")
    report = winrm_check.build_report(
        hosts=[f"{NAME}:{srv.port}"], resolve=[f"{NAME}:{srv.host}"], ca_file=cli_ca[1], timeout=2
    )
    assert report.command == "winrm check"
    assert report.status.value == "OK"
    assert any(c.id == "winrm.wsman" and "IdentifyResponse" in c.summary for c in report.checks)


def test_check_help_does_not_import_cryptography() -> None:
    import subprocess
    import sys

    from tests.helpers import REPO

    probe = (
        "import io, sys, contextlib\nfrom cli.app import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n    code = main(['winrm', 'check', '--help'])\n"
        "print(code, 'cryptography' in sys.modules, 'opsbook.runbooks.winrm_https.check' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert proc.stdout.split() == ["0", "False", "False"]


def test_ipv6_target_in_brackets(capsys, cli_ca) -> None:
    import socket

    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        srv = TlsServer(cli_ca[0].issue("::1", names=["::1"]), host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with srv:
        res = run_main(capsys, "winrm", "check", f"[::1]:{srv.port}", "--ca-file", str(cli_ca[1]), "-f", "json")
        assert srv.requests and srv.requests[0].headers["host"] == f"[::1]:{srv.port}"
    doc = json.loads(res.out)
    assert res.code == 0, res.out
    assert {c["target"] for c in doc["checks"]} == {f"[::1]:{srv.port}"}


def test_textfile_in_a_missing_folder_is_refused_before_any_check(capsys, tmp_path: Path) -> None:
    """Issue #12: refuse at once, like adsync, instead of checking a hanging fleet first."""
    import time

    from tests.tlspeers import HangServer

    with HangServer() as hang:
        start = time.perf_counter()
        res = run_main(
            capsys,
            "winrm",
            "check",
            hang.target,
            "--timeout",
            "3",
            "-f",
            "prometheus",
            "--textfile",
            str(tmp_path / "no-dir" / "w.prom"),
        )
        elapsed = time.perf_counter() - start
    assert res.code == 3
    assert res.err.startswith("opsbook: error: cannot write --textfile ") and "does not exist" in res.err
    assert elapsed < 1.0, elapsed
