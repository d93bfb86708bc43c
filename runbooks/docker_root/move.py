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

from . import copy, engine, host, inventory, journal, plan, rollback, treeverify, validate
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
    extra: dict[str, Any] = field(default_factory=dict)
    #: Bytes used by the current root (for the progress total); 0 when unknown.
    used_bytes: int = 0
    #: Free bytes TARGET's filesystem must have (re-checked right before the copy).
    need_bytes: int = 0

    @property
    def blockers(self) -> list[plan.Finding]:
        """The findings that block the move."""
        return [f for f in self.findings if not f.ok]

    def steps_and_extra(self, current: str, diff: str, unfinished: bool, downtime_s: float | None) -> None:
        """The plan's steps and its JSON ``plan`` object."""
        opts, facts, report, target = self.opts, self.facts, self.report, self.opts.target
        ctl = opts.control
        copy_cmd = " ".join(copy.rsync_command(current, target))
        state_folder = journal.Journal(opts.state_dir).folder
        real_json = facts.daemon.real_path or opts.daemon_json
        steps = [
            ("recover", f"roll back the unfinished move to {target} first (rsync re-uses the partial copy)")
            if unfinished else None,
            ("inventory", "record image IDs, containers (state, restart policy) and volumes"),
            ("warm-copy", f"copy while the engine runs: {copy_cmd}"),
            ("stop", "stop the engine: " + "; ".join(ctl.show(ctl.stop_commands()))
             + ("; running containers are stopped first (live-restore is on)"
                if facts.info and facts.info.live_restore else "")),
            ("final-copy", "copy the last changes with the engine stopped (same rsync, mtimes to the nanosecond, "
                           "--delete), then copy again every file changed since the warm copy began"),
            ("verify-copy", "compare every entry of the old root and the copy (type, size, mtime, mode, owner, "
                            "link count, hard links, xattrs, symlink target) and hash the files changed since "
                            "the warm copy began"),
            ("backup", f"back up {real_json} to {state_folder}/daemon.json.<timestamp>.bak"),
            ("dropin", f"write {ctl.dropin_path()}: RequiresMountsFor={target}") if self.dropin else None,
            ("selinux", "; ".join(" ".join(c) for c in plan.selinux_commands(target)))
            if facts.selinux and facts.selinux_tools else None,
            ("daemon-json", f"write {real_json} atomically (same mode and owner):\n{diff.rstrip()}"),
            ("start", "start the engine: " + "; ".join(ctl.show(ctl.start_commands(self.dropin)))),
            ("verify", f"DockerRootDir = {os.path.realpath(target) if os.path.isabs(target) else target}, "
                       "same driver, d_type, same images/containers/volumes; start the containers that ran before"),
        ]
        for item in steps:
            if item:
                report.steps.append(Step(item[0], Status.OK, ("would " if opts.dry_run else "plan: ") + item[1]))
        self.extra = {
            "plan": {
                "old_root": current,
                "target": target,
                "daemon_json": opts.daemon_json,
                "daemon_json_written": real_json,
                "daemon_json_diff": diff,
                "copy_command": copy_cmd,
                "stop_commands": ctl.show(ctl.stop_commands()),
                "start_commands": ctl.show(ctl.start_commands(self.dropin)),
                "dropin": ctl.dropin_path() if self.dropin else None,
                "size_bytes": self.used_bytes,
                "expected_downtime_s": downtime_s,
                "blockers": [f.id for f in self.blockers],
                "warnings": [f.id for f in self.findings if f.ok and f.warning],
            }
        }
        report.extra.update(self.extra)


