"""The systemd path by the commands it plans, engine control errors, and status with the engine down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsbook.runbooks.docker_root import host, move, status
from opsbook.runbooks.docker_root.control import ControlError, EngineControl
from opsbook.runbooks.errors import RefusedError
from opsbook.runbooks.model import Status


def test_systemd_stops_the_socket_before_the_service_then_starts_both() -> None:
    ctl = EngineControl("unix:///nowhere.sock", systemd=True)
    assert ctl.usable
    assert ctl.stop_commands() == [["systemctl", "stop", "docker.socket"], ["systemctl", "stop", "docker.service"]]
    assert ctl.start_commands() == [["systemctl", "start", "docker.socket", "docker.service"]]
    assert ctl.start_commands(reload=True)[0] == ["systemctl", "daemon-reload"]
    no_socket = EngineControl(None, systemd=True, socket_unit=False)
    assert no_socket.stop_commands() == [["systemctl", "stop", "docker.service"]]
    assert no_socket.start_commands() == [["systemctl", "start", "docker.service"]]


def test_own_commands_and_what_is_usable() -> None:
    ctl = EngineControl(None, "service docker stop", "service docker start")
    assert ctl.usable and ctl.show(ctl.stop_commands()) == ["service docker stop"]
    assert not EngineControl(None).usable  # no systemd, no commands
    assert not EngineControl(None, "x", None).usable


def test_dropin_requires_the_mount_of_target(tmp_path: Path) -> None:
    ctl = EngineControl(None, systemd=True, unit_dir=str(tmp_path))
    assert ctl.dropin_path() == str(tmp_path / "docker.service.d" / "opsbook-data-root.conf")
    assert "[Unit]\nRequiresMountsFor=/srv/docker\n" in ctl.dropin_text("/srv/docker")


def test_a_failing_stop_command_is_reported_with_its_output() -> None:
    ctl = EngineControl("unix:///nowhere.sock", "echo cannot stop it >&2; exit 4", "true")
    with pytest.raises(ControlError, match="exited with 4: cannot stop it"):
        ctl.stop()
    assert ctl.log == ["$ echo cannot stop it >&2; exit 4 -> 4"]


def test_start_waits_for_the_engine_and_gives_up() -> None:
    ctl = EngineControl("unix:///nowhere.sock", "true", "true", wait_timeout=0.5)
    with pytest.raises(ControlError, match="does not answer"):
        ctl.start()


def _systemd_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **opts: object) -> move.Plan:
    """A plan on a (pretend) systemd host whose TARGET is on another mount; the engine is down."""
    old, target = tmp_path / "old", tmp_path / "disk" / "docker"
    old.mkdir(exist_ok=True)
    target.parent.mkdir(exist_ok=True)
    if not (tmp_path / "daemon.json").exists():
        (tmp_path / "daemon.json").write_text(json.dumps({"data-root": str(old), "log-level": "warn"}))
    real_mount_of = host.mount_of

    def mount_of(path: str, mountinfo: str = "/proc/self/mountinfo") -> host.Mount:
        if str(path).startswith(str(target.parent)):
            return host.Mount(str(target.parent), "xfs", "/dev/sdb1")
        return real_mount_of(path, mountinfo)

    monkeypatch.setattr(host, "mount_of", mount_of)
    unit_dir = tmp_path / "units"
    options = move.MoveOptions(
        target=str(target),
        daemon_json=str(tmp_path / "daemon.json"),
        docker_host=f"unix://{tmp_path}/no.sock",
        state_dir=str(tmp_path / "state"),
        control=EngineControl(None, systemd=True, unit_dir=str(unit_dir)),
        dry_run=True,
        unit_dirs=(str(unit_dir),),
    )
    for key, value in opts.items():
        setattr(options, key, value)
    return move.make_plan(options)


def test_systemd_plan_lists_stop_start_and_the_drop_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _systemd_plan(tmp_path, monkeypatch)
    planned = p.report.sections["plan"]
    assert planned["stop_commands"] == ["systemctl stop docker.socket", "systemctl stop docker.service"]
    assert planned["start_commands"] == ["systemctl daemon-reload", "systemctl start docker.socket docker.service"]
    assert planned["dropin"] == str(tmp_path / "units" / "docker.service.d" / "opsbook-data-root.conf")
    steps = {s.name: s.summary for s in p.report.steps}
    assert f"RequiresMountsFor={tmp_path / 'disk' / 'docker'}" in steps["dropin"]
    assert steps["stop"].endswith("systemctl stop docker.socket; systemctl stop docker.service")
    # the engine is down: the plan is blocked (exit 2 under --dry-run) and nothing was written
    assert planned["blockers"] == ["docker_root.preflight.engine"]
    assert p.report.exit_code == 2
    assert not (tmp_path / "state").exists() and not (tmp_path / "units").exists()
    with pytest.raises(RefusedError, match="engine does not answer"):
        move.apply(p)
    assert not (tmp_path / "state").exists()


def test_systemd_plan_finds_a_flag_in_a_drop_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "units" / "docker.service.d").mkdir(parents=True)
    (tmp_path / "units" / "docker.service.d" / "old.conf").write_text(
        "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// --data-root /srv/d\n"
    )
    p = _systemd_plan(tmp_path, monkeypatch)
    assert "docker_root.preflight.flags" in p.report.sections["plan"]["blockers"]


def test_no_drop_in_on_the_same_mount(tmp_path: Path) -> None:
    from opsbook.runbooks.docker_root import plan

    assert not plan.needs_dropin(True, str(tmp_path), str(tmp_path / "new"))
    assert not plan.needs_dropin(False, "/var/lib/docker", "/mnt/disk/docker")


def test_status_with_the_engine_down_reports_unknown(tmp_path: Path) -> None:
    (tmp_path / "daemon.json").write_text(json.dumps({"graph": str(tmp_path)}))
    report = status.build(
        str(tmp_path / "daemon.json"), f"unix://{tmp_path}/no.sock", str(tmp_path / "state"), systemd=False
    )
    checks = {c.id: c for c in report.checks}
    assert checks["docker_root.engine"].status is Status.UNKNOWN
    assert "what the host shows" in checks["docker_root.engine"].summary
    assert checks["docker_root.data_root"].status is Status.UNKNOWN
    assert str(tmp_path) in checks["docker_root.data_root"].summary
    assert "deprecated 'graph'" in checks["docker_root.daemon_json"].summary
    assert checks["docker_root.space"].status in (Status.OK, Status.WARNING, Status.CRITICAL)
    assert report.exit_code == 3
    assert not (tmp_path / "state").exists()


def test_status_flags_a_broken_daemon_json(tmp_path: Path) -> None:
    (tmp_path / "daemon.json").write_text('{"a": 1, "a": 2}')
    report = status.build(str(tmp_path / "daemon.json"), f"unix://{tmp_path}/no.sock", None, systemd=False)
    check = next(c for c in report.checks if c.id == "docker_root.daemon_json")
    assert check.status is Status.CRITICAL and "duplicate key 'a'" in check.summary


def _containerd_systemd_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> move.Plan:
    """A systemd plan with the containerd image store: containerd's new root on the other mount too."""
    from opsbook.runbooks.docker_root import containerd
    from opsbook.runbooks.docker_root.containerd import ContainerdControl

    # No containerd here: only Docker's namespace (ctr would wait 10 s for the missing socket).
    monkeypatch.setattr(containerd, "namespaces", lambda address: ["moby"])
    (tmp_path / "ctd-old").mkdir(exist_ok=True)
    config = tmp_path / "config.toml"
    config.write_text(f'version = 2\nroot = "{tmp_path / "ctd-old"}"\n\n[grpc]\n  address = "{tmp_path}/no-c.sock"\n')
    (tmp_path / "daemon.json").write_text(
        json.dumps({"data-root": str(tmp_path / "old"), "features": {"containerd-snapshotter": True}})
    )
    control = ContainerdControl(None, systemd=True, unit_dir=str(tmp_path / "units"))
    return _systemd_plan(tmp_path, monkeypatch, containerd_config=str(config), containerd_control=control)


