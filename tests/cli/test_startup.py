"""`opsbook --help` and `--version` must not import the heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO

HEAVY = (
    "docker",
    "winrm",
    "msal",
    "dns",
    "cryptography",
    "yaml",
    "requests",
    "rich",
    "aiohttp",
    "prometheus_client",
    "bcrypt",
)

PROBE = """
import io, json, sys, contextlib
from opsbook.cli.app import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted({m.split('.')[0] for m in sys.modules})}))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["winrm", "--help"],
        ["adsync", "check", "--help"],
        ["docker-root", "--help"],
        ["exchange", "--help"],
        ["run", "--help"],
        ["serve", "--help"],
    ],
)
def test_help_and_version_do_not_import_heavy_libraries(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=REPO, check=True)
    result = json.loads(proc.stdout)
    assert result["code"] == 0
    loaded = set(result["modules"]) & set(HEAVY)
    assert not loaded, f"{' '.join(args)} imported {sorted(loaded)}"
