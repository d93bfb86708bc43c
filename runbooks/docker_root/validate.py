"""Ask dockerd itself whether it accepts a daemon.json (``dockerd --validate``, Docker 23.0+)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

TIMEOUT = 30.0
#: The lines of dockerd's output that say why it refuses to start or to accept a config.
_ERROR_LINE = re.compile(
    r"unable to configure|failed to start daemon|level=fatal|level=error|Error starting daemon", re.IGNORECASE
)


def dockerd_binary() -> str | None:
    """The dockerd on PATH (or /usr/sbin/dockerd), if any."""
    return shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)


@functools.lru_cache(maxsize=4)
def _supports_validate(dockerd: str) -> bool:
    try:
        helptext = subprocess.run([dockerd, "--help"], capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--validate" in helptext.stdout


@dataclass
class Validation:
    """What ``dockerd --validate`` said: ``available`` False when this dockerd cannot validate."""

    available: bool
    error: str = ""
    dockerd: str = ""

    @property
    def ok(self) -> bool:
        """Accepted, or not checkable."""
        return not self.error


def has_reason(output: str) -> bool:
    """Whether *output* holds a line in which dockerd says why it refused."""
    return any(_ERROR_LINE.search(line) for line in output.splitlines())


def error_line(output: str) -> str:
    """dockerd's own reason in *output* (the last line that gives one), in full; else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    reasons = [line for line in lines if _ERROR_LINE.search(line)]
    return (reasons or lines or [""])[-1]


def validate(path: str, dockerd: str | None = None) -> Validation:
    """Run ``dockerd --validate --config-file PATH`` where dockerd supports it."""
    binary = dockerd or dockerd_binary()
    if not binary or not _supports_validate(binary):
        return Validation(available=False, dockerd=binary or "")
    try:
        proc = subprocess.run(
            [binary, "--validate", "--config-file", path], capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Validation(available=False, error="", dockerd=f"{binary} ({exc})")
    if proc.returncode == 0:
        return Validation(available=True, dockerd=binary)
    return Validation(
        available=True,
        error=error_line(proc.stderr + "\n" + proc.stdout) or f"exit status {proc.returncode}",
        dockerd=binary,
    )


def validate_bytes(data: bytes, dockerd: str | None = None) -> Validation:
    """:func:`validate` for daemon.json content not written anywhere yet (a private temp file)."""
    import tempfile

    binary = dockerd or dockerd_binary()
    if not binary or not _supports_validate(binary):
        return Validation(available=False, dockerd=binary or "")
    with tempfile.TemporaryDirectory(prefix="opsbook-validate.") as folder:
        path = os.path.join(folder, "daemon.json")
        with open(path, "wb") as handle:
            handle.write(data)
        result = validate(path, binary)
    result.error = result.error.replace(path, "daemon.json")
    return result