def _load(state_dir: str) -> journal.Journal:
    """The journal of the last move (empty ``data`` when there is none)."""
    j = journal.Journal(state_dir)
    if j.exists():
        j.load()
    return j


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
    j = _load(opts.state_dir)
    unfinished = j.unfinished
    same_target = j.reusable_copy(target)
    if info is not None:
        current = info.root_dir
    elif unfinished:
        current = str(j.data["old_root"])
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
        flags=[f for p in processes for f in p.flags],
        config_files=[p.config_file for p in processes if p.config_file],
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
    report = Report(command="docker-root move", mutating=True, dry_run=opts.dry_run)
    diff = plan.config_diff(opts.daemon_json, daemon.data if daemon.exists else None, new)
    result = Plan(opts, facts, [], new, diff, report)
    if absolute and info is not None and not unfinished and \
            os.path.realpath(target) == os.path.realpath(current):
        result.nothing_to_do = True
        report.add(CheckResult("docker_root.move", target, "data-root moved", Status.OK,
                               f"Docker already runs on {current}: nothing to do"))
        return result
    walk_started = time.monotonic()
    usage = host.usage(current) if info is not None and absolute else None
    walk_s = time.monotonic() - walk_started
    result.used_bytes = usage.bytes if usage else 0
    result.need_bytes = plan.space_needed(usage) if usage else 0
    findings = plan.preflight(facts, usage=usage)
    if unfinished and info is None and same_target:
        for f in findings:
            if f.id.endswith(".engine"):
                f.ok, f.summary = True, "engine down after an unfinished move: it is rolled back to the old root first"
    if unfinished and not same_target:
        findings.append(plan.Finding(
            "docker_root.preflight.journal", "unfinished move", False,
            f"an unfinished move to {j.data.get('target')} is in {j.path}",
            "run 'opsbook docker-root rollback' first (or re-run the move with that TARGET)"))
    result.findings = findings
    for f in findings:
        summary = f.summary if f.ok and not f.warning else f"{f.summary} -- {'fix' if not f.ok else 'hint'}: {f.fix}"
        level = Status.CRITICAL if not f.ok else Status.WARNING if f.warning else Status.OK
        report.add(CheckResult(f.id, target, f.name, level, summary,
                               details={"fix": f.fix} if f.fix and (not f.ok or f.warning) else {}))
    result.dropin = absolute and plan.needs_dropin(facts.systemd, current, target)
    downtime_s = round(DOWNTIME_WALKS * walk_s + DOWNTIME_STOP_START_S, 1) if usage else None
    if usage:
        report.add(CheckResult("docker_root.size", target, "size to copy", Status.OK,
                               f"{usage.bytes / plan.GIB:.2f} GiB in {usage.inodes} files and folders; expected "
                               f"downtime about {downtime_s:g} s (final copy and verification, from the "
                               f"{walk_s:.1f} s this plan took to walk the tree, plus the stop and start; "
                               "the warm copy runs with the engine up)",
                               metrics={"bytes": usage.bytes, "inodes": usage.inodes,
                                        "expected_downtime_s": downtime_s or 0.0}))
    result.steps_and_extra(current, diff, unfinished, downtime_s)
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


def apply(p: Plan, progress: MoveProgress | None = None) -> Report:
    """Carry out a planned move. Never deletes the old root.

    Everything the plan decided on is checked again under the lock before anything is
    done (daemon.json unchanged, TARGET still empty and no symlink, free space). Failures
    after the engine was stopped roll back automatically (old daemon.json back, engine on
    the old root, inventory verified) and the report is CRITICAL.
    """
    if p.blockers:
        raise RefusedError("move refused: " + "; ".join(b.summary for b in p.blockers))
    j = journal.Journal(p.opts.state_dir)
    with j.lock():
        return _Move(p, j, progress or MoveProgress()).run()


def recheck(p: Plan, daemon: host.DaemonConfig, resumable: bool) -> None:
    """Refuse (nothing done) when the host changed since the plan was shown."""
    if daemon.error:
        raise RefusedError(daemon.error)
    if daemon.sha256 != p.facts.daemon.sha256:
        raise RefusedError(f"{p.opts.daemon_json} changed since the plan was made: run the move again "
                           "to see the new plan")
    problem = plan.target_state(p.opts.target, resumable)
    if problem:
        raise RefusedError(f"{problem} (it changed since the plan was made): nothing done")
    if p.need_bytes:
        free = host.space(p.opts.target).free_bytes
        if free < p.need_bytes:
            raise RefusedError(f"only {free / plan.GIB:.1f} GiB free for {p.opts.target} now, "
                               f"need {p.need_bytes / plan.GIB:.1f} GiB: nothing done")


