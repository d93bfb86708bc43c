"""``docker-root move``: plan (always), then apply step by step under a journal."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsbook.runbooks.errors import RefusedError
from opsbook.runbooks.fsutil import atomic_write
from opsbook.runbooks.model import CheckResult, Report, Status, Step

from . import containerd as containerd_store
from . import engine, host, inventory, journal, plan, rollback, treecopy, treeverify, validate
from .control import ControlError, EngineControl

DEFAULT_ROOT = "/var/lib/docker"
#: Plan estimate of the downtime: the final copy and the verification walk the tree about
#: four times (both sides, twice); the stop and the start come on top.
DOWNTIME_WALKS = 4
DOWNTIME_STOP_START_S = 5.0


@dataclass
class MoveProgress:
    """What the move tells about itself while it runs (both optional).

    ``phase(label, detail)`` when a phase begins; ``copied(done_bytes, total_bytes, files)``
    during a copy, ``total_bytes`` 0 when unknown (no ETA can be given then).
    """

    phase: Any = None
    copied: Any = None

    def begin(self, label: str, detail: str = "") -> None:
        """Announce a phase."""
        if self.phase is not None:
            self.phase(label, detail)


@dataclass
class MoveOptions:
    """What the user asked for."""

    target: str
    daemon_json: str
    docker_host: str | None
    state_dir: str
    control: EngineControl
    dry_run: bool = False
    allow_containerd_store: bool = False
    #: containerd's config.toml, how to stop/start it, where its root goes (default: next to TARGET).
    containerd_config: str = containerd_store.DEFAULT_CONFIG
    containerd_control: containerd_store.ContainerdControl | None = None
    containerd_target: str | None = None
    allow_other_clients: bool = False
    unit_dirs: tuple[str, ...] = host.SYSTEMD_UNIT_DIRS


@dataclass
class Plan:
    """A move plan: the facts, the preflight findings, the new daemon.json and the report."""

    opts: MoveOptions
    facts: plan.Facts
    findings: list[plan.Finding]
    new_config: dict[str, Any]
    diff: str
    report: Report
    nothing_to_do: bool = False
    dropin: bool = False
    #: Whether containerd.service gets a RequiresMountsFor= drop-in for its new root.
    containerd_dropin: bool = False
    #: The plan as the JSON document's ``plan`` section.
    sections: dict[str, Any] = field(default_factory=dict)
    #: Bytes used by the current root (for the progress total); 0 when unknown.
    used_bytes: int = 0
    #: Free bytes TARGET's filesystem must have (re-checked right before the copy).
    need_bytes: int = 0

    @property
    def containerd(self) -> plan.ContainerdFacts | None:
        """The system containerd whose root this move takes along (None: nothing of containerd moves)."""
        c = self.facts.containerd
        return c if c is not None and c.moves and not self.opts.allow_containerd_store else None

    @property
    def blockers(self) -> list[plan.Finding]:
        """The findings that block the move."""
        return [f for f in self.findings if not f.ok]

    def steps_and_sections(self, current: str, diff: str, unfinished: bool, downtime_s: float | None) -> None:
        """The plan's steps and its JSON ``plan`` object."""
        opts, facts, report, target = self.opts, self.facts, self.report, self.opts.target
        control = opts.control
        copy_cmd = " ".join(treecopy.rsync_command(current, target))
        cfacts = facts.containerd if not opts.allow_containerd_store else None
        cm = cfacts if cfacts is not None and cfacts.moves else None
        containerd_control = opts.containerd_control
        state_folder = journal.Journal(opts.state_dir).folder
        real_json = facts.daemon.real_path or opts.daemon_json
        steps = [
            ("recover", f"roll back the unfinished move to {target} first (rsync re-uses the partial copy)")
            if unfinished
            else None,
            (
                "inventory",
                "record image IDs, containers (state, restart policy) and volumes"
                + (
                    "; containerd's content blobs, images, snapshots, containers and running tasks per namespace"
                    if cm
                    else ""
                ),
            ),
            (
                "warm-copy",
                f"copy while the engine runs: {copy_cmd}"
                + (f"; {' '.join(treecopy.rsync_command(cm.located.root, cm.target))}" if cm else ""),
            ),
            (
                "stop",
                "stop the engine: "
                + "; ".join(control.show(control.stop_commands()))
                + (
                    "; running containers are stopped first (live-restore is on)"
                    if facts.info and facts.info.live_restore
                    else ""
                )
                + (
                    "; then containerd (running tasks of other namespaces stopped first): "
                    + "; ".join(containerd_control.show(containerd_control.stop_commands()))
                    if cm and containerd_control
                    else ""
                ),
            ),
            (
                "final-copy",
                "copy the last changes with the engine stopped (same rsync, mtimes to the nanosecond, "
                "--delete), then copy again every file changed since the warm copy began",
            ),
            (
                "verify-copy",
                "compare every entry of the old root and the copy (type, size, mtime, mode, owner, "
                "link count, hard links, xattrs, symlink target) and hash the files changed since "
                "the warm copy began",
            ),
            (
                "backup",
                f"back up {real_json} to {state_folder}/daemon.json.<timestamp>.bak"
                + (
                    f" and {cm.located.config.path} to {state_folder}/config.toml.<timestamp>.bak"
                    if cm and cm.located.config and cm.located.config.exists
                    else ""
                ),
            ),
            ("dropin", f"write {control.dropin_path()}: RequiresMountsFor={target}") if self.dropin else None,
            (
                "containerd-dropin",
                f"write {containerd_control.dropin_path()}: RequiresMountsFor={os.path.abspath(cm.target)}",
            )
            if self.containerd_dropin and cm and containerd_control
            else None,
            ("selinux", "; ".join(" ".join(c) for c in plan.selinux_commands(target)))
            if facts.selinux and facts.selinux_tools
            else None,
            (
                "containerd-config",
                f"write {cm.located.config.path if cm.located.config else '?'} "
                f"atomically (every other setting and comment kept):\n{cm.diff.rstrip()}",
            )
            if cm
            else None,
            ("daemon-json", f"write {real_json} atomically (same mode and owner):\n{diff.rstrip()}"),
            (
                "start",
                (
                    "start containerd: "
                    + "; ".join(containerd_control.show(containerd_control.start_commands(self.containerd_dropin)))
                    + "; then "
                    if cm and containerd_control
                    else ""
                )
                + "start the engine: "
                + "; ".join(control.show(control.start_commands(self.dropin))),
            ),
            (
                "verify",
                f"DockerRootDir = {os.path.realpath(target) if os.path.isabs(target) else target}, "
                "same driver, d_type, same images/containers/volumes; start the containers that ran before"
                + (
                    "; containerd: every blob, image, snapshot and container of every namespace, its tasks "
                    "started again"
                    if cm
                    else ""
                ),
            ),
        ]
        for item in steps:
            if item:
                report.steps.append(Step(item[0], Status.OK, ("would " if opts.dry_run else "plan: ") + item[1]))
        self.sections = {
            "plan": {
                "old_root": current,
                "target": target,
                "daemon_json": opts.daemon_json,
                "daemon_json_written": real_json,
                "daemon_json_diff": diff,
                "copy_command": copy_cmd,
                "stop_commands": control.show(control.stop_commands()),
                "start_commands": control.show(control.start_commands(self.dropin)),
                "dropin": control.dropin_path() if self.dropin else None,
                "size_bytes": self.used_bytes,
                "expected_downtime_s": downtime_s,
                "blockers": [f.id for f in self.blockers],
                "warnings": [f.id for f in self.findings if f.ok and f.warning],
                "containerd": None
                if cfacts is None
                else {
                    "kind": cfacts.located.kind,
                    "old_root": cfacts.located.root,
                    "target": cfacts.target or None,
                    "address": cfacts.located.address or None,
                    "config": cfacts.located.config.path if cfacts.located.config else None,
                    "config_diff": cfacts.diff or None,
                    "dropin": containerd_control.dropin_path()
                    if self.containerd_dropin and containerd_control
                    else None,
                    "namespaces": cfacts.namespaces,
                    "size_bytes": cfacts.usage.bytes if cfacts.usage else 0,
                },
            }
        }
        report.sections.update(self.sections)


