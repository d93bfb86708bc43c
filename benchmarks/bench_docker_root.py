"""`opsbook docker-root move` benchmark against plain rsync, on a real dockerd (local only).

A private dockerd (tests/e2e/dockerd_peer.py: own socket, exec-root, daemon.json and
data-root under /tmp, driven by stop/start scripts) gets an imported busybox image, a
volume with data, a running and a stopped container, and a named volume ``benchtree``
whose _data folder holds a synthetic tree (benchmarks/_dockerroot_tree.py): >= 20,000
files (default 24,000, ~1.5 GiB) with hard-link groups, symlinks, numeric owners,
``user.*`` xattrs and a 1 GiB sparse file.

In the same run:
  1. cold copy: the engine is stopped and the whole data-root is copied with plain
     ``rsync -aHAXS --numeric-ids`` into an empty folder (the copy is checked, then removed);
  2. the engine is started again (and the container restarted), then
     ``opsbook docker-root move TARGET --yes -f json`` moves the data-root;
  3. the same cold rsync again, from the old root (left in place, quiet now).
The yardstick is the mean of the two cold copies: this machine's load drifts, and the
report's warm_copy_s (the same rsync inside the move) shows how much. Measured: total move time (wall time of the CLI process) / cold rsync time -> target <= 1.5,
and engine downtime (the report's ``times.downtime_s``: stop to verified start) / cold rsync
time -> target <= 0.5. Afterwards the benchmark proves the move was correct: Docker runs on
TARGET with the same images, containers (the running one running) and volumes; on TARGET
every entry of the tree has the same content, mode, numeric owner, mtime and xattrs, the
same names share an inode (hard links), the sparse file still has holes; a container
reads a file of the volume with the same checksum.

Usage: .venv/bin/python benchmarks/bench_docker_root.py [--files N] [--runs N] [--keep]
Needs root, dockerd and rsync. Exits 1 when a target is missed or the move was not correct,
2 when the set-up fails.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _dockerroot_tree import TreeSpec, build_tree, check_copy, fingerprint, stats  # noqa: E402

from tests.e2e.dockerd_peer import DockerdPeer  # noqa: E402

MOVE_TARGET = 1.5
DOWNTIME_TARGET = 0.5
MIN_FILES = 20_000
RSYNC_TIMEOUT = 1800
MOVE_TIMEOUT = 3600
VOLUME = "benchtree"
PROBE_FILE = "layer000/usr/lib/pkg0000/f000000.so"
DOWNTIME_STEPS = ("stop", "final-copy", "verify-copy", "backup", "dropin", "selinux", "daemon-json", "start", "verify")


class SetupError(Exception):
    """The benchmark could not set up or run its peer."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    del frame
    raise SystemExit(128 + signum)  # runs the finally blocks: dockerd stopped, mounts and folders removed


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _step_seconds(journal: Path) -> dict[str, float]:
    """Seconds per step of the move, from the journal's started/done timestamps."""
    steps = json.loads(journal.read_text()).get("steps", [])
    started: dict[str, float] = {}
    out: dict[str, float] = {}
    for s in steps:
        if s["state"] == "started":
            started[s["name"]] = s["at"]
        elif s["state"] == "done" and s["name"] in started:
            out[s["name"]] = s["at"] - started[s["name"]]
    return out


