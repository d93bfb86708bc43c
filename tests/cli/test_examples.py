"""The scheduling examples work as shipped: systemd's own checks, Icinga's timeout, GitLab's pin.

test_run_examples.py checks the opsbook command lines in the examples; this file checks
the examples against the tools that run them: ``systemd-analyze verify`` and ``security``
(they need no systemd as PID 1: the units are loaded from a private unit path), the
Icinga timeout against the suite's worst-case run time, the GitLab job's pinned version.
"""

from __future__ import annotations

import configparser
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import opsbook
from opsbook.runbooks.suite.loader import load_suite
from tests.helpers import REPO
from tests.peers import need_binary

EXAMPLES = REPO / "runbooks" / "examples"
#: The highest `systemd-analyze security` exposure (0 = locked down, 10 = unsafe) we accept.
MAX_EXPOSURE = 4.0
#: What the Icinga timeout must leave on top of the suite's worst case: start-up and output.
MARGIN_S = 30


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(EXAMPLES / name)
    return parser


@pytest.fixture
def unit_dir(tmp_path: Path) -> Path:
    """The two units in a private unit folder, opsbook's path made real (verify checks it exists)."""
    folder = tmp_path / "units"
    folder.mkdir()
    real = str(Path(sys.executable).with_name("opsbook"))
    for name in ("opsbook-check.service", "opsbook-check.timer"):
        (folder / name).write_text((EXAMPLES / name).read_text().replace("/usr/local/bin/opsbook", real))
    return folder


def systemd_analyze(*args: str, unit_dir: Path) -> subprocess.CompletedProcess[str]:
    analyze = need_binary("systemd-analyze")
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:", "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""}
    return subprocess.run([analyze, *args], capture_output=True, text=True, timeout=120, env=env, check=False)


def test_systemd_units_pass_systemd_analyze_verify(unit_dir: Path) -> None:
    proc = systemd_analyze(
        "verify",
        "--man=no",
        str(unit_dir / "opsbook-check.service"),
        str(unit_dir / "opsbook-check.timer"),
        unit_dir=unit_dir,
    )
    assert proc.returncode == 0, proc.stderr
    assert "opsbook-check" not in proc.stderr, proc.stderr  # not even a warning about our units


def test_systemd_analyze_verify_catches_a_broken_unit(unit_dir: Path) -> None:
    """The control: verify really reads our file (a wrong ExecStart path fails it)."""
    service = unit_dir / "opsbook-check.service"
    service.write_text(
        service.read_text().replace(str(Path(sys.executable).with_name("opsbook")), "/nonexistent/opsbook")
    )
    proc = systemd_analyze("verify", "--man=no", str(service), unit_dir=unit_dir)
    assert proc.returncode != 0 and "/nonexistent/opsbook" in proc.stderr, proc.stderr


def exposure(unit_dir: Path) -> float:
    proc = systemd_analyze(
        "security", "--offline=true", "--no-pager", str(unit_dir / "opsbook-check.service"), unit_dir=unit_dir
    )
    match = re.search(r"Overall exposure level for opsbook-check\.service: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    return float(match.group(1))


def test_systemd_service_is_hardened(unit_dir: Path) -> None:
    score = exposure(unit_dir)
    assert score <= MAX_EXPOSURE, f"systemd-analyze security: {score} > {MAX_EXPOSURE}"


def test_systemd_security_score_measures_our_unit(unit_dir: Path) -> None:
    """The control: the same unit without its [Service] hardening scores far worse."""
    service = unit_dir / "opsbook-check.service"
    text = service.read_text()
    hardening = text[text.index("# --- sandbox") : text.index("# --- end of sandbox")]
    service.write_text(text.replace(hardening, ""))
    assert exposure(unit_dir) > 8.0


def test_systemd_service_sandbox_settings() -> None:
    service = unit("opsbook-check.service")["Service"]
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter": "@system-service",
        "PrivateDevices": "yes",
        "ReadWritePaths": "/var/lib/node_exporter/textfile_collector",
    }
    assert {key: service.get(key) for key in expected} == expected
    textfile = re.search(r"--textfile (\S+)", service["ExecStart"])
    assert textfile and os.path.dirname(textfile.group(1)) == service["ReadWritePaths"]
    for key in ("ExecStartPre", "ExecStart"):  # a full path: systemd's PATH has no ~/.local/bin
        assert service[key].split()[0] == "/usr/local/bin/opsbook"
    text = (EXAMPLES / "opsbook-check.service").read_text()
    assert "PIPX_BIN_DIR=/usr/local/bin" in text  # how opsbook gets to that path
    assert "docker" in text and "SupplementaryGroups=docker" in text  # the socket trade-off is explained