class _Move:
    """One move under the lock: its steps in order, the journal kept after each."""

    def __init__(self, p: Plan, j: journal.Journal, progress: MoveProgress) -> None:
        self.p, self.j, self.progress = p, j, progress
        self.ctl = p.opts.control
        self.target = os.path.abspath(p.opts.target)
        self.report = Report(command="docker-root move", mutating=True, dry_run=False, checks=list(p.report.checks))
        self.report.extra.update(p.extra)
        self.times: dict[str, float] = {}
        self.current = ""
        self.old_root = ""
        self.inv: dict[str, Any] = {}
        self.driver = ""
        self.daemon: host.DaemonConfig = p.facts.daemon
        self.copy_started_ns = 0
        self.stop_started = 0.0
        self.old_tree: Future[dict[str, treeverify.Entry]] | None = None

    # ------------------------------------------------------------ running
    def run(self) -> Report:
        """Recover an unfinished move, re-check the plan, then every step; roll back on failure."""
        earlier_copy_ns = self._recover()
        if earlier_copy_ns is None:
            return self.report
        opts = self.p.opts
        self.daemon = host.read_daemon_json(opts.daemon_json)
        recheck(self.p, self.daemon, self.p.facts.resumable)
        try:
            client = engine.connect(opts.docker_host)
        except engine.EngineUnavailable as exc:
            raise RefusedError(f"the engine does not answer ({exc}): nothing changed") from None
        info = engine.engine_info(client)
        self.old_root, self.driver = info.root_dir, info.driver
        ctl = self.ctl
        self.j.start(old_root=self.old_root, target=self.target, daemon_json=opts.daemon_json,
                     docker_host=opts.docker_host, stop_command=ctl.stop_command, start_command=ctl.start_command,
                     daemon_json_existed=self.daemon.exists, daemon_json_mode=self.daemon.mode,
                     daemon_json_owner=list(self.daemon.owner), driver=info.driver, dropin=None,
                     copy_started_ns=earlier_copy_ns or time.time_ns())
        self.copy_started_ns = int(self.j.data["copy_started_ns"])
        steps: list[tuple[str, Any]] = [
            ("inventory", lambda: self._inventory(client)), ("warm-copy", self._warm_copy), ("stop", self._stop),
            ("final-copy", self._final_copy), ("verify-copy", self._verify_copy), ("backup", self._backup),
            ("dropin", self._dropin), ("selinux", self._selinux), ("daemon-json", self._daemon_json),
            ("start", self._start), ("verify", self._verify_engine),
        ]
        try:
            with _interruptible():
                for name, action in steps:
                    self.current = name
                    summary = action()
                    if summary is not None:
                        self.report.steps.append(Step(name, Status.OK, summary[0], summary[1]))
                        self.j.step(name, "done")
            self._succeeded()
        except (Exception, Interrupted) as exc:
            self._failed(exc)
        self.report.extra["times"] = self.times
        return self.report

    def _begin(self, label: str, detail: str = "", **fields: Any) -> None:
        self.j.step(self.current, "started", **fields)
        self.progress.begin(label, detail)

    def _recover(self) -> int | None:
        """Roll back an unfinished earlier move; the start of its copy when TARGET's copy is reused.

        None when the earlier move could not be rolled back (the report says so), else the
        earlier copy's start in ns (0 when there is none to reuse).
        """
        j, opts = self.j, self.p.opts
        if not j.exists():
            return 0
        j.load()
        earlier = int(j.data.get("copy_started_ns") or 0) if j.reusable_copy(self.target) else 0
        if j.unfinished:
            steps, restored = rollback.restore(j, self.ctl, str(j.data.get("daemon_json") or opts.daemon_json),
                                               opts.docker_host)
            self.report.steps += [Step("recover: " + s.name, s.status, s.summary) for s in steps]
            if not restored:
                self.report.add(CheckResult("docker_root.move", self.target, "data-root moved", Status.CRITICAL,
                                            "the unfinished earlier move could not be rolled back: see the steps"))
                return None
        j.archive()
        return earlier

    # ------------------------------------------------------------ steps
    def _inventory(self, client: Any) -> tuple[str, dict[str, Any]]:
        self._begin("inventory")
        try:
            self.inv = inventory.take(client)
        finally:
            client.close()
        self.j.set(inventory=self.inv)
        inv = self.inv
        return (f"{len(inv['images'])} images, {len(inv['containers'])} containers "
                f"({sum(c['running'] for c in inv['containers'].values())} running), "
                f"{len(inv['volumes'])} volumes", {})

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
        self._begin("warm copy", f"{self.p.used_bytes} bytes from {self.old_root} to {self.target}, engine running")
        Path(self.target).mkdir(mode=0o711, exist_ok=True)
        res = copy.rsync(self.old_root, self.target, progress=self._copy_progress(self.p.used_bytes),
                         tolerate=(23, 24))
        self.times["warm_copy_s"] = res.seconds
        return f"{res.files} files, {res.bytes} bytes in {res.seconds:.1f}s (engine running)", {}

    def _stop(self) -> tuple[str, dict[str, Any]]:
        self._begin("stopping the engine", engine_stopped=True)
        self.stop_started = time.monotonic()
        stopped = engine.stop_containers_for_live_restore(self.p.opts.docker_host)
        self.ctl.stop()
        self.times["stop_s"] = round(time.monotonic() - self.stop_started, 3)
        return (f"engine stopped in {self.times['stop_s']:.1f}s"
                + (f" (live-restore: stopped {', '.join(stopped)} first)" if stopped else ""), {})

    def _final_copy(self) -> tuple[str, dict[str, Any]]:
        self._begin("final copy", "engine stopped")
        left = host.mounts_below(self.old_root)
        if left:
            raise StepFailed("a filesystem is mounted inside the old root with the engine stopped ("
                             + ", ".join(f"{m.mount_point} ({m.fstype})" for m in left)
                             + "): its data would not be copied")
        # The old root cannot change any more: walk it while rsync copies (downtime).
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsbook-oldtree")
        self.old_tree = pool.submit(treeverify.scan, self.old_root)
        pool.shutdown(wait=False)
        res = copy.rsync(self.old_root, self.target, progress=self._copy_progress(None))
        changed = treeverify.changed_since(self.old_tree.result(), self.copy_started_ns)
        again = copy.recopy(self.old_root, self.target, changed)
        self.times["final_copy_s"] = round(res.seconds + again.seconds, 3)
        return (f"{res.files} files, {res.bytes} bytes changed since the warm copy; {len(changed)} file(s) "
                f"changed since it began copied again whatever their mtimes ({self.times['final_copy_s']:.1f}s)",
                {"recopied": len(changed)})

    def _verify_copy(self) -> tuple[str, dict[str, Any]]:
        self._begin("verifying the copy")
        started = time.monotonic()
        assert self.old_tree is not None
        old = self.old_tree.result()
        # The copy's walk runs beside the hashing of the changed files (both trees are quiet now).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsbook-newtree") as pool:
            new_tree = pool.submit(treeverify.scan, self.target)
            hashed = treeverify.TreeDiff()
            treeverify.hash_content(self.old_root, self.target,
                                    treeverify.changed_since(old, self.copy_started_ns), hashed)
            diff = treeverify.compare(old, new_tree.result())
        diff.hashed_files, diff.hashed_bytes = hashed.hashed_files, hashed.hashed_bytes
        diff.content_differs = hashed.content_differs
        self.times["verify_copy_s"] = round(time.monotonic() - started, 3)
        if not diff.ok:
            raise StepFailed("the copy differs from the old root: " + "; ".join(diff.problems()))
        return (f"identical: {diff.summary()} ({self.times['verify_copy_s']:.1f}s)",
                {"entries": diff.compared, "kinds": diff.kinds, "hashed_files": diff.hashed_files,
                 "hashed_bytes": diff.hashed_bytes})

    def _backup(self) -> tuple[str, dict[str, Any]]:
        self._begin("backing up daemon.json")
        json_path = self.p.opts.daemon_json
        if not self.daemon.exists:
            return f"{json_path} did not exist (rollback removes it)", {}
        backup = self.j.backup_path()
        atomic_write(backup, self.daemon.raw, mode=0o600)
        self.j.set(backup=str(backup))
        return f"{self.daemon.real_path} saved as {backup}", {"backup": str(backup)}

    def _dropin(self) -> tuple[str, dict[str, Any]] | None:
        if not self.p.dropin:
            return None
        path = self.ctl.dropin_path()
        self._begin("systemd drop-in", dropin=path)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, self.ctl.dropin_text(self.target), mode=0o644)
        return f"{path}: RequiresMountsFor={self.target}", {}

    def _selinux(self) -> tuple[str, dict[str, Any]] | None:
        if not (self.p.facts.selinux and self.p.facts.selinux_tools):
            return None
        self._begin("SELinux labels")
        for cmd in plan.selinux_commands(self.target):
            subprocess.run(cmd, check=True, capture_output=True, timeout=3600)
        return f"{self.target} labelled like /var/lib/docker", {}

    def _daemon_json(self) -> tuple[str, dict[str, Any]]:
        self._begin("writing daemon.json")
        json_path = self.p.opts.daemon_json
        now = host.read_daemon_json(json_path)
        if now.sha256 != self.daemon.sha256:
            raise StepFailed(f"{json_path} was changed by someone else during the move: not overwriting it")
        # Built from the very bytes that were backed up, written where a symlink points.
        new_config = plan.new_config(self.daemon.data or {}, self.target)
        Path(self.daemon.real_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.daemon.real_path, plan.render_config(new_config), mode=self.daemon.mode,
                     owner=self.daemon.owner if self.daemon.exists else None)
        problem = validate.validate(self.daemon.real_path)
        if problem.error:
            raise StepFailed(f"dockerd --validate rejects the new daemon.json: {problem.error}")
        return f"{self.daemon.real_path} now sets data-root {self.target}", {"diff": self.p.diff}

    def _start(self) -> tuple[str, dict[str, Any]]:
        self._begin("starting the engine")
        self.times["start_s"] = round(self.ctl.start(reload=self.p.dropin), 3)
        return f"engine started in {self.times['start_s']:.1f}s", {}

    def _verify_engine(self) -> tuple[str, dict[str, Any]]:
        self._begin("verifying the engine")
        problems, after = _verify(self.p.opts.docker_host, self.target, self.driver, self.inv)
        if problems:
            raise StepFailed("; ".join(problems))
        self.times["downtime_s"] = round(time.monotonic() - self.stop_started, 3)
        self.j.set(status=journal.VERIFIED, verified_at=time.time(), times=self.times)
        return (f"Docker runs on {os.path.realpath(self.target)} with everything present; "
                f"{sum(c['running'] for c in after['containers'].values())} container(s) running", {})

    # ------------------------------------------------------------ outcome
    def _succeeded(self) -> None:
        self.report.changed = True
        self.report.add(CheckResult("docker_root.move", self.target, "data-root moved", Status.OK,
                                    f"moved from {self.old_root} to {self.target}; old data kept at {self.old_root} "
                                    f"(remove it with 'opsbook docker-root cleanup' once satisfied)",
                                    metrics=dict(self.times)))

    def _failed(self, exc: BaseException) -> None:
        message = _describe(exc)
        current, report, j = self.current, self.report, self.j
        report.steps.append(Step(current, Status.CRITICAL, message))
        j.step(current, "failed", error=message)
        if j.data.get("engine_stopped"):
            self.progress.begin("rolling back", message)
            steps, rolled = rollback.restore(j, self.ctl, self.p.opts.daemon_json, self.p.opts.docker_host)
            report.steps += [Step("rollback: " + s.name, s.status, s.summary) for s in steps]
            report.changed = not rolled
            summary = (f"move failed at {current}: {message}; rolled back automatically: Docker runs on "
                       f"{self.old_root} as before, nothing lost" if rolled else
                       f"move failed at {current}: {message}; ROLLBACK INCOMPLETE: see the steps, then run "
                       "'opsbook docker-root rollback'")
        else:
            j.set(status=journal.FAILED)
            summary = (f"move failed at {current}: {message}; the engine was never stopped and daemon.json "
                       f"never changed (a partial copy may remain in {self.target})")
        report.add(CheckResult("docker_root.move", self.target, "data-root moved", Status.CRITICAL, summary,
                               details={"failed_step": current}))


def _verify(docker_host: str | None, target: str, driver: str, inv: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    from .verify import verify_engine

    return verify_engine(docker_host, target, driver, inv)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (StepFailed, ControlError, copy.CopyError, engine.EngineUnavailable, Interrupted,
                        treeverify.TreeError)):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)
    return f"{type(exc).__name__}: {exc}"
