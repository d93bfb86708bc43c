"""rsync with hard links, ACLs, xattrs, sparse files and numeric ids, with progress parsing."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

RSYNC_FLAGS = ["-aHAXS", "--numeric-ids", "--one-file-system", "--delete"]
_PROGRESS = re.compile(r"^\s*([\d,]+)\s+\d+%.*?(?:xfr#(\d+))?", re.S)
_FILES = re.compile(r"Number of regular files transferred:\s*([\d,]+)")
_BYTES = re.compile(r"Total transferred file size:\s*([\d,]+)")
_TOTAL = re.compile(r"Total file size:\s*([\d,]+)")

Progress = Callable[[int, int, int], None]


class CopyError(Exception):
    """rsync failed."""


@dataclass
class CopyResult:
    """What one rsync pass did."""

    seconds: float
    files: int
    bytes: int
    total_bytes: int
    exit_code: int


def rsync_command(src: str, dst: str, *, progress: bool = False) -> list[str]:
    """The rsync command copying the contents of *src* into *dst* (exactly, with --delete)."""
    rsync = shutil.which("rsync") or "rsync"
    extra = ["--info=progress2", "--no-inc-recursive"] if progress else []
    return [rsync, *RSYNC_FLAGS, "--stats", *extra, src.rstrip("/") + "/", dst.rstrip("/") + "/"]


def parse_progress(line: str) -> tuple[int, int] | None:
    """``(bytes, files)`` from an rsync ``--info=progress2`` line, or None."""
    match = _PROGRESS.match(line)
    if not match or "%" not in line:
        return None
    return int(match.group(1).replace(",", "")), int(match.group(2) or 0)


def _num(pattern: re.Pattern[str], text: str) -> int:
    match = pattern.search(text)
    return int(match.group(1).replace(",", "")) if match else 0


def rsync(
    src: str, dst: str, *, progress: Progress | None = None, tolerate: tuple[int, ...] = (), timeout: float | None = None
) -> CopyResult:
    """Copy *src*/ into *dst*/ with rsync; exit codes in *tolerate* are accepted.

    (24, "files vanished", is expected while the engine still runs.) *progress* is
    called with ``(bytes_done, total_bytes, files)``.
    """
    cmd = rsync_command(src, dst, progress=progress is not None)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    chunks: list[bytes] = []
    buffer = b""
    while True:
        data = proc.stdout.read1(65536)  # type: ignore[attr-defined]
        if not data:
            break
        chunks.append(data)
        if progress is not None:
            buffer += data
            *lines, buffer = re.split(rb"[\r\n]", buffer)
            for raw in lines:
                parsed = parse_progress(raw.decode(errors="replace"))
                if parsed:
                    progress(parsed[0], 0, parsed[1])
    stderr = proc.stderr.read().decode(errors="replace")
    code = proc.wait(timeout=timeout)
    text = b"".join(chunks).decode(errors="replace")
    if code != 0 and code not in tolerate:
        tail = " ".join(stderr.strip().splitlines()[-3:])
        raise CopyError(f"rsync exited with {code}: {tail}")
    return CopyResult(
        round(time.monotonic() - started, 3), _num(_FILES, text), _num(_BYTES, text), _num(_TOTAL, text), code
    )
