"""Back to the old data-root: previous daemon.json, engine on the old root, inventory verified."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsbook.runbooks.errors import RefusedError
from opsbook.runbooks.fsutil import atomic_write
from opsbook.runbooks.model import CheckResult, Report, Status, Step

from . import engine, inventory, journal
from .control import DROPIN_NAME, ControlError, EngineControl

if TYPE_CHECKING:
    from .containerd import ContainerdControl


def _started(record: journal.Journal, name: str) -> bool:
    return record.started(name)


def containerd_control(
    record: journal.Journal, stop_command: str | None = None, start_command: str | None = None
) -> ContainerdControl | None:
    """How rollback stops and starts containerd (None when the move left containerd alone).

    The commands given (both or neither), else the ones the move used (systemd when it used systemd).
    """
    from .containerd import ContainerdControl

    containerd_move = record.data.get("containerd")
    if not containerd_move:
        return None
    given = bool(stop_command and start_command)
    return ContainerdControl(
        None,
        stop_command if given else containerd_move.get("stop_command"),
        start_command if given else containerd_move.get("start_command"),
        systemd=False if given else bool(containerd_move.get("systemd")),
        address=str(containerd_move["address"]),
    )


def restore(
    record: journal.Journal,
    control: EngineControl,
    daemon_json: str,
    docker_host: str | None,
    containerd: ContainerdControl | None = None,
) -> tuple[list[Step], bool]:
    """Put the host back on the old root as the journal describes it; ``(steps, ok)``.

    Works at any point of a move, including after a crash: daemon.json is restored only
    when the move had begun writing it, the drop-in removed only when it had been written.
    *containerd* says how to stop and start containerd (default: the commands the move used).
    """
    steps: list[Step] = []
    old_root = str(record.data["old_root"])
    reload = False
    try:
        if _started(record, "daemon-json"):
            backup = record.data.get("backup")
            # Through a symlink, like the move: the link stays, the file it points to is restored.
            real = os.path.realpath(daemon_json)
            if backup and os.path.exists(backup):
                owner = record.data.get("daemon_json_owner") or None
                atomic_write(
                    real,
                    record.read_backup(str(backup)),
                    mode=int(record.data.get("daemon_json_mode", 0o644)) & 0o777,
                    owner=tuple(owner) if owner else None,
                )
                steps.append(Step("daemon-json", Status.OK, f"{real} restored from {backup}"))
            elif not record.data.get("daemon_json_existed", True):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(real)
                steps.append(Step("daemon-json", Status.OK, f"{daemon_json} removed (it did not exist before)"))
            else:
                raise ControlError(f"the backup of {daemon_json} is missing ({backup}): restore it by hand")
        cj = record.data.get("containerd")
        if cj:
            reload = _remove_dropin(record.data.get("containerd_dropin"), "containerd-dropin", steps)
            steps += _restore_containerd(
                record, cj, control, docker_host, containerd or containerd_control(record), reload=reload
            )
        reload = _remove_dropin(record.data.get("dropin"), "dropin", steps) or reload
        on_old = False
        if engine.ping(docker_host):
            client = engine.connect(docker_host)
            on_old = engine.is_running_on(engine.engine_info(client), old_root)
            client.close()
            # After a crash while stopping, a stop command may still be running: restart for sure.
            if not on_old or _started(record, "daemon-json") or record.data.get("engine_stopped"):
                engine.stop_containers_for_live_restore(docker_host)
                control.stop()
                steps.append(Step("stop", Status.OK, "engine stopped"))
                on_old = False
        if not on_old:
            control.start(reload=reload)
            steps.append(Step("start", Status.OK, f"engine started on {old_root}"))
        before = record.data.get("inventory")
        if before:
            from .verify import verify_engine

            problems, after = verify_engine(docker_host, old_root, str(record.data.get("driver", "")), before)
            if problems:
                raise ControlError("; ".join(problems))
            steps.append(
                Step(
                    "verify",
                    Status.OK,
                    f"Docker runs on {old_root}: {len(after['images'])} images, "
                    f"{len(after['containers'])} containers, {len(after['volumes'])} volumes; "
                    "the containers that ran before run again",
                )
            )
        else:
            client = engine.connect(docker_host)
            info = engine.engine_info(client)
            client.close()
            if not engine.is_running_on(info, old_root):
                raise ControlError(f"the engine runs on {info.root_dir}, not {old_root}")
            steps.append(Step("verify", Status.OK, f"Docker runs on {old_root} (no inventory was taken yet)"))
    except Exception as exc:
        steps.append(
            Step(
                "rollback",
                Status.CRITICAL,
                f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, (ControlError, engine.EngineUnavailable))
                else str(exc),
            )
        )
        record.set(status=journal.FAILED, rollback_error=str(exc))
        return steps, False
    record.set(status=journal.ROLLED_BACK)
    return steps, True


def _remove_dropin(dropin: object, name: str, steps: list[Step]) -> bool:
    """Remove the drop-in the journal names (only opsbook's own); whether one was removed."""
    if not dropin:
        return False
    if os.path.basename(str(dropin)) != DROPIN_NAME:
        raise ControlError(f"the journal names {dropin} as opsbook's drop-in: not removing it")
    if not os.path.exists(str(dropin)):
        return False
    os.unlink(str(dropin))
    steps.append(Step(name, Status.OK, f"{dropin} removed"))
    return True


def _restore_containerd(
    record: journal.Journal,
    cj: dict[str, Any],
    control: EngineControl,
    docker_host: str | None,
    containerd_control: ContainerdControl | None,
    *,
    reload: bool = False,
) -> list[Step]:
    """containerd back on its old root: config.toml restored, containerd restarted (the engine stopped
    first), its inventory verified and the tasks of other namespaces started again."""
    from . import containerd as ctd

    steps: list[Step] = []
    path = str(cj["config"])
    if _started(record, "containerd-config"):
        real = os.path.realpath(path)
        backup = record.data.get("containerd_backup")
        if backup and os.path.exists(str(backup)):
            owner = cj.get("config_owner") or None
            atomic_write(
                real,
                record.read_backup(str(backup)),
                mode=int(cj.get("config_mode", 0o644)) & 0o777,
                owner=tuple(owner) if owner else None,
            )
            steps.append(Step("containerd-config", Status.OK, f"{real} restored from {backup}"))
        elif not cj.get("config_existed", True):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(real)
            steps.append(Step("containerd-config", Status.OK, f"{path} removed (it did not exist before)"))
        else:
            raise ControlError(f"the backup of {path} is missing ({backup}): restore it by hand")
    if not record.data.get("containerd_stopped") or containerd_control is None:
        return steps
    if engine.ping(docker_host):  # containerd restarts under a stopped engine only
        engine.stop_containers_for_live_restore(docker_host)
        control.stop()
        steps.append(Step("stop", Status.OK, "engine stopped (containerd restarts first)"))
    if containerd_control.answers():
        containerd_control.stop()
    containerd_control.start(reload=reload)
    steps.append(Step("containerd", Status.OK, f"containerd started on {cj['old_root']}"))
    before = record.data.get("containerd_inventory")
    if before:
        problems = ctd.compare(before, ctd.take(containerd_control.address)) or ctd.start_tasks(
            containerd_control.address, before
        )
        if problems:
            raise ControlError("; ".join(problems))
        steps.append(
            Step(
                "containerd-verify",
                Status.OK,
                f"containerd holds every blob, image, snapshot and container of {len(before)} "
                "namespace(s); their tasks run again",
            )
        )
    return steps


def left_behind(record: journal.Journal, docker_host: str | None) -> list[str]:
    """What exists on the new root but not in the pre-move inventory (stays behind on rollback)."""
    before: dict[str, Any] = record.data.get("inventory") or {}
    try:
        client = engine.connect(docker_host)
    except engine.EngineUnavailable:
        return []
    try:
        info = engine.engine_info(client)
        if engine.is_running_on(info, str(record.data["old_root"])):
            return []
        now = inventory.take(client)
    finally:
        client.close()
    out = []
    new_images = set(now["images"]) - set(before.get("images", []))
    new_containers = set(now["containers"]) - set(before.get("containers", {}))
    new_volumes = set(now["volumes"]) - set(before.get("volumes", {}))
    if new_images:
        out.append(f"{len(new_images)} new image(s)")
    if new_containers:
        out.append("new container(s): " + ", ".join(sorted(now["containers"][c]["name"] for c in new_containers)))
    if new_volumes:
        out.append("new volume(s): " + ", ".join(sorted(new_volumes)))
    return out


def check_can_rollback(record: journal.Journal) -> journal.Journal:
    """*j* (loaded) when it can be rolled back (RefusedError when there is nothing to roll back to)."""
    if record.status == journal.CLEANED:
        raise RefusedError(
            f"the old root {record.data['old_root']} was removed by cleanup: there is nothing to roll back to"
        )
    if not os.path.isdir(str(record.data["old_root"])):
        raise RefusedError(f"the old root {record.data['old_root']} does not exist any more")
    return record


def run(
    record: journal.Journal,
    control: EngineControl,
    daemon_json: str,
    docker_host: str | None,
    containerd: ContainerdControl | None = None,
) -> Report:
    """Roll back the move in *record* and report."""
    report = Report(command="docker-root rollback", mutating=True)
    old_root = str(record.data["old_root"])
    if record.status == journal.ROLLED_BACK and engine.ping(docker_host):
        client = engine.connect(docker_host)
        info = engine.engine_info(client)
        client.close()
        if engine.is_running_on(info, old_root):
            report.add(
                CheckResult(
                    "docker_root.rollback",
                    old_root,
                    "rollback",
                    Status.OK,
                    f"already rolled back: Docker runs on {old_root}",
                )
            )
            return report
    steps, ok = restore(record, control, daemon_json, docker_host, containerd)
    report.steps = steps
    report.changed = True
    if ok:
        report.add(
            CheckResult(
                "docker_root.rollback",
                old_root,
                "rollback",
                Status.OK,
                f"Docker runs on {old_root} again with everything it had before the move; "
                f"the copy at {record.data.get('target')} was left in place",
            )
        )
    else:
        report.add(
            CheckResult(
                "docker_root.rollback", old_root, "rollback", Status.CRITICAL, "rollback failed: " + steps[-1].summary
            )
        )
    return report


@dataclass
class RollbackPlan:
    """What a rollback will do, for the confirmation: back to *old_root* with these commands."""

    old_root: str
    target: str
    #: What exists on the new root but not in the move's inventory (stays behind there).
    behind: list[str]
    control: EngineControl
    #: How containerd is stopped and started (None: the move left containerd alone).
    containerd: ContainerdControl | None = None

    def commands(self) -> str:
        """The commands rollback runs, for the confirmation."""
        control, containerd = self.control, self.containerd
        out = (
            f"{'; '.join(control.show(control.stop_commands()))}; "
            f"then {'; '.join(control.show(control.start_commands()))}"
        )
        if containerd is not None:
            out += (
                f"; containerd is restarted on its old root between the two: "
                f"{'; '.join(containerd.show(containerd.stop_commands()))}; "
                f"then {'; '.join(containerd.show(containerd.start_commands()))}"
            )
        return out


def run_locked(
    record: journal.Journal,
    docker_host: str | None,
    daemon_json: str | None,
    control_for: Callable[[str | None, journal.Journal], EngineControl],
    confirm: Callable[[RollbackPlan], None],
    *,
    containerd_commands: tuple[str | None, str | None] = (None, None),
) -> Report:
    """The whole rollback under the state dir's lock: load, check, let *confirm* show the plan, act.

    *control_for(engine_url, journal)* says how to stop and start the engine (the options
    given, else the commands the move used); *containerd_commands* (stop, start) likewise
    for containerd; *confirm* shows the plan and raises to refuse.
    """
    record.require()
    with record.lock():
        check_can_rollback(record.load())
        host_url, daemon_path = record.engine_defaults(docker_host, daemon_json)
        control = control_for(host_url, record)
        containerd = containerd_control(record, *containerd_commands)
        if containerd is not None and not containerd.usable:
            raise RefusedError(
                "the move did not record how to stop and start containerd and systemd does not manage it: "
                "give --containerd-stop-command and --containerd-start-command"
            )
        confirm(
            RollbackPlan(
                str(record.data["old_root"]),
                str(record.data["target"]),
                left_behind(record, host_url),
                control,
                containerd,
            )
        )
        return run(record, control, daemon_path, host_url, containerd)