def cold_rsync(source: Path, dest: Path) -> float:
    """Copy *source* with plain ``rsync -aHAXS --numeric-ids`` into the new, empty *dest*; seconds."""
    os.sync()  # start from the same page-cache state as the move: nothing dirty
    dest.mkdir()
    rsync = shutil.which("rsync") or "rsync"
    started = time.perf_counter()
    proc = subprocess.run(
        [rsync, "-aHAXS", "--numeric-ids", f"{source}/", f"{dest}/"],
        capture_output=True,
        text=True,
        timeout=RSYNC_TIMEOUT,
        check=False,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SetupError(f"rsync exited with {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return seconds


def run_move(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the move in its own process group; when interrupted, let it roll back (SIGTERM), then kill the group."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=MOVE_TIMEOUT)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the group of our own child: opsbook rolls back, then exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=120)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of it (an rsync)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=10)
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def one_run(files: int, keep: bool) -> dict[str, Any]:
    """Build the tree on a fresh dockerd, time the cold rsync and the move, check the result."""
    # The data-root and TARGET on this machine's one disk, as in every earlier run of this
    # benchmark: a move to the same filesystem ends WARNING (it frees nothing), nothing else.
    peer = DockerdPeer(own_filesystem=False)
    result: dict[str, Any] = {"problems": []}
    try:
        peer.start()
        peer.populate()
        peer.docker("volume", "create", VOLUME)
        data = peer.root / "volumes" / VOLUME / "_data"
        started = time.perf_counter()
        spec: TreeSpec = build_tree(data, files=files)
        os.sync()
        result["build_s"] = time.perf_counter() - started
        original = fingerprint(data)
        names, inodes, linked = stats(peer.root)
        result.update(spec=spec, root_files=names, root_inodes=inodes, root_linked=linked)
        before = peer.state()

        cold = peer.dir / "rsync-copy"
        peer.stop()  # a quiet tree, no container mounts: exactly what the move copies
        result["rsync_before_s"] = cold_rsync(peer.root, cold)
        problems = check_copy(original, cold / "volumes" / VOLUME / "_data", spec)
        if problems:  # the yardstick itself must be a faithful copy
            raise SetupError("plain rsync copy differs: " + "; ".join(problems))
        shutil.rmtree(cold)
        os.sync()
        peer.start()
        peer.docker("start", "runner")
        if peer.state() != before:
            raise SetupError(f"engine state changed across the restart: {peer.state()} != {before}")

        target = peer.dir / "moved-root"
        opsbook = shutil.which("opsbook", path=str(Path(sys.executable).parent)) or "opsbook"
        cmd = [opsbook, "docker-root", "move", str(target), "--yes", "-f", "json", *peer.options()]
        started = time.perf_counter()
        proc = run_move(cmd)
        result["move_s"] = time.perf_counter() - started
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            raise SetupError(f"move exited with {proc.returncode}, no JSON: {proc.stderr.strip()[-600:]}") from None
        result["doc"] = doc
        journal = peer.state_dir / "docker-root" / "journal.json"
        result["steps"] = _step_seconds(journal) if journal.is_file() else {}
        move_check: dict[str, Any] = next((c for c in doc.get("checks", []) if c.get("id") == "docker_root.move"), {})
        times = doc.get("times") or move_check.get("metrics") or {}
        result["times"] = times
        warnings = {c["id"] for c in doc.get("checks", []) if c.get("status") == "WARNING"}
        only_same_fs = warnings == {"docker_root.preflight.same_filesystem"} and proc.returncode == 1
        if (proc.returncode != 0 or doc.get("status") != "OK") and not only_same_fs:
            failed = [f"{s['name']}: {s['summary']}" for s in doc.get("steps", []) if s.get("status") != "OK"]
            result["problems"].append(
                f"move exited with {proc.returncode} ({doc.get('status')}): "
                + (move_check.get("summary") or "; ".join(failed))
            )
            return result
        if "downtime_s" not in times:
            result["problems"].append(f"the move report carries no downtime_s: {times}")
        # the yardstick again, after the move, from the old root (quiet now): the machine's
        # load drifts, so the move is compared with the mean of a copy before and one after
        result["rsync_after_s"] = cold_rsync(peer.root, cold)
        result["rsync_s"] = (result["rsync_before_s"] + result["rsync_after_s"]) / 2
        shutil.rmtree(cold)

        # correctness on the new root
        root_dir = peer.info("{{.DockerRootDir}}")
        if root_dir != os.path.realpath(target):
            result["problems"].append(f"DockerRootDir is {root_dir}, expected {os.path.realpath(target)}")
        after = peer.state()
        if after != before:
            result["problems"].append(f"engine state differs after the move: {after} != {before}")
        result["problems"] += check_copy(original, target / "volumes" / VOLUME / "_data", spec)
        seen = peer.docker(
            "run", "--rm", "--network", "none", "-v", f"{VOLUME}:/t", "opsbook-bb:1", "md5sum", f"/t/{PROBE_FILE}"
        ).stdout.split()[:1]
        expected = hashlib.md5((data / PROBE_FILE).read_bytes(), usedforsecurity=False).hexdigest()
        if seen != [expected]:
            result["problems"].append(f"a container reads {seen} for {PROBE_FILE}, expected {expected}")
        if peer.volume_file() != "precious\n":
            result["problems"].append("the odata volume lost file.txt")
        return result
    finally:
        if keep:
            print(f"kept {peer.dir} (dockerd stopped)", file=sys.stderr)
            peer.stop()
        else:
            peer.close()


def _report(n: int, r: dict[str, Any]) -> None:
    spec: TreeSpec = r["spec"]
    times = r.get("times", {})
    print(
        f"run {n}: tree built in {r['build_s']:.1f}s: {spec.files} files ({spec.bytes / 2**20:.0f} MiB), "
        f"{spec.link_groups} hard-link groups (+{spec.hardlinks} links), {spec.symlinks} symlinks, "
        f"{spec.xattrs} user.* xattrs, 1 sparse file (1 GiB apparent, 3 MiB data)"
    )
    print(
        f"  whole data-root: {r['root_files']} regular names, {r['root_inodes']} files (inodes), "
        f"{r['root_linked']} hard-linked names"
    )
    if "rsync_s" in r:
        print(
            f"  cold rsync -aHAXS --numeric-ids: {r['rsync_s']:.2f}s (mean of {r['rsync_before_s']:.2f}s before "
            f"and {r['rsync_after_s']:.2f}s after the move)"
        )
    else:
        print(f"  cold rsync -aHAXS --numeric-ids: {r['rsync_before_s']:.2f}s (before the move)")
    if "move_s" in r:
        warm = times.get("warm_copy_s", float("nan"))
        noise = f", {warm / r['rsync_s']:.2f}x the cold rsync it repeats" if "rsync_s" in r else ""
        print(f"  opsbook docker-root move:        {r['move_s']:.2f}s total (warm copy {warm:.2f}s{noise})")
        print(
            f"  engine downtime:                 {times.get('downtime_s', float('nan')):.2f}s (stop to verified start)"
        )
        steps = r.get("steps", {})
        parts = [f"{name} {steps[name]:.2f}s" for name in DOWNTIME_STEPS if name in steps]
        if parts:
            print(f"    downtime steps: {', '.join(parts)}")
    for problem in r["problems"]:
        print(f"  PROBLEM: {problem}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=24_000, help="files in the synthetic tree (>= 20000)")
    parser.add_argument("--runs", type=int, default=1, help="independent runs (fresh dockerd and tree each)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder for inspection")
    args = parser.parse_args()
    if args.files < MIN_FILES:
        parser.error(f"--files must be at least {MIN_FILES}")
    if os.geteuid() != 0:
        print("bench_docker_root: needs root (dockerd)", file=sys.stderr)
        return 2
    for binary in ("dockerd", "docker", "rsync"):
        if not shutil.which(binary) and not os.path.exists(f"/usr/sbin/{binary}"):
            print(f"bench_docker_root: {binary} is not installed (make peers)", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _terminate)
    results = []
    for n in range(1, args.runs + 1):
        try:
            r = one_run(args.files, args.keep)
        except (SetupError, subprocess.SubprocessError, RuntimeError, OSError) as exc:
            print(f"bench_docker_root: set-up failed: {exc}", file=sys.stderr)
            return 2
        _report(n, r)
        results.append(r)
    correct = all(not r["problems"] for r in results)
    moved = [r for r in results if "downtime_s" in r.get("times", {}) and "rsync_s" in r]
    if not moved:
        print("FAIL: no move completed")
        return 1
    move_ratio = statistics.median(r["move_s"] / r["rsync_s"] for r in moved)
    down_ratio = statistics.median(r["times"]["downtime_s"] / r["rsync_s"] for r in moved)
    label = "median of " if len(moved) > 1 else ""
    print(
        f"{label}move / cold rsync     = {move_ratio:.2f} (target <= {MOVE_TARGET}): "
        f"{'PASS' if move_ratio <= MOVE_TARGET else 'FAIL'}"
    )
    print(
        f"{label}downtime / cold rsync = {down_ratio:.2f} (target <= {DOWNTIME_TARGET}): "
        f"{'PASS' if down_ratio <= DOWNTIME_TARGET else 'FAIL'}"
    )
    print(f"correctness (hard links, sparse, xattrs, owners, content, engine state): {'PASS' if correct else 'FAIL'}")
    return 0 if correct and move_ratio <= MOVE_TARGET and down_ratio <= DOWNTIME_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
