"""``opsbook docker-root`` against a real dockerd (its own socket, folder and daemon.json).

Each test gets its own engine with an imported busybox image, a volume with data, a
running and a stopped container; opsbook runs as a subprocess (no TTY) and drives the
engine through the peer's stop/start scripts, as on a host without systemd.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.dockerd_peer import DockerdPeer
from tests.helpers import REPO, Result, run_cli
from tests.peers import need_binary, need_root

pytestmark = pytest.mark.e2e


def _need_peer() -> None:
    need_root()
    for name in ("dockerd", "docker", "rsync", "busybox"):
        need_binary(name)


@pytest.fixture
def peer() -> Iterator[DockerdPeer]:
    """A running engine with content (images, volume data, running and stopped containers)."""
    _need_peer()
    p = DockerdPeer(
        {"labels": ["keep=me"], "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 4096, "Hard": 8192}}}
    )
    try:
        p.start()
        p.populate()
        yield p
    finally:
        p.close()


def opsbook(peer: DockerdPeer, *args: str, start_command: str | None = None) -> Result:
    """Run an ``opsbook docker-root`` command against *peer* (JSON output)."""
    options = peer.options()
    if start_command:
        options[options.index("--start-command") + 1] = start_command
    return run_cli("docker-root", *args, *options, "-f", "json", timeout=240)


def on_terminal(peer: DockerdPeer, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run an opsbook command with stdin on a terminal, *answer* typed in advance."""
    controller, terminal = pty.openpty()
    try:
        os.write(controller, answer.encode() + b"\n")
        return subprocess.run(
            [sys.executable, "-m", "opsbook", "docker-root", *args, *peer.options(), "-f", "json"],
            cwd=REPO,
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    finally:
        os.close(controller)
        os.close(terminal)


def snapshot(peer: DockerdPeer) -> dict[str, Any]:
    """What must survive: images, containers and their state, volumes, the volume's data."""
    state = peer.state()
    state["file"] = peer.volume_file()
    return state


def journal(peer: DockerdPeer) -> dict[str, Any]:
    """The move journal as opsbook left it."""
    return json.loads((peer.state_dir / "docker-root" / "journal.json").read_text())


def wait_running(peer: DockerdPeer, name: str = "runner", timeout: float = 20) -> str:
    """The state of container *name* once it runs (or after *timeout*)."""
    deadline = time.monotonic() + timeout
    while True:
        state = peer.state()["containers"].get(name, "")  # type: ignore[union-attr]
        if state == "running" or time.monotonic() > deadline:
            return str(state)
        time.sleep(0.2)


def test_move_keeps_everything_then_cleanup(peer: DockerdPeer) -> None:
    before = snapshot(peer)
    assert before["containers"] == {"runner": "running", "stopped": "created"}
    assert before["file"] == "precious\n"
    old_root = str(peer.root)
    target = peer.dir / "new-root"
    original = peer.daemon_json.read_bytes()

    # dry run: the full plan, exit 0, and nothing written -- not even the state dir
    dry = opsbook(peer, "move", str(target), "--dry-run")
    assert dry.code == 0, dry.out + dry.err
    doc = json.loads(dry.out)
    assert doc["dry_run"] is True and doc["changed"] is False
    assert doc["plan"]["blockers"] == []
    assert f'+  "data-root": "{target}"' in doc["plan"]["daemon_json_diff"]
    assert [s["name"] for s in doc["steps"]] == [
        "inventory",
        "warm-copy",
        "stop",
        "final-copy",
        "verify-copy",
        "backup",
        "daemon-json",
        "start",
        "verify",
    ]
    assert not peer.state_dir.exists() and not target.exists()
    assert peer.daemon_json.read_bytes() == original

    # no --yes and no terminal: refused, nothing changed
    refused = opsbook(peer, "move", str(target))
    assert refused.code == 3
    assert "--yes" in refused.err and refused.err.count("\n") == 1
    assert not target.exists() and peer.daemon_json.read_bytes() == original

    # on a terminal it shows the plan and asks; "n" changes nothing
    declined = on_terminal(peer, "n", "move", str(target))
    assert declined.returncode == 3 and "not confirmed" in declined.stderr
    assert "Move Docker's data-root to" in declined.stderr
    assert "copy while the engine runs" in declined.stderr  # the plan, as a table, with the prompt
    assert declined.stdout == ""  # stdout is for the one report document only
    assert not target.exists() and not peer.state_dir.exists()

    moved = opsbook(peer, "move", str(target), "--yes")
    assert moved.code == 0, moved.out + moved.err
    # On a pipe: one time-stamped line per phase on stderr, nothing else.
    phases = [line.split(" ", 2)[2].split(":")[0] for line in moved.err.splitlines()]
    assert phases == [
        "inventory",
        "warm copy",
        "stopping the engine",
        "final copy",
        "verifying the copy",
        "backing up daemon.json",
        "writing daemon.json",
        "starting the engine",
        "verifying the engine",
    ], moved.err
    assert all(line.startswith("opsbook: ") for line in moved.err.splitlines())
    doc = json.loads(moved.out)
    assert doc["status"] == "OK" and doc["changed"] is True and doc["dry_run"] is False
    assert [s["status"] for s in doc["steps"]] == ["OK"] * 9

    assert peer.info("{{.DockerRootDir}}") == str(target)
    assert wait_running(peer) == "running"
    assert snapshot(peer) == before
    # the running container was restarted from the new root, on the volume's new home
    assert str(peer.volume_path("odata")).startswith(str(target) + "/")

    config = json.loads(peer.daemon_json.read_text())
    assert config["data-root"] == str(target)
    assert config["labels"] == ["keep=me"]
    assert config["default-ulimits"]["nofile"]["Hard"] == 8192
    assert config["storage-driver"] == "overlay2" and config["log-level"] == "warn"
    assert oct(peer.daemon_json.stat().st_mode & 0o777) == oct(0o640)
    backups = list((peer.state_dir / "docker-root").glob("daemon.json.*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == original
    assert journal(peer)["status"] == "verified"
    assert os.path.isdir(old_root)  # move never deletes the old root

    status = opsbook(peer, "status")
    sdoc = json.loads(status.out)
    checks = {c["id"]: c for c in sdoc["checks"]}
    assert checks["docker_root.data_root"]["details"]["root"] == str(target)
    assert checks["docker_root.journal"]["details"]["status"] == "verified"

    # the same TARGET again: nothing to do
    again = opsbook(peer, "move", str(target), "--yes")
    assert again.code == 0, again.out + again.err
    assert json.loads(again.out)["changed"] is False

    # cleanup asks for --yes without a terminal, then removes only the old root
    no = opsbook(peer, "cleanup")
    assert no.code == 3 and "--yes" in no.err
    assert os.path.isdir(old_root)
    typo = on_terminal(peer, old_root + "x", "cleanup")
    assert typo.returncode == 3 and "does not match" in typo.stderr
    assert os.path.isdir(old_root)
    done = on_terminal(peer, old_root, "cleanup")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Type {old_root} to delete it" in done.stderr
    assert json.loads(done.stdout)["changed"] is True
    # The old root is a disk of its own here: its contents go, its mount point stays (and says so).
    assert os.path.ismount(old_root) and os.listdir(old_root) == []
    assert "mount point stays" in done.stdout
    assert snapshot(peer) == before
    # nothing left to roll back to
    late = opsbook(peer, "rollback", "--yes")
    assert late.code == 3 and "cleanup" in late.err


def test_graph_key_is_replaced_by_data_root(peer: DockerdPeer) -> None:
    config = json.loads(peer.daemon_json.read_text())
    config = {"graph": config.pop("data-root"), **config}
    peer.stop()
    peer.daemon_json.write_text(json.dumps(config, indent=2))
    peer.start()
    peer.docker("start", "runner")
    before = snapshot(peer)
    assert before["containers"] == {"runner": "running", "stopped": "created"}
    target = peer.dir / "moved"
    # on a terminal the copy shows its progress (stderr); the report still goes to stdout
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "opsbook",
                "docker-root",
                "move",
                str(target),
                "--yes",
                *peer.options(),
                "-f",
                "json",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=terminal,
            stdin=subprocess.DEVNULL,
            timeout=240,
            check=False,
        )
        os.set_blocking(controller, False)
        shown = b""
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(controller, 65536):
                shown += chunk
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 0, proc.stdout
    assert b"warm copy" in shown and b"files" in shown
    assert json.loads(proc.stdout)["changed"] is True
    after = json.loads(peer.daemon_json.read_text())
    assert "graph" not in after and after["data-root"] == str(target)
    assert list(after) == ["data-root", "storage-driver", "log-level", "labels", "default-ulimits"]
    assert wait_running(peer) == "running"
    assert snapshot(peer) == before

    # rollback after a completed move: warns about what stays behind on the new root
    peer.docker("volume", "create", "fresh")
    back = opsbook(peer, "rollback", "--yes")
    assert back.code == 0, back.out + back.err
    assert "new volume(s): fresh" in back.err
    assert peer.info("{{.DockerRootDir}}") == str(peer.root)
    assert json.loads(peer.daemon_json.read_text()) == config  # the graph key is back, as it was
    assert wait_running(peer) == "running"
    assert snapshot(peer) == before
    assert (target / "volumes" / "fresh").is_dir()  # left behind, not deleted


def test_failed_start_rolls_back_automatically(peer: DockerdPeer) -> None:
    before = snapshot(peer)
    original = peer.daemon_json.read_bytes()
    target = peer.dir / "new-root"
    # dockerd refuses a --data-root flag while daemon.json sets data-root too
    failing = peer.fail_next_start(f"--data-root {peer.dir / 'elsewhere'}")
    result = opsbook(peer, "move", str(target), "--yes", start_command=failing)
    assert result.code == 2, result.out + result.err
    doc = json.loads(result.out)
    move = next(c for c in doc["checks"] if c["id"] == "docker_root.move")
    assert move["status"] == "CRITICAL"
    assert move["details"]["failed_step"] == "start"
    assert "rolled back automatically" in move["summary"] and "nothing lost" in move["summary"]
    names = [s["name"] for s in doc["steps"]]
    assert "rollback: daemon-json" in names and "rollback: verify" in names
    assert peer.daemon_json.read_bytes() == original
    assert peer.info("{{.DockerRootDir}}") == str(peer.root)
    assert wait_running(peer) == "running"
    assert snapshot(peer) == before
    assert journal(peer)["status"] == "rolled-back"
    # dockerd's own reason, in full, not start-script noise
    failed = next(s for s in doc["steps"] if s["name"] == "start" and s["status"] == "CRITICAL")
    assert "specified both as a flag and in the configuration file" in failed["summary"], failed["summary"]
    # not verified: cleanup offers only the partial copy of the failed move, never the old root
    refused = opsbook(peer, "cleanup")
    assert refused.code == 3 and "--yes" in refused.err
    assert f"partial copies of failed or rolled-back moves: {target}" in refused.err
    assert str(peer.root) + " " not in refused.err and peer.root.is_dir()
    # the partial copy of the failed move is re-used by a new move to the same TARGET
    again = opsbook(peer, "move", str(target), "--yes")
    assert again.code == 0, again.out + again.err
    assert peer.info("{{.DockerRootDir}}") == str(target)
    assert wait_running(peer) == "running"
    assert snapshot(peer) == before
    cleaned = opsbook(peer, "cleanup", "--yes")
    assert cleaned.code == 0, cleaned.out + cleaned.err
    assert os.listdir(peer.root) == []  # a mount point of its own: emptied, kept
    assert snapshot(peer) == before


def test_cleanup_refuses_without_a_verified_move(peer: DockerdPeer) -> None:
    result = opsbook(peer, "cleanup", "--yes")
    assert result.code == 3
    assert "no move journal" in result.err
    assert peer.root.is_dir()


def _kill_during(peer: DockerdPeer, target: Path, step: str) -> None:
    """Start ``move`` as a subprocess and kill -9 it once the journal shows *step* started."""
    args = [sys.executable, "-m", "opsbook", "docker-root", "move", str(target), "--yes", *peer.options()]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = peer.state_dir / "docker-root" / "journal.json"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                steps = json.loads(path.read_text()).get("steps", [])
            except (OSError, ValueError):
                steps = []
            if any(s["name"] == step for s in steps):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "opsbook finished before it could be killed"
    data = journal(peer)
    assert data["status"] == "in-progress"
    assert not any(s["name"] == step and s["state"] == "done" for s in data["steps"])


def _rsync_running(peer: DockerdPeer) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            raw = cmdline.read_bytes()
        except OSError:
            continue
        if b"rsync" in raw and str(peer.dir).encode() in raw:
            stat = (cmdline.parent / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                return True
    return False


@pytest.fixture
def bulky(peer: DockerdPeer) -> DockerdPeer:
    """The peer with a second volume of 8000 files: the copy takes long enough to be killed."""
    base = peer.bulk_volume("bulk", files=8000)
    assert len(list(base.glob("*/*"))) == 8000
    return peer


def _bulk_count(peer: DockerdPeer) -> int:
    return len(list(peer.volume_path("bulk").glob("*/*")))


def test_kill_during_copy_then_rollback(bulky: DockerdPeer) -> None:
    peer = bulky
    before = snapshot(peer)
    original = peer.daemon_json.read_bytes()
    target = peer.dir / "new-root"
    _kill_during(peer, target, "warm-copy")
    # rsync dies with opsbook (PDEATHSIG); its receiver child follows on EOF, which may take a moment.
    deadline = time.monotonic() + 5
    while _rsync_running(peer) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _rsync_running(peer), "rsync outlived the killed opsbook"

    result = opsbook(peer, "rollback", "--yes")
    assert result.code == 0, result.out + result.err
    assert "stays behind" in result.err  # warned before acting
    assert peer.daemon_json.read_bytes() == original
    assert peer.info("{{.DockerRootDir}}") == str(peer.root)
    assert wait_running(peer) == "running"
    assert snapshot(peer) == before
    assert _bulk_count(peer) == 8000
    assert journal(peer)["status"] == "rolled-back"


def test_kill_during_copy_then_move_again(bulky: DockerdPeer) -> None:
    peer = bulky
    before = snapshot(peer)
    target = peer.dir / "new-root"
    _kill_during(peer, target, "warm-copy")

    # the partial copy is in TARGET: a move elsewhere is blocked, the same TARGET resumes
    other = opsbook(peer, "move", str(peer.dir / "other"), "--dry-run")
    assert other.code == 2
    assert "docker_root.preflight.journal" in json.loads(other.out)["plan"]["blockers"]
    result = opsbook(peer, "move", str(target), "--yes")
    assert result.code == 0, result.out + result.err
    names = [s["name"] for s in json.loads(result.out)["steps"]]
    assert names[0].startswith("recover: ")
    assert peer.info("{{.DockerRootDir}}") == str(target)
    assert wait_running(peer) == "running"
    assert snapshot(peer) == before
    assert _bulk_count(peer) == 8000


def test_kill_while_engine_stopped_then_rollback(peer: DockerdPeer) -> None:
    before = snapshot(peer)
    original = peer.daemon_json.read_bytes()
    _kill_during(peer, peer.dir / "new-root", "stop")
    result = opsbook(peer, "rollback", "--yes")
    assert result.code == 0, result.out + result.err
    assert peer.daemon_json.read_bytes() == original
    assert peer.info("{{.DockerRootDir}}") == str(peer.root)
    assert wait_running(peer) == "running"
    assert snapshot(peer) == before


def test_live_restore_containers_are_stopped_and_moved_too() -> None:
    _need_peer()
    peer = DockerdPeer({"live-restore": True})
    try:
        peer.start()
        peer.populate()
        before = snapshot(peer)
        target = peer.dir / "new-root"
        result = opsbook(peer, "move", str(target), "--yes")
        assert result.code == 0, result.out + result.err
        stop = next(s for s in json.loads(result.out)["steps"] if s["name"] == "stop")
        assert "live-restore: stopped runner first" in stop["summary"]
        assert peer.info("{{.DockerRootDir}}") == str(target)
        assert wait_running(peer) == "running"
        assert snapshot(peer) == before
        # the container runs from the new root: nothing of it is mounted from the old one
        mounts = Path("/proc/self/mountinfo").read_text()
        assert f" {peer.root}/" not in mounts
    finally:
        peer.close()


def test_sigterm_after_the_stop_rolls_back(peer: DockerdPeer) -> None:
    before = snapshot(peer)
    original = peer.daemon_json.read_bytes()
    args = [
        sys.executable,
        "-m",
        "opsbook",
        "docker-root",
        "move",
        str(peer.dir / "new-root"),
        "--yes",
        *peer.options(),
        "-f",
        "json",
    ]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = peer.state_dir / "docker-root" / "journal.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError, ValueError):
            if any(s["name"] == "stop" for s in json.loads(path.read_text())["steps"]):
                proc.send_signal(signal.SIGTERM)
                break
        time.sleep(0.005)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, out + err
    move = next(c for c in json.loads(out)["checks"] if c["id"] == "docker_root.move")
    assert "interrupted by SIGTERM" in move["summary"] and "rolled back automatically" in move["summary"]
    assert peer.daemon_json.read_bytes() == original
    assert peer.info("{{.DockerRootDir}}") == str(peer.root)
    assert wait_running(peer) == "running"
    assert snapshot(peer) == before