def _load(state_dir: str) -> journal.Journal:
    """The journal of the last move (empty ``data`` when there is none)."""
    record = journal.Journal(state_dir)
    if record.exists():
        record.load()
    return record


def containerd_target(target: str, containerd_root: str) -> str:
    """Where containerd's root goes by default: a ``containerd`` folder beside TARGET.

    (``TARGET-containerd`` when that folder is containerd's current root.)
    """
    beside = os.path.join(os.path.dirname(target.rstrip("/")) or "/", "containerd")
    if os.path.realpath(beside) == os.path.realpath(containerd_root):
        return target.rstrip("/") + "-containerd"
    return beside


def _containerd_facts(
    opts: MoveOptions, daemon_data: dict[str, Any], current: str, dockerd_args: list[list[str]], record: journal.Journal
) -> plan.ContainerdFacts:
    """Which containerd holds the image store, its namespaces and where its root goes."""
    located = containerd_store.locate(current, daemon_data, dockerd_args, opts.containerd_config)
    earlier = record.data.get("containerd") if record.data else None
    if earlier and record.unfinished and located.kind == containerd_store.SYSTEM:
        located.root = str(earlier["old_root"])  # the config may name the new root after a crash
    out = plan.ContainerdFacts(located)
    if located.kind != containerd_store.SYSTEM:
        return out
    containerd_control = opts.containerd_control
    if containerd_control is not None:
        containerd_control.address = located.address
        out.control_ok = containerd_control.usable
    out.target = (
        os.path.normpath(opts.containerd_target)
        if opts.containerd_target
        else containerd_target(opts.target, located.root)
    )
    out.resumable = (
        bool(earlier)
        and record.reusable_copy(opts.target)
        and os.path.abspath(str((earlier or {}).get("target", ""))) == os.path.abspath(out.target)
    )
    if located.config is not None and not located.config.error:
        out.new_config = containerd_store.config_with_root(located.config, out.target)
        out.diff = containerd_store.config_diff(located.config, out.new_config)
    try:
        out.namespaces = containerd_store.namespaces(located.address)
    except containerd_store.ContainerdError as exc:
        out.error = str(exc)
    return out


