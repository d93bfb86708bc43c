"""Start-up benchmark: `opsbook --help` against `python -c "import typer"` (target ratio <= 1.3).

Both run in the same virtualenv, interleaved, median of N runs each.
Usage: .venv/bin/python benchmarks/bench_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET = 1.3


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    opsbook = shutil.which("opsbook", path=str(bindir)) or str(bindir / "opsbook")
    help_cmd = [opsbook, "--help"]
    version_cmd = [opsbook, "--version"]
    typer_cmd = [sys.executable, "-c", "import typer"]
    for cmd in (help_cmd, typer_cmd):  # warm the page cache and .pyc files
        _time(cmd)
    helps, versions, typers = [], [], []
    for _ in range(max(10, args.runs)):
        helps.append(_time(help_cmd))
        versions.append(_time(version_cmd))
        typers.append(_time(typer_cmd))
    h, v, t = statistics.median(helps), statistics.median(versions), statistics.median(typers)
    ratio = h / t
    print(f"opsbook --help         median {h * 1000:7.1f} ms  ({len(helps)} runs)")
    print(f"opsbook --version      median {v * 1000:7.1f} ms")
    print(f'python -c "import typer" median {t * 1000:7.1f} ms')
    print(f"ratio help/typer: {ratio:.2f} (target <= {TARGET})  {'PASS' if ratio <= TARGET else 'FAIL'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