def worst_case_s(suite_path: Path) -> float:
    """The longest a suite can run: its entries in waves of `concurrency`, each up to its deadline."""
    suite = load_suite(suite_path)
    deadlines = [entry.deadline or suite.deadline for entry in suite.entries]
    return math.ceil(len(deadlines) / suite.concurrency) * max(deadlines)


def duration_s(value: str) -> float:
    """An Icinga / systemd duration: 90, 90s, 5m, 10min, 1h."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|min|h)?", value.strip())
    assert match, value
    return float(match.group(1)) * {"s": 1, None: 1, "m": 60, "min": 60, "h": 3600}[match.group(2)]


def longest_suite_run_s() -> float:
    """The worst case of every shipped suite, and of a suite that sets no deadline at all."""
    from opsbook.runbooks.suite.model import DEFAULT_DEADLINE

    return max([DEFAULT_DEADLINE, *(worst_case_s(p) for p in EXAMPLES.glob("*.yaml"))])


def icinga_suite_and_timeout() -> tuple[Path, float]:
    text = (EXAMPLES / "icinga2-opsbook.conf").read_text()
    command = text[text.index('object CheckCommand "opsbook-run"') :]
    timeout = re.search(r"^\s*timeout = (\S+)", command, re.MULTILINE)
    suite = re.search(r'vars\.opsbook_suite = "/etc/opsbook/([^"]+)"', command)
    assert timeout and suite, "the CheckCommand sets timeout and vars.opsbook_suite"
    return EXAMPLES / suite.group(1), duration_s(timeout.group(1))


def test_icinga_timeout_exceeds_the_suite_deadline() -> None:
    """An entry that hangs must be reported by opsbook (UNKNOWN, suite.entry), not killed by Icinga."""
    suite, timeout = icinga_suite_and_timeout()
    assert suite.is_file(), f"the Icinga example runs {suite.name}, which is not shipped"
    assert timeout >= worst_case_s(suite) + MARGIN_S, (timeout, worst_case_s(suite))
    assert timeout >= longest_suite_run_s() + MARGIN_S  # whichever suite a host's vars name


def test_worst_case_counts_waves_and_entry_deadlines(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "version: 1\ndefaults: {concurrency: 2, deadline: 100}\nchecks:\n"
        + "".join(f"  - name: e{i}\n    runbook: docker-root\n" for i in range(3))
        + "    deadline: 250\n"
    )
    assert worst_case_s(suite) == 2 * 250


def test_systemd_timeout_exceeds_the_suite_deadline() -> None:
    service = unit("opsbook-check.service")["Service"]
    assert duration_s(service["TimeoutStartSec"]) >= longest_suite_run_s() + MARGIN_S


def test_gitlab_job_installs_the_pinned_release() -> None:
    job = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())["opsbook-checks"]
    installs = [line for line in job["script"] if re.search(r"\bpipx? install\b", line)]
    assert len(installs) == 1, job["script"]
    pin = re.search(r"\bopsbook==(\S+)", installs[0])
    assert pin, f"not pinned: {installs[0]}"
    assert pin.group(1) == opsbook.__version__
    assert not re.search(r"install\s+(--\S+\s+)*\.(\s|$)", installs[0])  # not the runner's checkout


def test_every_pinned_version_in_the_examples_is_the_current_one() -> None:
    pins = {
        (path.name, pin)
        for path in EXAMPLES.rglob("*")
        if path.is_file()
        for pin in re.findall(r"opsbook==([\w.]+)", path.read_text())
    }
    assert {name for name, _ in pins} >= {"gitlab-ci.yml", "opsbook-check.service"}
    assert {pin for _, pin in pins} == {opsbook.__version__}, pins
