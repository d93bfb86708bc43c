"""``docker-root`` refuses what it cannot trust, against a real dockerd.

A filesystem mounted inside the data-root, a symlinked daemon.json, a daemon.json changed
between the plan and the act, a state dir or journal that another user could have
written, and a rollback slipping in between cleanup's check and its deletion.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsbook.runbooks.docker_root import move as mv
from opsbook.runbooks.docker_root.control import EngineControl
from opsbook.runbooks.errors import RefusedError
from tests.e2e.dockerd_peer import DockerdPeer
from tests.e2e.test_docker_root_move import _need_peer, journal, opsbook, snapshot, wait_running
from tests.helpers import REPO

pytestmark = pytest.mark.e2e


@pytest.fixture
def peer() -> Iterator[DockerdPeer]:
    _need_peer()
    p = DockerdPeer()
    try:
        p.start()
        p.populate()
        yield p
    finally:
        p.close()


def _blockers(result_out: str) -> dict[str, dict[str, object]]:
    doc = json.loads(result_out)
    return {c["id"].rsplit(".", 1)[1]: c for c in doc["checks"] if c["status"] == "CRITICAL"}


def test_a_disk_mounted_inside_the_data_root_blocks_the_plan(peer: DockerdPeer) -> None:
    inner = peer.root / "volumes" / "bigdisk"
    inner.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "bigdisk", str(inner)], check=True)
    (inner / "data").write_text("lives on another filesystem")
    target = peer.dir / "new-root"
    dry = opsbook(peer, "move", str(target), "--dry-run")
    assert dry.code == 2, dry.out + dry.err
    blockers = _blockers(dry.out)
    assert list(blockers) == ["nested_mounts"]
    assert f"{inner} (tmpfs from bigdisk)" in str(blockers["nested_mounts"]["summary"])
    refused = opsbook(peer, "move", str(target), "--yes")
    assert refused.code == 3 and str(inner) in refused.err
    assert not target.exists() and peer.info("{{.DockerRootDir}}") == str(peer.root)


def test_the_engines_own_mounts_do_not_block(peer: DockerdPeer) -> None:
    # a running container (overlay mount) and a tmpfs volume the engine mounts itself
    peer.docker("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "scratch")
    peer.docker(
        "run", "-d", "--name", "scratcher", "--network", "none", "-v", "scratch:/s", "opsbook-bb:1", "sleep", "600"
    )
    dry = opsbook(peer, "move", str(peer.dir / "new-root"), "--dry-run")
    assert dry.code == 0, dry.out
    checks = {c["id"].rsplit(".", 1)[1]: c for c in json.loads(dry.out)["checks"]}
    assert "nothing is mounted inside" in str(checks["nested_mounts"]["summary"])


def test_symlinked_daemon_json_stays_a_symlink_to_the_new_root(peer: DockerdPeer) -> None:
    real = peer.dir / "conf" / "daemon.json"
    real.parent.mkdir()
    os.replace(peer.daemon_json, real)
    peer.daemon_json.symlink_to(real)
    before = snapshot(peer)
    target = peer.dir / "new-root"
    dry = opsbook(peer, "move", str(target), "--dry-run")
    assert dry.code == 0, dry.out
    assert json.loads(dry.out)["plan"]["daemon_json_written"] == str(real)
    moved = opsbook(peer, "move", str(target), "--yes")
    assert moved.code == 0, moved.out + moved.err
    assert peer.daemon_json.is_symlink() and os.readlink(peer.daemon_json) == str(real)
    assert json.loads(real.read_text())["data-root"] == str(target)
    assert peer.info("{{.DockerRootDir}}") == str(target)
    assert wait_running(peer) == "running" and snapshot(peer) == before
    back = opsbook(peer, "rollback", "--yes")
    assert back.code == 0, back.out + back.err
    assert peer.daemon_json.is_symlink() and json.loads(real.read_text())["data-root"] == str(peer.root)


def test_daemon_json_that_dockerd_refuses(peer: DockerdPeer) -> None:
    config = json.loads(peer.daemon_json.read_text())
    peer.daemon_json.write_text(json.dumps(config)[:-1] + ', "max-concurrent-downloads": NaN}')
    dry = opsbook(peer, "move", str(peer.dir / "new-root"), "--dry-run")
    assert dry.code == 2
    assert "NaN is not a JSON value" in str(_blockers(dry.out)["daemon_json"]["summary"])
    # An unknown key: this dockerd (20.10) has no --validate, and the plan says so instead of pretending.
    peer.daemon_json.write_text(json.dumps({**config, "no-such-option": True}))
    dry = opsbook(peer, "move", str(peer.dir / "new-root"), "--dry-run")
    checks = {c["id"].rsplit(".", 1)[1]: c for c in json.loads(dry.out)["checks"]}
    validate = str(checks["validate"]["summary"])
    help_text = subprocess.run(["dockerd", "--help"], capture_output=True, text=True, check=False).stdout
    if "--validate" in help_text:
        assert dry.code == 2 and checks["validate"]["status"] == "CRITICAL" and "no-such-option" in validate
    else:
        assert "not validated" in validate and "no --validate" in validate


def test_daemon_json_changed_after_the_plan_refuses_with_nothing_done(peer: DockerdPeer) -> None:
    target = peer.dir / "new-root"
    opts = mv.MoveOptions(
        target=str(target),
        daemon_json=str(peer.daemon_json),
        docker_host=peer.host,
        state_dir=str(peer.state_dir),
        control=EngineControl(peer.host, str(peer.stop_script), str(peer.start_script)),
    )
    planned = mv.make_plan(opts)
    assert not planned.blockers
    peer.daemon_json.write_text(peer.daemon_json.read_text().replace('"warn"', '"info"'))
    with pytest.raises(RefusedError, match="changed since the plan"):
        mv.apply(planned)
    assert not target.exists()
    planned = mv.make_plan(opts)
    target.symlink_to(peer.dir / "elsewhere")
    with pytest.raises(RefusedError, match="is a symlink"):
        mv.apply(planned)
    assert peer.info("{{.DockerRootDir}}") == str(peer.root)


def _planted_journal(peer: DockerdPeer, marker: Path) -> Path:
    """A journal that would make rollback run a command of the attacker's choice."""
    folder = peer.state_dir / "docker-root"
    folder.mkdir(parents=True)
    data = {
        "version": 1,
        "id": "x",
        "status": "in-progress",
        "steps": [],
        "old_root": str(peer.root),
        "target": str(peer.dir / "t"),
        "daemon_json": str(peer.daemon_json),
        "docker_host": peer.host,
        "stop_command": f"touch {marker}",
        "start_command": f"touch {marker}",
    }
    path = folder / "journal.json"
    path.write_text(json.dumps(data))
    os.chmod(folder, 0o700)
    os.chmod(path, 0o600)
    return path


