"""Files written beside the report: the Prometheus textfile and the JUnit file, atomically."""

from __future__ import annotations

import os

from opsbook.runbooks.model import Report


def write_textfile(path: str | os.PathLike[str], report: Report) -> None:
    """Write the Prometheus rendering atomically for node_exporter's textfile collector."""
    from .formats import render_prometheus

    _write("--textfile", path, render_prometheus(report))


def write_junit_file(path: str | os.PathLike[str], report: Report) -> None:
    """Write the JUnit rendering atomically."""
    from .formats import render_junit

    _write("--junit-file", path, render_junit(report))


def _write(option: str, path: str | os.PathLike[str], text: str) -> None:
    """Atomic write, replacing the file; an unwritable path is bad input (exit 3, one line)."""
    from opsbook.runbooks.fsutil import write_output

    write_output(path, text.encode("utf-8"), force=True, option=option)
