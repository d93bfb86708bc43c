"""Copying a tree exactly: rsync with hard links, ACLs, xattrs, sparse files and numeric ids, with progress."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

#: ``--modify-window=-1`` compares mtimes to the nanosecond: with whole seconds (rsync's default)
#: a file rewritten at the same size in the same second as the warm copy would be skipped.
RSYNC_FLAGS = ["-aHAXS", "--numeric-ids", "--one-file-system", "--delete", "--modify-window=-1"]
#: The exact pass over files changed since the warm copy began: content copied whatever
#: size and mtime say, in place so that hard links to them stay links.
EXACT_FLAGS = ["-aHAX", "--numeric-ids", "--ignore-times", "--inplace", "--from0"]
#: A fresh filesystem's lost+found in TARGET is neither copied over nor deleted.
RSYNC_FILTERS = ["--filter=P /lost+found"]
_PROGRESS = re.compile(r"^\s*([\d,]+)\s+(\d+)%")
_XFR = re.compile(r"xfr#(\d+)")
_FILES = re.compile(r"Number of regular files transferred:\s*([\d,]+)")
_BYTES = re.compile(r"Total transferred file size:\s*([\d,]+)")
_TOTAL = re.compile(r"Total file size:\s*([\d,]+)")
PR_SET_PDEATHSIG = 1

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
    return [rsync, *RSYNC_FLAGS, *RSYNC_FILTERS, "--stats", *extra, src.rstrip("/") + "/", dst.rstrip("/") + "/"]


def exact_command(src: str, dst: str, list_file: str) -> list[str]:
    """The rsync command re-copying the files named (NUL-separated, relative) in *list_file*."""
    rsync = shutil.which("rsync") or "rsync"
    return [rsync, *EXACT_FLAGS, f"--files-from={list_file}", "--stats", src.rstrip("/") + "/", dst.rstrip("/") + "/"]


def parse_progress(line: str) -> tuple[int, int, int] | None:
    """``(bytes, total_bytes, files)`` from an rsync ``--info=progress2`` line, or None.

    The total is estimated from the percentage (0 while rsync shows 0%).
    """
    match = _PROGRESS.match(line)
    if not match:
        return None
    done = int(match.group(1).replace(",", ""))
    pct = int(match.group(2))
    files = _XFR.search(line)
    return done, (done * 100 // pct if pct else 0), int(files.group(1)) if files else 0


def _num(pattern: re.Pattern[str], text: str) -> int:
    match = pattern.search(text)
    return int(match.group(1).replace(",", "")) if match else 0


def _pdeathsig() -> Callable[[], None] | None:
    """A pre-exec hook making the kernel kill the child when opsbook dies (None without prctl).

    kill -9 of opsbook must not leave an rsync writing into TARGET. libc is loaded here, in
    the parent, so the child only calls a ready function pointer between fork and exec.
    """
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    signum = int(signal.SIGKILL)

    def hook() -> None:  # pragma: no cover - runs in the child
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)

    return hook


def rsync(
    src: str,
    dst: str,
    *,
    progress: Progress | None = None,
    tolerate: tuple[int, ...] = (),
    timeout: float | None = None,
) -> CopyResult:
    """Copy *src*/ into *dst*/ with rsync; exit codes in *tolerate* are accepted.

    (24, "files vanished", is expected while the engine still runs.) *progress* is
    called with ``(bytes_done, total_bytes, files)``. rsync dies with this process.
    """
    return _run(
        rsync_command(src, dst, progress=progress is not None), progress=progress, tolerate=tolerate, timeout=timeout
    )


def recopy(src: str, dst: str, paths: list[str], *, timeout: float | None = None) -> CopyResult:
    """Copy the files *paths* (relative to *src*) again, content and metadata, whatever their mtimes say.

    rsync's quick check trusts size and mtime; a file rewritten at the same size within one
    tick of the clock that stamps mtimes looks unchanged to it. The files changed since the
    warm copy began are few, so they are simply copied again.
    """
    if not paths:
        return CopyResult(0.0, 0, 0, 0, 0)
    with tempfile.NamedTemporaryFile(prefix="opsbook-exact.", suffix=".list") as listing:
        listing.write(b"".join(os.fsencode(p) + b"\0" for p in paths))
        listing.flush()
        return _run(exact_command(src, dst, listing.name), progress=None, tolerate=(), timeout=timeout)


def _run(cmd: list[str], *, progress: Progress | None, tolerate: tuple[int, ...], timeout: float | None) -> CopyResult:
    started = time.monotonic()
    # stderr goes to a file: a pipe we do not read while reading stdout could fill up
    # (thousands of "file vanished" lines during the warm copy) and hang both processes.
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=errors,
            stdin=subprocess.DEVNULL,
            preexec_fn=_pdeathsig(),  # noqa: PLW1509 - the hook only calls prctl(2)
        )
        assert proc.stdout is not None
        chunks: list[bytes] = []
        buffer = b""
        try:
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
                            progress(*parsed)
                if timeout is not None and time.monotonic() - started > timeout:
                    raise subprocess.TimeoutExpired(cmd, timeout)
            code = proc.wait(timeout=timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    text = b"".join(chunks).decode(errors="replace")
    if code != 0 and code not in tolerate:
        tail = " ".join(stderr.strip().splitlines()[-3:])[:400]
        raise CopyError(f"rsync exited with {code}: {tail}")
    return CopyResult(
        round(time.monotonic() - started, 3), _num(_FILES, text), _num(_BYTES, text), _num(_TOTAL, text), code
    )