def _engine_facts(docker_host: str | None) -> tuple[engine.EngineInfo | None, frozenset[str], str]:
    """The engine's info and its volumes with mount options; ``(None, {}, reason)`` when it does not answer."""
    try:
        client = engine.connect(docker_host)
        try:
            return engine.engine_info(client), engine.volumes_with_options(client), ""
        finally:
            client.close()
    except engine.EngineUnavailable as exc:
        return None, frozenset(), str(exc)


def _validations(daemon: host.DaemonConfig, new: dict[str, Any]) -> tuple[validate.Validation | None, ...]:
    """``dockerd --validate`` of the current daemon.json and of the new one (None when not applicable)."""
    if not daemon.usable:
        return None, None
    current = validate.validate_bytes(daemon.raw if daemon.exists else b"{}\n")
    if not current.available or current.error:
        return current, current
    return current, validate.validate_bytes(plan.render_config(new).encode())


def make_plan(opts: MoveOptions) -> Plan:
    """Gather the facts and build the plan report (changes nothing, writes nothing)."""
    target = opts.target
    daemon = host.read_daemon_json(opts.daemon_json)
    info, option_volumes, error = _engine_facts(opts.docker_host)
    record = _load(opts.state_dir)
    unfinished = record.unfinished
    same_target = record.reusable_copy(target)
    if info is not None:
        current = info.root_dir
    elif unfinished:
        current = str(record.data["old_root"])
    else:
        current = daemon.data_root or DEFAULT_ROOT
    processes = host.dockerd_processes(opts.docker_host)
    new = plan.new_config(daemon.data or {}, target)
    absolute = os.path.isabs(target)
    current_check, new_check = _validations(daemon, new) if absolute else (None, None)
    facts = plan.Facts(
        target=target,
        daemon=daemon,
        info=info,
        engine_error=error,
        current_root=current,
        flags=[f for proc in processes for f in proc.flags],
        config_files=[proc.config_file for proc in processes if proc.config_file],
        unit_flags=host.systemd_unit_flags(dirs=opts.unit_dirs) if opts.control.systemd else {},
        systemd=opts.control.systemd,
        control_ok=opts.control.usable,
        resumable=same_target,
        allow_containerd_store=opts.allow_containerd_store,
        selinux=host.selinux_enforcing(),
        selinux_tools=plan.selinux_tools(),
        nested_mounts=host.mounts_below(current, volumes_with_options=option_volumes) if current else [],
        current_validation=current_check,
        new_validation=new_check,
    )
    store = bool(info and info.containerd_store) or daemon.snapshotter
    if store and not opts.allow_containerd_store and absolute:
        facts.containerd = _containerd_facts(
            opts, daemon.data or {}, current, [proc.args for proc in processes], record
        )
        facts.allow_other_clients = opts.allow_other_clients
    report = Report(command="docker-root move", mutating=True, dry_run=opts.dry_run)
    diff = plan.config_diff(opts.daemon_json, daemon.data if daemon.exists else None, new)
    result = Plan(opts, facts, [], new, diff, report)
    if absolute and info is not None and not unfinished and os.path.realpath(target) == os.path.realpath(current):
        result.nothing_to_do = True
        report.add(
            CheckResult(
                "docker_root.move",
                target,
                "data-root moved",
                Status.OK,
                f"Docker already runs on {current}: nothing to do",
            )
        )
        return result
    walk_started = time.monotonic()
    usage = host.usage(current) if info is not None and absolute else None
    walk_s = time.monotonic() - walk_started
    result.used_bytes = usage.bytes if usage else 0
    result.need_bytes = plan.space_needed(usage) if usage else 0
    if facts.containerd and facts.containerd.moves and info is not None:
        walk_started = time.monotonic()
        facts.containerd.usage = host.usage(facts.containerd.located.root)
        walk_s += time.monotonic() - walk_started
        result.used_bytes += facts.containerd.usage.bytes
    findings = plan.preflight(facts, usage=usage)
    if unfinished and info is None and same_target:
        for f in findings:
            if f.id.endswith(".engine"):
                f.ok, f.summary = True, "engine down after an unfinished move: it is rolled back to the old root first"
    if unfinished and not same_target:
        findings.append(
            plan.Finding(
                "docker_root.preflight.journal",
                "unfinished move",
                False,
                f"an unfinished move to {record.data.get('target')} is in {record.path}",
                "run 'opsbook docker-root rollback' first (or re-run the move with that TARGET)",
            )
        )
    result.findings = findings
    for f in findings:
        summary = f.summary if f.ok and not f.warning else f"{f.summary} -- {'fix' if not f.ok else 'hint'}: {f.fix}"
        level = Status.CRITICAL if not f.ok else Status.WARNING if f.warning else Status.OK
        report.add(
            CheckResult(
                f.id,
                target,
                f.name,
                level,
                summary,
                details={"fix": f.fix} if f.fix and (not f.ok or f.warning) else {},
            )
        )
    result.dropin = absolute and plan.needs_dropin(facts.systemd, current, target)
    containerd_move, containerd_control = result.containerd, opts.containerd_control
    result.containerd_dropin = (
        containerd_move is not None
        and containerd_control is not None
        and containerd_control.systemd
        and not containerd_control.stop_command
        and plan.needs_dropin(facts.systemd, containerd_move.located.root, containerd_move.target)
    )
    downtime_s = round(DOWNTIME_WALKS * walk_s + DOWNTIME_STOP_START_S, 1) if usage else None
    if usage:
        report.add(
            CheckResult(
                "docker_root.size",
                target,
                "size to copy",
                Status.OK,
                f"{usage.bytes / plan.GIB:.2f} GiB in {usage.inodes} files and folders; expected "
                f"downtime about {downtime_s:g} s (final copy and verification, from the "
                f"{walk_s:.1f} s this plan took to walk the tree, plus the stop and start; "
                "the warm copy runs with the engine up)",
                metrics={"bytes": usage.bytes, "inodes": usage.inodes, "expected_downtime_s": downtime_s or 0.0},
            )
        )
    result.steps_and_sections(current, diff, unfinished, downtime_s)
    if result.blockers:
        report.status_override = Status.CRITICAL
    return result