def test_containerd_drop_in_is_planned_when_its_new_root_is_on_another_mount(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _containerd_systemd_plan(tmp_path, monkeypatch)
    path = tmp_path / "units" / "containerd.service.d" / "opsbook-data-root.conf"
    ctarget = tmp_path / "disk" / "containerd"
    assert p.containerd_dropin
    assert p.report.sections["plan"]["containerd"]["dropin"] == str(path)
    steps = {s.name: s.summary for s in p.report.steps}
    assert steps["containerd-dropin"] == f"would write {path}: RequiresMountsFor={ctarget}"
    # containerd is started after a daemon-reload, so systemd sees the drop-in.
    assert "start containerd: systemctl daemon-reload; systemctl start containerd.service; then" in steps["start"]
    names = [s.name for s in p.report.steps]
    assert names.index("dropin") < names.index("containerd-dropin") < names.index("start")
    assert not (tmp_path / "units").exists()  # a plan writes nothing


def test_no_containerd_drop_in_without_systemd_control(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from opsbook.runbooks.docker_root.containerd import ContainerdControl

    p = _containerd_systemd_plan(tmp_path, monkeypatch)
    assert p.containerd is not None
    p2 = _systemd_plan(
        tmp_path,
        monkeypatch,
        containerd_config=p.opts.containerd_config,
        containerd_control=ContainerdControl(None, "sv stop containerd", "sv start containerd"),
    )
    assert not p2.containerd_dropin and "containerd-dropin" not in [s.name for s in p2.report.steps]


def test_containerd_drop_in_is_journaled_and_rollback_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsbook.runbooks.docker_root import journal, rollback

    p = _containerd_systemd_plan(tmp_path, monkeypatch)
    record = journal.Journal(tmp_path / "state")
    record.make_folder()
    record.data = {"old_root": str(tmp_path / "old"), "target": str(tmp_path / "disk" / "docker")}
    mover = move._Move(p, record, move.MoveProgress())
    mover.current = "containerd-dropin"
    done = mover._containerd_dropin()
    path = tmp_path / "units" / "containerd.service.d" / "opsbook-data-root.conf"
    assert done is not None and done[0] == f"{path}: RequiresMountsFor={tmp_path / 'disk' / 'containerd'}"
    assert f"[Unit]\nRequiresMountsFor={tmp_path / 'disk' / 'containerd'}\n" in path.read_text()
    saved = json.loads(record.path.read_text())
    assert saved["containerd_dropin"] == str(path) and saved["steps"][-1]["name"] == "containerd-dropin"
    # Rollback removes it (the engine here never answers: the rollback itself then fails, the drop-in is gone).
    record.data["containerd"] = {"address": f"{tmp_path}/no-c.sock", "config": p.opts.containerd_config}
    control = EngineControl(f"unix://{tmp_path}/no.sock", "true", "true", wait_timeout=0.3)
    steps, ok = rollback.restore(record, control, str(tmp_path / "daemon.json"), control.docker_host)
    assert not path.exists() and not ok
    assert ("containerd-dropin", f"{path} removed") in [(s.name, s.summary) for s in steps]
    # A journal naming another file as the drop-in is refused, the file kept.
    foreign = tmp_path / "units" / "containerd.service.d" / "site.conf"
    foreign.write_text("[Unit]\n")
    record.data["containerd_dropin"] = str(foreign)
    steps, ok = rollback.restore(record, control, str(tmp_path / "daemon.json"), control.docker_host)
    assert foreign.exists() and not ok and "not removing it" in steps[-1].summary
