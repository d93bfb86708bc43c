"""Exchange benchmark: a 10,000-row CSV to a script vs `opsbook --version` (target ratio <= 3).

Both run the installed console script (`.venv/bin/opsbook`) as subprocesses, interleaved,
median of N runs each. Local files only, no network.
Usage: .venv/bin/python benchmarks/bench_exchange.py [--runs N] [--rows N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 3.0


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def _write_csv(path: Path, rows: int) -> None:
    lines = ["DisplayName,identity,Ticket"]
    for n in range(rows):
        # a realistic mix: UPNs (some with quotes), GUIDs, aliases
        if n % 10 == 0:
            ident = f"{n:08x}-0000-4000-8000-{n:012x}"
        elif n % 10 == 1:
            ident = f"alias{n}"
        elif n % 10 == 2:
            ident = f"o'brien.{n}@contoso.com"
        else:
            ident = f"user.{n}@contoso.com"
        lines.append(f'User {n},"{ident}",CHG{n}')
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    opsbook = shutil.which("opsbook", path=str(bindir)) or str(bindir / "opsbook")
    with tempfile.TemporaryDirectory(prefix="opsbook-bench-exchange-") as tmp:
        users = Path(tmp) / "users.csv"
        out = Path(tmp) / "Clear.ps1"
        _write_csv(users, args.rows)
        gen_cmd = [
            opsbook,
            "exchange",
            "clear-previous-mailbox",
            "--csv",
            str(users),
            "--license-reset",
            "--output",
            str(out),
            "--force",
        ]
        version_cmd = [opsbook, "--version"]
        for cmd in (gen_cmd, version_cmd):  # warm the page cache and .pyc files
            _time(cmd)
        size = out.stat().st_size
        gens, versions = [], []
        for _ in range(max(5, args.runs)):
            gens.append(_time(gen_cmd))
            versions.append(_time(version_cmd))
    g, v = statistics.median(gens), statistics.median(versions)
    ratio = g / v
    print(f"csv -> script ({args.rows} rows, {size} bytes)  median {g * 1000:7.1f} ms  ({len(gens)} runs)")
    print(f"opsbook --version                     median {v * 1000:7.1f} ms")
    print(f"ratio script/version: {ratio:.2f} (target <= {TARGET})  {'PASS' if ratio <= TARGET else 'FAIL'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
