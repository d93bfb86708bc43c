"""``docker-root move`` with the containerd image store: a real containerd (Debian's 1.6) beside a real dockerd.

dockerd 20.10 is pointed at the private containerd (``--containerd SOCK``) and its daemon.json turns on
``features.containerd-snapshotter`` (how opsbook detects the store when the engine is older than 29);
containerd holds an imported image, a running container (active snapshot + task) and a stopped one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.containerd_peer import ContainerdPeer
from tests.e2e.dockerd_peer import DockerdPeer
from tests.helpers import REPO, Result, run_cli
from tests.peers import need_binary, need_root

pytestmark = pytest.mark.e2e


@pytest.fixture
def peers() -> Iterator[tuple[DockerdPeer, ContainerdPeer]]:
    need_root()
    for name in ("dockerd", "docker", "rsync", "busybox", "containerd", "ctr"):
        need_binary(name)
    ctd = ContainerdPeer()
    dockerd = DockerdPeer({"features": {"containerd-snapshotter": True}})
    try:
        ctd.start()
        ctd.populate()
        dockerd.set_extra_flags(f"--containerd {ctd.socket}")
        dockerd.start()
        dockerd.populate()
        yield dockerd, ctd
    finally:
        dockerd.close()
        ctd.close()


def opsbook(dockerd: DockerdPeer, ctd: ContainerdPeer, *args: str, ctd_start: str | None = None) -> Result:
    options = ctd.options()
    if ctd_start:
        options[options.index("--containerd-start-command") + 1] = ctd_start
    return run_cli("docker-root", *args, *dockerd.options(), *options, "-f", "json", timeout=300)


def _checks(result: Result) -> dict[str, Any]:
    return {c["id"]: c for c in json.loads(result.out)["checks"]}


def _moved(result: Result) -> bool:
    """The move succeeded (exit 1 only for the plan's warnings: other namespaces, mount ordering)."""
    return result.code in (0, 1) and _checks(result)["docker_root.move"]["status"] == "OK"


def test_status_and_plan_show_the_system_containerd(peers: tuple[DockerdPeer, ContainerdPeer]) -> None:
    dockerd, ctd = peers
    status = run_cli(
        "docker-root",
        "status",
        "--daemon-json",
        str(dockerd.daemon_json),
        "--docker-host",
        dockerd.host,
        "--containerd-config",
        str(ctd.config),
        "-f",
        "json",
    )
    check = _checks(status)["docker_root.containerd"]
    assert check["details"]["kind"] == "system" and check["details"]["root"] == str(ctd.root)
    assert check["details"]["namespaces"] == ["default", "moby"]
    assert "default" in check["summary"] and check["status"] == "WARNING"
    target = dockerd.new_disk("new") / "docker"
    plan = opsbook(dockerd, ctd, "move", str(target), "--dry-run")
    checks = _checks(plan)
    assert checks["docker_root.preflight.containerd_clients"]["status"] == "CRITICAL", plan.out
    assert "--allow-other-containerd-clients" in checks["docker_root.preflight.containerd_clients"]["summary"]
    assert plan.code == 2
    ok = opsbook(dockerd, ctd, "move", str(target), "--dry-run", "--allow-other-containerd-clients")
    doc = json.loads(ok.out)
    assert ok.code in (0, 1), ok.out
    c = doc["plan"]["containerd"]
    assert c["kind"] == "system" and c["target"] == str(target.parent / "containerd")
    assert "+root = " in c["config_diff"] and "-root = " in c["config_diff"]
    assert [s["name"] for s in doc["steps"]].index("containerd-config") < [s["name"] for s in doc["steps"]].index(
        "daemon-json"
    )


def test_k8s_namespace_blocks_without_the_option(peers: tuple[DockerdPeer, ContainerdPeer]) -> None:
    dockerd, ctd = peers
    ctd.ctr("namespaces", "create", "k8s.io")
    target = dockerd.new_disk("new") / "docker"
    config = ctd.config.read_bytes()
    result = opsbook(dockerd, ctd, "move", str(target), "--yes")
    assert result.code == 3 and "k8s.io" in result.err, result.err
    assert ctd.config.read_bytes() == config and not target.exists()


def test_move_takes_containerd_root_along(peers: tuple[DockerdPeer, ContainerdPeer]) -> None:
    dockerd, ctd = peers
    before_ctd, before_docker = ctd.state(), dockerd.state()
    assert before_ctd["running"] == [ctd.runner] and ctd.runner in before_ctd["snapshots"]
    config_before = ctd.config.read_text()
    disk = dockerd.new_disk("new")
    target, ctarget = disk / "docker", disk / "containerd"
    result = opsbook(dockerd, ctd, "move", str(target), "--yes", "--allow-other-containerd-clients")
    assert _moved(result), result.out + result.err
    assert ctd.state() == before_ctd  # every blob, image, snapshot, container; the task runs again
    assert dockerd.state() == before_docker and dockerd.volume_file() == "precious\n"
    assert dockerd.info("{{.DockerRootDir}}") == str(target)
    text = ctd.config.read_text()
    assert f'root = "{ctarget}"' in text
    # Every other line (comments, tables, sockets) kept as it was.
    assert [line for line in text.splitlines() if not line.startswith("root")] == [
        line for line in config_before.splitlines() if not line.startswith("root")
    ]
    assert "# where images and snapshots live" not in text or "root" in text
    backups = list((dockerd.state_dir / "docker-root").glob("config.toml.*.bak"))
    assert len(backups) == 1 and backups[0].read_text() == config_before
    # containerd really serves from the new root: the snapshot of the running container is there.
    assert any((ctarget / "io.containerd.snapshotter.v1.overlayfs" / "snapshots").iterdir())
    assert ctd.ctr("tasks", "ls").count("RUNNING") == 1


def test_containerd_refusing_the_new_root_rolls_back_both_files(peers: tuple[DockerdPeer, ContainerdPeer]) -> None:
    dockerd, ctd = peers
    before_ctd, before_docker = ctd.state(), dockerd.state()
    config, daemon_json = ctd.config.read_bytes(), dockerd.daemon_json.read_bytes()
    marker = ctd.dir / "failed-once"
    failing = ctd.dir / "start-failing-once.sh"
    failing.write_text(
        f"#!/bin/sh\nif [ ! -e {marker} ]; then touch {marker}; echo 'bad root' >&2; exit 1; fi\n"
        f"exec {ctd.start_script}\n"
    )
    failing.chmod(0o755)
    target = dockerd.new_disk("new") / "docker"
    result = opsbook(
        dockerd, ctd, "move", str(target), "--yes", "--allow-other-containerd-clients", ctd_start=str(failing)
    )
    assert result.code == 2, result.out + result.err
    doc = json.loads(result.out)
    assert "rolled back automatically" in doc["checks"][-1]["summary"], doc["checks"][-1]
    assert ctd.config.read_bytes() == config and dockerd.daemon_json.read_bytes() == daemon_json
    assert ctd.state() == before_ctd and dockerd.state() == before_docker
    assert dockerd.info("{{.DockerRootDir}}") == str(dockerd.root)


def test_kill_9_during_the_final_copy_then_rollback_and_rerun(peers: tuple[DockerdPeer, ContainerdPeer]) -> None:
    dockerd, ctd = peers
    before_ctd, before_docker = ctd.state(), dockerd.state()
    config = ctd.config.read_bytes()
    # Many small files in containerd's root make the final copy (and its walk) last long enough to be hit.
    bulk = ctd.root / "opsbook-bulk"
    for i in range(40):
        sub = bulk / f"d{i:02d}"
        sub.mkdir(parents=True)
        for k in range(500):
            (sub / f"f{k}").write_bytes(b"x" * (k % 64))
    target = dockerd.new_disk("new") / "docker"
    journal = dockerd.state_dir / "docker-root" / "journal.json"
    cmd = [
        sys.executable,
        "-m",
        "opsbook",
        "docker-root",
        "move",
        str(target),
        "--yes",
        "--allow-other-containerd-clients",
        *dockerd.options(),
        *ctd.options(),
        "-f",
        "json",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if journal.exists() and '"final-copy"' in journal.read_text():
                break
            time.sleep(0.02)
        else:
            pytest.fail("the move never reached the final copy")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    data = json.loads(journal.read_text())
    assert data["status"] == "in-progress" and data.get("containerd_stopped")
    rb = run_cli("docker-root", "rollback", "--yes", *dockerd.options(), "-f", "json", timeout=240)
    assert rb.code == 0, rb.out + rb.err
    assert ctd.config.read_bytes() == config
    assert ctd.state() == before_ctd and dockerd.state() == before_docker
    # The re-run reuses both partial copies and finishes.
    again = opsbook(dockerd, ctd, "move", str(target), "--yes", "--allow-other-containerd-clients")
    assert _moved(again), again.out + again.err
    assert ctd.state() == before_ctd and dockerd.state() == before_docker
    assert (target.parent / "containerd" / "opsbook-bulk" / "d39" / "f499").read_bytes() == b"x" * (499 % 64)


def _move_both(dockerd: DockerdPeer, ctd: ContainerdPeer) -> tuple[Any, Any]:
    disk = dockerd.new_disk("new")
    target, ctarget = disk / "docker", disk / "containerd"
    result = opsbook(dockerd, ctd, "move", str(target), "--yes", "--allow-other-containerd-clients")
    assert _moved(result), result.out + result.err
    return target, ctarget


def test_cleanup_removes_both_old_roots_after_a_verified_move(peers: tuple[DockerdPeer, ContainerdPeer]) -> None:
    dockerd, ctd = peers
    before_ctd, before_docker = ctd.state(), dockerd.state()
    target, ctarget = _move_both(dockerd, ctd)
    assert any(ctd.root.iterdir()) and any(dockerd.root.iterdir())
    status = run_cli(
        "docker-root", "status", *dockerd.options()[:4], "--state-dir", str(dockerd.state_dir), "-f", "json"
    )
    assert str(ctd.root) in _checks(status)["docker_root.journal"]["summary"]
    result = run_cli("docker-root", "cleanup", "--yes", *dockerd.options(), "-f", "json", timeout=240)
    assert result.code == 0, result.out + result.err
    assert "containerd's old root" in result.err and str(ctd.root) in result.err  # the confirmation names it
    removed = {c["target"]: c for c in json.loads(result.out)["checks"]}
    assert removed[str(ctd.root)]["status"] == "OK" and removed[str(dockerd.root)]["status"] == "OK"
    # Both old roots are tmpfs mount points: emptied, the mount points stay.
    assert list(ctd.root.iterdir()) == [] and list(dockerd.root.iterdir()) == []
    # The running roots are intact: everything is still there and the task still runs.
    assert ctd.state() == before_ctd and dockerd.state() == before_docker
    assert any((ctarget / "io.containerd.content.v1.content").iterdir())
    assert dockerd.info("{{.DockerRootDir}}") == str(target)
    journal = json.loads((dockerd.state_dir / "docker-root" / "journal.json").read_text())
    assert journal["status"] == "cleaned"


def test_cleanup_refuses_while_containerd_runs_on_the_old_root(peers: tuple[DockerdPeer, ContainerdPeer]) -> None:
    dockerd, ctd = peers
    _target, ctarget = _move_both(dockerd, ctd)
    # containerd goes back to its old root behind opsbook's back (config.toml still names the new one).
    subprocess.run([str(ctd.stop_script)], check=True, timeout=60)
    on_old = ctd.dir / "start-on-old-root.sh"
    on_old.write_text(ctd.start_script.read_text().replace("-c $D/config.toml", f"-c $D/config.toml --root {ctd.root}"))
    on_old.chmod(0o755)
    subprocess.run([str(on_old)], check=True, timeout=60, stdout=subprocess.DEVNULL)
    old_ctd = sorted(p.name for p in ctd.root.iterdir())
    old_docker = sorted(p.name for p in dockerd.root.iterdir())
    assert "io.containerd.content.v1.content" in old_ctd and old_docker
    result = run_cli("docker-root", "cleanup", "--yes", *dockerd.options(), "-f", "json", timeout=240)
    assert result.code == 3, result.out + result.err
    assert f"containerd runs on {ctd.root}" in result.err, result.err
    # Nothing deleted: neither old root, nor containerd's new one.
    assert sorted(p.name for p in ctd.root.iterdir()) == old_ctd
    assert sorted(p.name for p in dockerd.root.iterdir()) == old_docker
    assert any((ctarget / "io.containerd.content.v1.content").iterdir())
    journal = json.loads((dockerd.state_dir / "docker-root" / "journal.json").read_text())
    assert journal["status"] == "verified"


def test_rollback_uses_the_containerd_commands_given(peers: tuple[DockerdPeer, ContainerdPeer]) -> None:
    dockerd, ctd = peers
    before_ctd, before_docker = ctd.state(), dockerd.state()
    config = ctd.config.read_bytes()
    _move_both(dockerd, ctd)
    log = ctd.dir / "overrides.log"
    wrappers = []
    for name, script in (("stop", ctd.stop_script), ("start", ctd.start_script)):
        wrapper = ctd.dir / f"override-{name}.sh"
        wrapper.write_text(f"#!/bin/sh\necho {name} >> {log}\nexec {script}\n")
        wrapper.chmod(0o755)
        wrappers.append(str(wrapper))
    rb = run_cli(
        "docker-root",
        "rollback",
        "--yes",
        *dockerd.options(),
        "--containerd-stop-command",
        wrappers[0],
        "--containerd-start-command",
        wrappers[1],
        "-f",
        "json",
        timeout=240,
    )
    assert rb.code == 0, rb.out + rb.err
    # The confirmation names the containerd commands it runs; those, not the move's, were run.
    assert f"{wrappers[0]}; then {wrappers[1]}" in rb.err, rb.err
    assert log.read_text().split() == ["stop", "start"]
    assert ctd.config.read_bytes() == config
    assert ctd.state() == before_ctd and dockerd.state() == before_docker
    half = run_cli("docker-root", "rollback", "--yes", *dockerd.options(), "--containerd-stop-command", "true")
    assert half.code == 3 and "go together" in half.err and "Traceback" not in half.err