class StepFailed(Exception):
    """A move step failed."""


class Interrupted(BaseException):
    """opsbook was interrupted (Ctrl-C, SIGTERM, SIGHUP) during the move.

    A BaseException, like KeyboardInterrupt: the docker SDK wrappers' ``except Exception``
    must not swallow it.
    """


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Turn SIGINT/SIGTERM/SIGHUP into :class:`Interrupted` so the move can roll back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        raise Interrupted(f"interrupted by {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def apply(planned: Plan, progress: MoveProgress | None = None) -> Report:
    """Carry out a planned move. Never deletes the old root.

    Everything the plan decided on is checked again under the lock before anything is
    done (daemon.json unchanged, TARGET still empty and no symlink, free space). Failures
    after the engine was stopped roll back automatically (old daemon.json back, engine on
    the old root, inventory verified) and the report is CRITICAL.
    """
    if planned.blockers:
        raise RefusedError("move refused: " + "; ".join(b.summary for b in planned.blockers))
    record = journal.Journal(planned.opts.state_dir)
    with record.lock():
        return _Move(planned, record, progress or MoveProgress()).run()


def recheck(planned: Plan, daemon: host.DaemonConfig, resumable: bool) -> None:
    """Refuse (nothing done) when the host changed since the plan was shown."""
    if daemon.error:
        raise RefusedError(daemon.error)
    if daemon.sha256 != planned.facts.daemon.sha256:
        raise RefusedError(
            f"{planned.opts.daemon_json} changed since the plan was made: run the move again to see the new plan"
        )
    problem = plan.target_state(planned.opts.target, resumable)
    if problem:
        raise RefusedError(f"{problem} (it changed since the plan was made): nothing done")
    c = planned.containerd
    if c is not None:
        cfg = containerd_store.read_config(planned.opts.containerd_config)
        if cfg.error or (cfg.sha256 != (c.located.config.sha256 if c.located.config else "")):
            raise RefusedError(
                f"{planned.opts.containerd_config} changed since the plan was made: run the move again "
                "to see the new plan"
            )
        problem = plan.target_state(c.target, c.resumable)
        if problem:
            raise RefusedError(f"{problem} (it changed since the plan was made): nothing done")
    if planned.need_bytes:
        free = host.space(planned.opts.target).free_bytes
        if free < planned.need_bytes:
            raise RefusedError(
                f"only {free / plan.GIB:.1f} GiB free for {planned.opts.target} now, "
                f"need {planned.need_bytes / plan.GIB:.1f} GiB: nothing done"
            )


class _Move:
    """One move under the lock: its steps in order, the journal kept after each."""

    def __init__(self, planned: Plan, record: journal.Journal, progress: MoveProgress) -> None:
        self.planned, self.record, self.progress = planned, record, progress
        self.control = planned.opts.control
        self.target = os.path.abspath(planned.opts.target)
        self.report = Report(
            command="docker-root move", mutating=True, dry_run=False, checks=list(planned.report.checks)
        )
        self.report.sections.update(planned.sections)
        self.times: dict[str, float] = {}
        self.current = ""
        self.old_root = ""
        self.inv: dict[str, Any] = {}
        self.driver = ""
        self.daemon: host.DaemonConfig = planned.facts.daemon
        self.copy_started_ns = 0
        self.stop_started = 0.0
        self.old_trees: dict[str, Future[dict[str, treeverify.Entry]]] = {}
        #: The system containerd whose root moves too (None: only the data-root moves).
        self.containerd_move = planned.containerd
        self.containerd_control = planned.opts.containerd_control
        self.cinv: dict[str, Any] = {}
        self.stopped_tasks: list[str] = []

    def pairs(self) -> list[tuple[str, str]]:
        """Every (old root, new root) this move copies: the data-root, then containerd's root."""
        out = [(self.old_root, self.target)]
        if self.containerd_move is not None:
            out.append((self.containerd_move.located.root, os.path.abspath(self.containerd_move.target)))
        return out

    # ------------------------------------------------------------ running
    def run(self) -> Report:
        """Recover an unfinished move, re-check the plan, then every step; roll back on failure."""
        earlier_copy_ns = self._recover()
        if earlier_copy_ns is None:
            return self.report
        opts = self.planned.opts
        self.daemon = host.read_daemon_json(opts.daemon_json)
        recheck(self.planned, self.daemon, self.planned.facts.resumable)
        try:
            client = engine.connect(opts.docker_host)
        except engine.EngineUnavailable as exc:
            raise RefusedError(f"the engine does not answer ({exc}): nothing changed") from None
        info = engine.engine_info(client)
        self.old_root, self.driver = info.root_dir, info.driver
        control = self.control
        self.record.start(
            old_root=self.old_root,
            target=self.target,
            daemon_json=opts.daemon_json,
            docker_host=opts.docker_host,
            stop_command=control.stop_command,
            start_command=control.start_command,
            daemon_json_existed=self.daemon.exists,
            daemon_json_mode=self.daemon.mode,
            daemon_json_owner=list(self.daemon.owner),
            driver=info.driver,
            dropin=None,
            containerd_dropin=None,
            copy_started_ns=earlier_copy_ns or time.time_ns(),
            containerd=self._containerd_journal(),
        )
        self.copy_started_ns = int(self.record.data["copy_started_ns"])
        steps: list[tuple[str, Any]] = [
            ("inventory", lambda: self._inventory(client)),
            ("warm-copy", self._warm_copy),
            ("stop", self._stop),
            ("final-copy", self._final_copy),
            ("verify-copy", self._verify_copy),
            ("backup", self._backup),
            ("dropin", self._dropin),
            ("containerd-dropin", self._containerd_dropin),
            ("selinux", self._selinux),
            ("containerd-config", self._containerd_config),
            ("daemon-json", self._daemon_json),
            ("start", self._start),
            ("verify", self._verify_engine),
        ]
        try:
            with _interruptible():
                for name, action in steps:
                    self.current = name
                    summary = action()
                    if summary is not None:
                        self.report.steps.append(Step(name, Status.OK, summary[0], summary[1]))
                        self.record.step(name, "done")
            self._succeeded()
        except (Exception, Interrupted) as exc:
            self._failed(exc)
        self.report.sections["times"] = self.times
        return self.report

    def _containerd_journal(self) -> dict[str, Any] | None:
        """What rollback needs to know of containerd (None when its root does not move)."""
        c, containerd_control = self.containerd_move, self.containerd_control
        if c is None or containerd_control is None:
            return None
        cfg = c.located.config or containerd_store.read_config(self.planned.opts.containerd_config)
        return {
            "old_root": c.located.root,
            "target": os.path.abspath(c.target),
            "address": c.located.address,
            "config": cfg.path,
            "config_existed": cfg.exists,
            "config_mode": cfg.mode,
            "config_owner": list(cfg.owner),
            "stop_command": containerd_control.stop_command,
            "start_command": containerd_control.start_command,
            "systemd": containerd_control.systemd,
        }

    def _begin(self, label: str, detail: str = "", **fields: Any) -> None:
        self.record.step(self.current, "started", **fields)
        self.progress.begin(label, detail)

    def _recover(self) -> int | None:
        """Roll back an unfinished earlier move; the start of its copy when TARGET's copy is reused.

        None when the earlier move could not be rolled back (the report says so), else the
        earlier copy's start in ns (0 when there is none to reuse).
        """
        record, opts = self.record, self.planned.opts
        if not record.exists():
            return 0
        record.load()
        earlier = int(record.data.get("copy_started_ns") or 0) if record.reusable_copy(self.target) else 0
        if record.unfinished:
            steps, restored = rollback.restore(
                record, self.control, str(record.data.get("daemon_json") or opts.daemon_json), opts.docker_host
            )
            self.report.steps += [Step("recover: " + s.name, s.status, s.summary) for s in steps]
            if not restored:
                self.report.add(
                    CheckResult(
                        "docker_root.move",
                        self.target,
                        "data-root moved",
                        Status.CRITICAL,
                        "the unfinished earlier move could not be rolled back: see the steps",
                    )
                )
                return None
        record.archive()
        return earlier

    # ------------------------------------------------------------ steps
    def _inventory(self, client: Any) -> tuple[str, dict[str, Any]]:
        self._begin("inventory")
        try:
            self.inv = inventory.take(client)
        finally:
            client.close()
        self.record.set(inventory=self.inv)
        inv = self.inv
        extra = ""
        if self.containerd_move is not None:
            # Reachable now, or the move stops here with nothing changed; the inventory that counts is
            # taken once the engine is stopped (dockerd deletes its containerd containers when it stops).
            names = containerd_store.namespaces(self.containerd_move.located.address)
            extra = f"; containerd answers (namespaces {', '.join(names) or 'none'})"
        return (
            f"{len(inv['images'])} images, {len(inv['containers'])} containers "
            f"({sum(c['running'] for c in inv['containers'].values())} running), "
            f"{len(inv['volumes'])} volumes{extra}",
            {},
        )

    def _copy_progress(self, total: int | None) -> Any:
        """rsync's progress for the bar; *total* None during the final copy.

        The final pass sends a small delta of a big tree: rsync's percentage is of the whole
        tree, so no total (and no ETA) is shown rather than an absurd one.
        """
        if self.progress.copied is None:
            return None
        copied = self.progress.copied
        if total is None:
            return lambda done, estimate, files: copied(done, 0, files)
        return lambda done, estimate, files: copied(done, total or estimate, files)

    def _warm_copy(self) -> tuple[str, dict[str, Any]]:
        self._begin(
            "warm copy", f"{self.planned.used_bytes} bytes from {self.old_root} to {self.target}, engine running"
        )
        files = size = 0
        seconds = 0.0
        for src, dst in self.pairs():
            Path(dst).mkdir(mode=0o711, exist_ok=True)
            res = treecopy.rsync(src, dst, progress=self._copy_progress(self.planned.used_bytes), tolerate=(23, 24))
            files, size, seconds = files + res.files, size + res.bytes, seconds + res.seconds
        self.times["warm_copy_s"] = round(seconds, 3)
        both = " (data-root and containerd's root)" if self.containerd_move is not None else ""
        return f"{files} files, {size} bytes in {seconds:.1f}s{both} (engine running)", {}

    def _stop(self) -> tuple[str, dict[str, Any]]:
        self._begin("stopping the engine", engine_stopped=True)
        self.stop_started = time.monotonic()
        stopped = engine.stop_containers_for_live_restore(self.planned.opts.docker_host)
        self.control.stop()
        tasks = ""
        if self.containerd_move is not None and self.containerd_control is not None:
            address = self.containerd_move.located.address
            self.cinv = containerd_store.take(address)
            self.record.set(containerd_stopped=True, containerd_inventory=self.cinv)
            tasks = "; containerd: " + ", ".join(
                f"{ns}: {len(i['content'])} blobs, {len(i['images'])} images, {len(i['snapshots'])} snapshots, "
                f"{len(i['containers'])} containers ({len(i['running'])} running)"
                for ns, i in self.cinv.items()
            )
            self.stopped_tasks = containerd_store.stop_tasks(self.containerd_move.located.address, self.cinv)
            self.containerd_control.stop()
            tasks = (
                ", then containerd"
                + tasks
                + (f" (tasks stopped first: {', '.join(self.stopped_tasks)})" if self.stopped_tasks else "")
            )
        self.times["stop_s"] = round(time.monotonic() - self.stop_started, 3)
        return (
            f"engine stopped{tasks} in {self.times['stop_s']:.1f}s"
            + (f" (live-restore: stopped {', '.join(stopped)} first)" if stopped else ""),
            {},
        )

    def _final_copy(self) -> tuple[str, dict[str, Any]]:
        self._begin("final copy", "engine stopped")
        for src, _dst in self.pairs():
            left = host.mounts_below(src)
            if left:
                raise StepFailed(
                    f"a filesystem is mounted inside {src} with the engine stopped ("
                    + ", ".join(f"{m.mount_point} ({m.fstype})" for m in left)
                    + "): its data would not be copied"
                )
        # The old roots cannot change any more: walk them while rsync copies (downtime).
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsbook-oldtree")
        for src, _dst in self.pairs():
            self.old_trees[src] = pool.submit(treeverify.scan, src)
        pool.shutdown(wait=False)
        files = size = recopied = 0
        seconds = 0.0
        for src, dst in self.pairs():
            res = treecopy.rsync(src, dst, progress=self._copy_progress(None))
            changed = treeverify.changed_since(self.old_trees[src].result(), self.copy_started_ns)
            again = treecopy.recopy(src, dst, changed)
            files, size, recopied = files + res.files, size + res.bytes, recopied + len(changed)
            seconds += res.seconds + again.seconds
        self.times["final_copy_s"] = round(seconds, 3)
        return (
            f"{files} files, {size} bytes changed since the warm copy; {recopied} file(s) "
            f"changed since it began copied again whatever their mtimes ({self.times['final_copy_s']:.1f}s)",
            {"recopied": recopied},
        )

    def _verify_copy(self) -> tuple[str, dict[str, Any]]:
        self._begin("verifying the copy")
        started = time.monotonic()
        summaries: list[str] = []
        details: dict[str, Any] = {}
        for src, dst in self.pairs():
            diff = self._verify_pair(src, dst)
            summaries.append(diff.summary() if len(self.pairs()) == 1 else f"{src}: {diff.summary()}")
            details = details or {"entries": 0, "kinds": {}, "hashed_files": 0, "hashed_bytes": 0}
            details["entries"] += diff.compared
            details["hashed_files"] += diff.hashed_files
            details["hashed_bytes"] += diff.hashed_bytes
            for kind, n in diff.kinds.items():
                details["kinds"][kind] = details["kinds"].get(kind, 0) + n
        self.times["verify_copy_s"] = round(time.monotonic() - started, 3)
        return f"identical: {'; '.join(summaries)} ({self.times['verify_copy_s']:.1f}s)", details

    def _verify_pair(self, src: str, dst: str) -> treeverify.TreeDiff:
        old = self.old_trees[src].result()
        # The copy's walk runs beside the hashing of the changed files (both trees are quiet now).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsbook-newtree") as pool:
            new_tree = pool.submit(treeverify.scan, dst)
            hashed = treeverify.TreeDiff()
            treeverify.hash_content(src, dst, treeverify.changed_since(old, self.copy_started_ns), hashed)
            diff = treeverify.compare(old, new_tree.result())
        diff.hashed_files, diff.hashed_bytes = hashed.hashed_files, hashed.hashed_bytes
        diff.content_differs = hashed.content_differs
        if not diff.ok:
            raise StepFailed(f"the copy of {src} differs from it: " + "; ".join(diff.problems()))
        return diff

    def _backup(self) -> tuple[str, dict[str, Any]]:
        self._begin("backing up daemon.json")
        json_path = self.planned.opts.daemon_json
        also, details = "", {}
        if self.containerd_move is not None:
            cfg = containerd_store.read_config(self.planned.opts.containerd_config)
            if cfg.exists:
                cbackup = self.record.backup_path("config.toml")
                atomic_write(cbackup, cfg.raw, mode=0o600)
                self.record.set(containerd_backup=str(cbackup))
                also, details = f"; {cfg.real_path} saved as {cbackup}", {"containerd_backup": str(cbackup)}
            else:
                also = f"; {cfg.path} did not exist (rollback removes it)"
        if not self.daemon.exists:
            return f"{json_path} did not exist (rollback removes it){also}", details
        backup = self.record.backup_path()
        atomic_write(backup, self.daemon.raw, mode=0o600)
        self.record.set(backup=str(backup))
        return f"{self.daemon.real_path} saved as {backup}{also}", {"backup": str(backup), **details}

    def _dropin(self) -> tuple[str, dict[str, Any]] | None:
        if not self.planned.dropin:
            return None
        path = self.control.dropin_path()
        self._begin("systemd drop-in", dropin=path)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, self.control.dropin_text(self.target), mode=0o644)
        return f"{path}: RequiresMountsFor={self.target}", {}

    def _containerd_dropin(self) -> tuple[str, dict[str, Any]] | None:
        if not self.planned.containerd_dropin or self.containerd_move is None or self.containerd_control is None:
            return None
        path = self.containerd_control.dropin_path()
        ctarget = os.path.abspath(self.containerd_move.target)
        self._begin("systemd drop-in for containerd", containerd_dropin=path)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, self.containerd_control.dropin_text(ctarget), mode=0o644)
        return f"{path}: RequiresMountsFor={ctarget}", {}

    def _selinux(self) -> tuple[str, dict[str, Any]] | None:
        if not (self.planned.facts.selinux and self.planned.facts.selinux_tools):
            return None
        self._begin("SELinux labels")
        for cmd in plan.selinux_commands(self.target):
            subprocess.run(cmd, check=True, capture_output=True, timeout=3600)
        return f"{self.target} labelled like /var/lib/docker", {}

    def _containerd_config(self) -> tuple[str, dict[str, Any]] | None:
        c = self.containerd_move
        if c is None:
            return None
        self._begin("writing containerd's config.toml")
        planned = c.located.config or containerd_store.read_config(self.planned.opts.containerd_config)
        now = containerd_store.read_config(planned.path)
        if now.sha256 != planned.sha256:
            raise StepFailed(f"{planned.path} was changed by someone else during the move: not overwriting it")
        # Built from the very bytes that were backed up, written where a symlink points.
        text = containerd_store.config_with_root(now, os.path.abspath(c.target))
        Path(now.real_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(
            now.real_path, text, mode=now.mode if now.exists else 0o644, owner=now.owner if now.exists else None
        )
        created = "" if now.exists else " (created: it did not exist; from 'containerd config default')"
        return f"{now.real_path} now sets root {os.path.abspath(c.target)}{created}", {"diff": c.diff}

    def _daemon_json(self) -> tuple[str, dict[str, Any]]:
        self._begin("writing daemon.json")
        json_path = self.planned.opts.daemon_json
        now = host.read_daemon_json(json_path)
        if now.sha256 != self.daemon.sha256:
            raise StepFailed(f"{json_path} was changed by someone else during the move: not overwriting it")
        # Built from the very bytes that were backed up, written where a symlink points.
        new_config = plan.new_config(self.daemon.data or {}, self.target)
        Path(self.daemon.real_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(
            self.daemon.real_path,
            plan.render_config(new_config),
            mode=self.daemon.mode,
            owner=self.daemon.owner if self.daemon.exists else None,
        )
        problem = validate.validate(self.daemon.real_path)
        if problem.error:
            raise StepFailed(f"dockerd --validate rejects the new daemon.json: {problem.error}")
        return f"{self.daemon.real_path} now sets data-root {self.target}", {"diff": self.planned.diff}

    def _start(self) -> tuple[str, dict[str, Any]]:
        self._begin("starting the engine")
        first = ""
        if self.containerd_move is not None and self.containerd_control is not None:
            self.times["containerd_start_s"] = round(
                self.containerd_control.start(reload=self.planned.containerd_dropin), 3
            )
            first = f"containerd started in {self.times['containerd_start_s']:.1f}s, then "
        self.times["start_s"] = round(self.control.start(reload=self.planned.dropin), 3)
        return f"{first}engine started in {self.times['start_s']:.1f}s", {}

    def _verify_engine(self) -> tuple[str, dict[str, Any]]:
        self._begin("verifying the engine")
        also = ""
        c = self.planned.facts.containerd
        if self.containerd_move is not None:
            address = self.containerd_move.located.address
            cproblems = containerd_store.compare(self.cinv, containerd_store.take(address))
            cproblems = cproblems or containerd_store.start_tasks(address, self.cinv)
            if cproblems:
                raise StepFailed("; ".join(cproblems))
            also = (
                f"; containerd runs on {os.path.abspath(self.containerd_move.target)} with every blob, image, snapshot "
                f"and container of {len(self.cinv)} namespace(s)"
            )
        problems, after = _verify(self.planned.opts.docker_host, self.target, self.driver, self.inv)
        if c is not None and not c.moves:
            problems += [
                f"a containerd process still names the old root: {u}"
                for u in containerd_store.processes_using(self.old_root)
            ]
        if problems:
            raise StepFailed("; ".join(problems))
        self.times["downtime_s"] = round(time.monotonic() - self.stop_started, 3)
        self.record.set(status=journal.VERIFIED, verified_at=time.time(), times=self.times)
        return (
            f"Docker runs on {os.path.realpath(self.target)} with everything present; "
            f"{sum(x['running'] for x in after['containers'].values())} container(s) running{also}",
            {},
        )

    # ------------------------------------------------------------ outcome
    def _succeeded(self) -> None:
        self.report.changed = True
        self.report.add(
            CheckResult(
                "docker_root.move",
                self.target,
                "data-root moved",
                Status.OK,
                f"moved from {self.old_root} to {self.target}; old data kept at {self.old_root} "
                f"(remove it with 'opsbook docker-root cleanup' once satisfied)",
                metrics=dict(self.times),
            )
        )

    def _failed(self, exc: BaseException) -> None:
        message = _describe(exc)
        current, report, record = self.current, self.report, self.record
        report.steps.append(Step(current, Status.CRITICAL, message))
        record.step(current, "failed", error=message)
        if record.data.get("engine_stopped"):
            self.progress.begin("rolling back", message)
            steps, rolled = rollback.restore(
                record, self.control, self.planned.opts.daemon_json, self.planned.opts.docker_host
            )
            report.steps += [Step("rollback: " + s.name, s.status, s.summary) for s in steps]
            report.changed = not rolled
            summary = (
                f"move failed at {current}: {message}; rolled back automatically: Docker runs on "
                f"{self.old_root} as before, nothing lost"
                if rolled
                else f"move failed at {current}: {message}; ROLLBACK INCOMPLETE: see the steps, then run "
                "'opsbook docker-root rollback'"
            )
        else:
            record.set(status=journal.FAILED)
            summary = (
                f"move failed at {current}: {message}; the engine was never stopped and daemon.json "
                f"never changed (a partial copy may remain in {self.target})"
            )
        report.add(
            CheckResult(
                "docker_root.move",
                self.target,
                "data-root moved",
                Status.CRITICAL,
                summary,
                details={"failed_step": current},
            )
        )


def _verify(docker_host: str | None, target: str, driver: str, inv: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    from .verify import verify_engine

    return verify_engine(docker_host, target, driver, inv)


def _describe(exc: BaseException) -> str:
    if isinstance(
        exc, (StepFailed, ControlError, treecopy.CopyError, engine.EngineUnavailable, Interrupted, treeverify.TreeError)
    ):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)
    return f"{type(exc).__name__}: {exc}"
