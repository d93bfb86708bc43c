"""Preflight of ``docker-root move`` against a real dockerd started with a ``--data-root`` flag.

The flag is on the running dockerd's command line (/proc/PID/cmdline), daemon.json holds
no data-root: writing one would make dockerd refuse to start, so every move is blocked.
Plans only (``--dry-run``, or refusals): the engine is shared by the module's tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.dockerd_peer import DockerdPeer
from tests.helpers import Result, run_cli
from tests.peers import need_binary, need_root

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def flagged() -> Iterator[DockerdPeer]:
    need_root()
    for name in ("dockerd", "docker", "rsync"):
        need_binary(name)
    peer = DockerdPeer()
    try:
        peer.daemon_json.write_text(json.dumps({"storage-driver": "overlay2", "log-level": "warn"}))
        peer.set_extra_flags(f"--data-root {peer.root}")
        peer.start()
        yield peer
    finally:
        peer.close()


def dry_run(peer: DockerdPeer, target: str, *extra: str) -> tuple[Result, dict[str, dict[str, object]]]:
    res = run_cli("docker-root", "move", target, "--dry-run", *peer.options(), *extra, "-f", "json")
    doc = json.loads(res.out)
    return res, {c["id"].rsplit(".", 1)[1]: c for c in doc["checks"] if c["status"] != "OK"}


def test_flag_on_the_running_dockerd_blocks(flagged: DockerdPeer) -> None:
    original = flagged.daemon_json.read_bytes()
    target = flagged.dir / "new"
    res, blockers = dry_run(flagged, str(target))
    assert res.code == 2
    assert list(blockers) == ["flags"]
    assert f"--data-root {flagged.root}" in str(blockers["flags"]["summary"])
    assert "specified both as a flag and in the configuration file" in str(blockers["flags"]["summary"])
    refused = run_cli("docker-root", "move", str(target), "--yes", *flagged.options(), "-f", "json")
    assert refused.code == 3 and "move refused" in refused.err
    assert flagged.daemon_json.read_bytes() == original
    assert not target.exists() and not flagged.state_dir.exists()


def test_status_shows_the_flag(flagged: DockerdPeer) -> None:
    res = run_cli("docker-root", "status", *flagged.options(), "-f", "json")
    checks = {c["id"]: c for c in json.loads(res.out)["checks"]}
    assert checks["docker_root.engine"]["status"] == "OK"
    assert f"--data-root {flagged.root}" in checks["docker_root.daemon_json"]["details"]["flags"]
    assert checks["docker_root.driver"]["details"]["driver"] == "overlay2"
    assert "d_type supported" in checks["docker_root.driver"]["summary"]


def test_target_equal_to_the_current_root_is_nothing_to_do(flagged: DockerdPeer) -> None:
    res = run_cli("docker-root", "move", str(flagged.root), "--yes", *flagged.options(), "-f", "json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["changed"] is False and doc["status"] == "OK"
    assert "nothing to do" in doc["checks"][0]["summary"]


def test_target_paths_that_cannot_work(flagged: DockerdPeer) -> None:
    _, inside = dry_run(flagged, str(flagged.root / "sub"))
    assert "inside the current root" in str(inside["target"]["summary"])
    _, around = dry_run(flagged, str(flagged.dir))
    assert "is inside TARGET" in str(around["target"]["summary"])
    full = flagged.dir / "full"
    full.mkdir()
    (full / "keep.txt").write_text("not docker's")
    _, busy = dry_run(flagged, str(full))
    assert "not empty" in str(busy["target_empty"]["summary"])
    _, orphan = dry_run(flagged, str(flagged.dir / "no" / "parent"))
    assert "does not exist" in str(orphan["parent"]["summary"])


def test_daemon_json_the_engine_does_not_read(flagged: DockerdPeer, tmp_path: Path) -> None:
    other = tmp_path / "daemon.json"
    other.write_text('{"data-root": "/x", "data-root": "/y"}')
    res, blockers = dry_run(flagged, str(flagged.dir / "new"), "--daemon-json", str(other))
    assert res.code == 2
    assert f"--daemon-json {flagged.daemon_json}" in str(blockers["config_file"]["details"])
    assert "duplicate key 'data-root'" in str(blockers["daemon_json"]["summary"])
    assert other.read_text() == '{"data-root": "/x", "data-root": "/y"}'
