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

With ``--containerd`` the same is measured with the containerd image store (Docker 29's
default): a real system containerd (Debian's 1.6, tests/e2e/containerd_peer.py, config.toml
of its own, stop/start scripts) with an imported image, a running task and a stopped container
in namespace ``default`` (as in tests/e2e/test_docker_root_containerd.py: the move needs
``--allow-other-containerd-clients``), and the dockerd started with ``--containerd SOCK`` and
``features.containerd-snapshotter``. The data-root's ``benchtree`` volume holds the synthetic
tree as above, and containerd's root holds a second one of the same size (another seed) in a
folder of its own, ``opsbook-bench`` (not under io.containerd.content.v1.content: containerd's
garbage collection may delete blobs it has no record of). The yardstick is a cold rsync of BOTH
roots (Docker and containerd stopped; the two rsync times added), before and after the move;
the move takes containerd's root along to a ``containerd`` folder beside TARGET. Afterwards:
both trees identical on the new roots, containerd's inventory (content, images, snapshots,
containers, running tasks) and Docker's back, the task running again, config.toml naming the
new root.

Usage: .venv/bin/python benchmarks/bench_docker_root.py [--containerd] [--files N] [--runs N] [--keep]
Needs root, dockerd and rsync (and containerd and ctr with --containerd). Exits 1 when a target is missed or the move was not correct,
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

from tests.e2e.containerd_peer import ContainerdPeer  # noqa: E402
from tests.e2e.dockerd_peer import DockerdPeer  # noqa: E402

MOVE_TARGET = 1.5
DOWNTIME_TARGET = 0.5
MIN_FILES = 20_000
RSYNC_TIMEOUT = 1800
MOVE_TIMEOUT = 3600
VOLUME = "benchtree"
PROBE_FILE = "layer000/usr/lib/pkg0000/f000000.so"
CTD_TREE = "opsbook-bench"  # in containerd's root, beside (never inside) its content store
CTD_SEED = 20_001  # the second tree: same shape and size as the first, other content
#: Warnings a correct move on this machine may end with: TARGET on the one disk the roots are on,
#: and the ``default`` namespace of the containerd peer (accepted with --allow-other-containerd-clients).
SAME_FS = "docker_root.preflight.same_filesystem"
CLIENTS = "docker_root.preflight.containerd_clients"
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
        journal = peer.state_dir / "docker-root" / "journal.json"
        if _run_move(cmd, journal, result, {SAME_FS}) is None:
            return result
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


def _run_move(cmd: list[str], journal: Path, result: dict[str, Any], allowed: set[str]) -> dict[str, Any] | None:
    """Run the move, record its wall time, report and step times in *result*; the report when it moved.

    A move that did not finish OK (or WARNING with only the *allowed* warnings) adds a problem.
    """
    started = time.perf_counter()
    proc = run_move(cmd)
    result["move_s"] = time.perf_counter() - started
    try:
        doc: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        raise SetupError(f"move exited with {proc.returncode}, no JSON: {proc.stderr.strip()[-600:]}") from None
    result["doc"] = doc
    result["steps"] = _step_seconds(journal) if journal.is_file() else {}
    move_check: dict[str, Any] = next((c for c in doc.get("checks", []) if c.get("id") == "docker_root.move"), {})
    times = doc.get("times") or move_check.get("metrics") or {}
    result["times"] = times
    warnings = {c["id"] for c in doc.get("checks", []) if c.get("status") == "WARNING"}
    result["warnings"] = sorted(warnings)
    only_allowed = bool(warnings) and warnings <= allowed and proc.returncode == 1
    if (proc.returncode != 0 or doc.get("status") != "OK") and not only_allowed:
        failed = [f"{s['name']}: {s['summary']}" for s in doc.get("steps", []) if s.get("status") != "OK"]
        result["problems"].append(
            f"move exited with {proc.returncode} ({doc.get('status')}): "
            + (move_check.get("summary") or "; ".join(failed))
        )
        return None
    if "downtime_s" not in times:
        result["problems"].append(f"the move report carries no downtime_s: {times}")
    return doc