@pytest.mark.parametrize(
    "how", ["state dir writable by others", "journal owned by another user", "journal is a symlink"]
)
def test_untrusted_state_is_refused_with_nothing_run(peer: DockerdPeer, how: str) -> None:
    marker = peer.dir / "pwned"
    path = _planted_journal(peer, marker)
    if how == "state dir writable by others":
        os.chmod(peer.state_dir, 0o777)
    elif how == "journal owned by another user":
        os.chown(path, 4242, 4242)
    else:
        real = peer.dir / "elsewhere.json"
        os.replace(path, real)
        path.symlink_to(real)
    args = [a for a in peer.options()]
    for cmd in (["rollback", "--yes"], ["move", str(peer.dir / "t"), "--yes"], ["cleanup", "--yes"]):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "opsbook",
                "docker-root",
                *cmd,
                *[
                    a
                    for a in args
                    if a not in (str(peer.stop_script), str(peer.start_script), "--stop-command", "--start-command")
                ],
                "-f",
                "json",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 3, (cmd, result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1 and "refusing" in result.stderr, result.stderr
        assert not marker.exists(), f"{cmd[0]} ran a command from an untrusted journal"
    assert peer.info("{{.DockerRootDir}}") == str(peer.root)
    assert wait_running(peer) == "running"


def _read_until(fd: int, text: bytes, timeout: float = 60) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


def test_cleanup_holds_the_lock_through_its_prompt(peer: DockerdPeer) -> None:
    target = peer.dir / "new-root"
    before = snapshot(peer)
    moved = opsbook(peer, "move", str(target), "--yes")
    assert moved.code == 0, moved.out + moved.err
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsbook", "docker-root", "cleanup", *peer.options(), "-f", "json"],
        cwd=REPO,
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=terminal,
        text=True,
    )
    try:
        shown = _read_until(controller, b"Type ")
        assert b"Type " in shown, shown
        # A rollback while cleanup waits at its prompt: refused, the engine stays on the new root.
        racing = opsbook(peer, "rollback", "--yes")
        assert racing.code == 3 and "holds" in racing.err, racing.out + racing.err
        assert peer.info("{{.DockerRootDir}}") == str(target)
        os.write(controller, f"{peer.root}\n".encode())
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 0, out
    assert os.listdir(peer.root) == [] and snapshot(peer) == before


def test_cleanup_after_a_rollback_deletes_nothing_live(peer: DockerdPeer) -> None:
    target = peer.dir / "new-root"
    before = snapshot(peer)
    assert opsbook(peer, "move", str(target), "--yes").code == 0
    assert opsbook(peer, "rollback", "--yes").code == 0
    assert peer.info("{{.DockerRootDir}}") == str(peer.root)
    cleaned = opsbook(peer, "cleanup", "--yes")
    # The journal now says rolled-back after a verified move: nothing may be deleted.
    assert cleaned.code == 3, cleaned.out + cleaned.err
    assert journal(peer)["status"] == "rolled-back"
    assert wait_running(peer) == "running" and snapshot(peer) == before
    assert (target / "volumes").is_dir()


def test_move_confirmed_on_a_terminal_prints_one_json_document(peer: DockerdPeer) -> None:
    from tests.e2e.test_docker_root_move import on_terminal

    target = peer.dir / "new-root"
    done = on_terminal(peer, "y", "move", str(target))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "copy while the engine runs" in done.stderr and "Move Docker's data-root to" in done.stderr
    doc = json.loads(done.stdout)  # exactly one document: the plan table went to stderr
    assert doc["command"] == "docker-root move" and doc["changed"] is True
