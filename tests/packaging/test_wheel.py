"""The built wheel installs one top-level name, ``opsbook``, and collides with nothing.

PyPI has distributions that install top-level ``cli`` and ``runbooks`` packages; opsbook
once shipped both names and broke (and was broken by) them. Here the wheel is built from
this checkout, installed into a fresh venv next to two such packages (made here, offline),
and ``opsbook --version`` / ``python -m opsbook`` must still work.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from opsbook import __version__
from tests.helpers import REPO


def _wheel(folder: Path, name: str, files: dict[str, str]) -> Path:
    """A minimal wheel of distribution *name* holding *files* (path -> text)."""
    dist = f"{name}-1.0.dist-info"
    entries = {
        **files,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for arc, text in entries.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arc},sha256={digest},{len(data)}")
            zf.writestr(arc, data)
        zf.writestr(f"{dist}/RECORD", "\n".join([*record, f"{dist}/RECORD,,"]) + "\n")
    return path


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    wheels = list(out.glob("opsbook-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_has_one_top_level_name(built_wheel: Path) -> None:
    names = zipfile.ZipFile(built_wheel).namelist()
    # importable: opsbook alone; besides it, only the wheel's metadata and the man page (data)
    assert {n.split("/")[0] for n in names} == {
        "opsbook",
        f"opsbook-{__version__}.dist-info",
        f"opsbook-{__version__}.data",
    }
    assert [n for n in names if n.startswith(f"opsbook-{__version__}.data/")] == [
        f"opsbook-{__version__}.data/data/share/man/man1/opsbook.1"
    ]
    top = (
        zipfile.ZipFile(built_wheel).read(f"opsbook-{__version__}.dist-info/top_level.txt").decode().split()
        if f"opsbook-{__version__}.dist-info/top_level.txt" in names
        else ["opsbook"]
    )
    assert top == ["opsbook"]
    # the package data travels with it
    assert "opsbook/runbooks/docs/docker-root.md" in names
    assert "opsbook/runbooks/examples/local.yaml" in names
    assert "opsbook/runbooks/exchange_mailbox/templates/license-fallback.ps1" in names
    metadata = zipfile.ZipFile(built_wheel).read(f"opsbook-{__version__}.dist-info/METADATA").decode()
    assert "License-Expression: MIT" in metadata
    assert f"opsbook-{__version__}.dist-info/licenses/LICENSE" in names


def test_installs_next_to_packages_named_cli_and_runbooks(built_wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # opsbook's dependencies come from this test run's own environment (offline): a plain path
    # entry, so that environment's editable opsbook (a .pth finder there) is not picked up.
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    squatters = [
        _wheel(tmp_path, "runbooks-squatter", {"runbooks/__init__.py": "import loguru  # noqa\n"}),
        _wheel(tmp_path, "cli-squatter", {"cli/__init__.py": "raise ImportError('not opsbook')\n"}),
    ]
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for wheel in (*squatters, built_wheel):
        proc = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
    assert (venv / "share" / "man" / "man1" / "opsbook.1").is_file(), "the man page is installed with the package"
    clean_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for cmd in ([str(venv / "bin" / "opsbook"), "--version"], [str(py), "-m", "opsbook", "--version"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=clean_env, check=False)
        assert proc.returncode == 0, (cmd, proc.stdout, proc.stderr)
        assert proc.stdout == f"opsbook {__version__}\n"
    # package data comes from opsbook.runbooks, not from whatever top-level `runbooks` is installed
    proc = subprocess.run(
        [str(venv / "bin" / "opsbook"), "runbooks", "show", "docker-root"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=clean_env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# ")
    # and the squatters still work as they did (nothing of ours replaced them)
    proc = subprocess.run(
        [str(py), "-c", "import cli"], capture_output=True, text=True, cwd=tmp_path, env=clean_env, check=False
    )
    assert "not opsbook" in proc.stderr
    # uninstalling opsbook leaves the others' files alone
    subprocess.run([str(py), "-m", "pip", "uninstall", "-q", "-y", "opsbook"], env=env, check=True, timeout=120)
    assert Path(site, "cli", "__init__.py").is_file() and Path(site, "runbooks", "__init__.py").is_file()


def test_sdist_carries_tests_and_changelog(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    import tarfile

    (sdist,) = tmp_path.glob("opsbook-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {
        "CHANGELOG.md",
        "LICENSE",
        "README.md",
        "pyproject.toml",
        "tests/helpers.py",
        "opsbook/cli/app.py",
        "opsbook/runbooks/model.py",
    } <= names
    assert any(n.startswith("docs/") for n in names)