def _cold_rsync_both(roots: list[Path], copies: list[Path]) -> float:
    """Cold rsync of every root into its own new copy, one after the other; the seconds added."""
    return sum(cold_rsync(root, copy) for root, copy in zip(roots, copies, strict=True))


def one_run_containerd(files: int, keep: bool) -> dict[str, Any]:
    """Both stores: a tree in the data-root's volume and one in containerd's root; cold rsync of both vs the move."""
    # Both roots and TARGET on this machine's one disk: the move ends WARNING (same filesystem).
    ctd = ContainerdPeer(own_filesystem=False)
    peer = DockerdPeer({"features": {"containerd-snapshotter": True}}, own_filesystem=False)
    result: dict[str, Any] = {"problems": [], "containerd": True}
    try:
        ctd.start()
        ctd.populate()
        peer.set_extra_flags(f"--containerd {ctd.socket}")
        peer.start()
        peer.populate()
        peer.docker("volume", "create", VOLUME)
        data = peer.root / "volumes" / VOLUME / "_data"
        ctd_data = ctd.root / CTD_TREE
        started = time.perf_counter()
        spec: TreeSpec = build_tree(data, files=files)
        ctd_spec: TreeSpec = build_tree(ctd_data, files=files, seed=CTD_SEED)
        os.sync()
        result["build_s"] = time.perf_counter() - started
        original, ctd_original = fingerprint(data), fingerprint(ctd_data)
        names, inodes, linked = stats(peer.root)
        c_names, c_inodes, c_linked = stats(ctd.root)
        result.update(spec=spec, root_files=names, root_inodes=inodes, root_linked=linked)
        result.update(ctd_spec=ctd_spec, ctd_files=c_names, ctd_inodes=c_inodes, ctd_linked=c_linked)
        before, ctd_before = peer.state(), ctd.state()
        if ctd_before["running"] != [ctd.runner]:
            raise SetupError(f"containerd's task does not run: {ctd_before}")

        roots = [peer.root, ctd.root]
        copies = [peer.dir / "rsync-copy", ctd.dir / "rsync-copy"]
        peer.stop()  # Docker first, then containerd (as the move stops them): quiet trees
        subprocess.run([str(ctd.stop_script)], check=True, timeout=60, capture_output=True)
        result["rsync_before_s"] = _cold_rsync_both(roots, copies)
        problems = check_copy(original, copies[0] / "volumes" / VOLUME / "_data", spec)
        problems += check_copy(ctd_original, copies[1] / CTD_TREE, ctd_spec)
        if problems:  # the yardstick itself must be a faithful copy
            raise SetupError("plain rsync copy differs: " + "; ".join(problems))
        for copy in copies:
            shutil.rmtree(copy)
        os.sync()
        ctd.start()
        peer.start()
        peer.docker("start", "runner")
        if peer.state() != before or ctd.state() != ctd_before:
            raise SetupError(f"state changed across the restart: {peer.state()}, {ctd.state()}")

        target = peer.dir / "moved-root"
        opsbook = shutil.which("opsbook", path=str(Path(sys.executable).parent)) or "opsbook"
        cmd = [
            opsbook,
            "docker-root",
            "move",
            str(target),
            "--yes",
            "--allow-other-containerd-clients",
            "-f",
            "json",
            *peer.options(),
            *ctd.options(),
        ]
        journal = peer.state_dir / "docker-root" / "journal.json"
        doc = _run_move(cmd, journal, result, {SAME_FS, CLIENTS})
        if doc is None:
            return result
        ctarget = Path((doc.get("plan") or {}).get("containerd", {}).get("target") or target.parent / "containerd")
        result["ctd_target"] = str(ctarget)
        # the yardstick again, from the old roots (quiet now: both daemons run on the new ones)
        result["rsync_after_s"] = _cold_rsync_both(roots, copies)
        result["rsync_s"] = (result["rsync_before_s"] + result["rsync_after_s"]) / 2
        for copy in copies:
            shutil.rmtree(copy)

        # correctness on the new roots
        root_dir = peer.info("{{.DockerRootDir}}")
        if root_dir != os.path.realpath(target):
            result["problems"].append(f"DockerRootDir is {root_dir}, expected {os.path.realpath(target)}")
        if f'root = "{ctarget}"' not in ctd.config.read_text():
            result["problems"].append(f"config.toml does not name containerd's new root {ctarget}")
        after, ctd_after = peer.state(), ctd.state()
        if after != before:
            result["problems"].append(f"engine state differs after the move: {after} != {before}")
        if ctd_after != ctd_before:
            result["problems"].append(f"containerd's inventory differs after the move: {ctd_after} != {ctd_before}")
        if ctd_after["running"] != [ctd.runner]:
            result["problems"].append(f"containerd's task does not run again: {ctd_after['running']}")
        if not any((ctarget / "io.containerd.snapshotter.v1.overlayfs" / "snapshots").iterdir()):
            result["problems"].append(f"no snapshots under containerd's new root {ctarget}")
        result["problems"] += check_copy(original, target / "volumes" / VOLUME / "_data", spec)
        result["problems"] += [f"containerd tree: {p}" for p in check_copy(ctd_original, ctarget / CTD_TREE, ctd_spec)]
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
            print(f"kept {peer.dir} and {ctd.dir} (dockerd and containerd stopped)", file=sys.stderr)
            peer.stop()
            subprocess.run([str(ctd.stop_script)], check=False, timeout=60, capture_output=True)
        else:
            peer.close()
            ctd.close()


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
    if r.get("containerd"):
        c: TreeSpec = r["ctd_spec"]
        print(
            f"  containerd's root: {r['ctd_files']} regular names, {r['ctd_inodes']} files (inodes), "
            f"{r['ctd_linked']} hard-linked names; its tree ({CTD_TREE}): {c.files} files "
            f"({c.bytes / 2**20:.0f} MiB), {c.link_groups} hard-link groups (+{c.hardlinks} links), "
            f"{c.symlinks} symlinks, {c.xattrs} user.* xattrs, 1 sparse file"
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
        if r.get("containerd") and steps:
            print(f"    all steps: {', '.join(f'{name} {sec:.2f}s' for name, sec in steps.items())}")
        print(f"  warnings (accepted): {', '.join(r.get('warnings', [])) or 'none'}")
    for problem in r["problems"]:
        print(f"  PROBLEM: {problem}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=24_000, help="files in the synthetic tree (>= 20000)")
    parser.add_argument("--runs", type=int, default=1, help="independent runs (fresh dockerd and tree each)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder for inspection")
    parser.add_argument(
        "--containerd",
        action="store_true",
        help="containerd image store: a second tree in a real containerd's root, moved along",
    )
    args = parser.parse_args()
    if args.files < MIN_FILES:
        parser.error(f"--files must be at least {MIN_FILES}")
    if os.geteuid() != 0:
        print("bench_docker_root: needs root (dockerd)", file=sys.stderr)
        return 2
    binaries = ("dockerd", "docker", "rsync") + (("containerd", "ctr", "busybox") if args.containerd else ())
    for binary in binaries:
        if not shutil.which(binary) and not os.path.exists(f"/usr/sbin/{binary}"):
            print(f"bench_docker_root: {binary} is not installed (make peers)", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _terminate)
    results = []
    for n in range(1, args.runs + 1):
        try:
            r = (one_run_containerd if args.containerd else one_run)(args.files, args.keep)
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
    what = "engine state, containerd inventory, running task" if args.containerd else "engine state"
    print(f"correctness (hard links, sparse, xattrs, owners, content, {what}): {'PASS' if correct else 'FAIL'}")
    return 0 if correct and move_ratio <= MOVE_TARGET and down_ratio <= DOWNTIME_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
