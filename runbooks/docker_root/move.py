"""``docker-root move``: plan (always), then apply step by step under a journal."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbooks.errors import RefusedError
from runbooks.fsutil import atomic_write
from runbooks.model import CheckResult, Report, Status, Step

from . import copy, engine, host, inventory, journal, plan, rollback
from .control import ControlError, EngineControl
from .copy import Progress

DEFAULT_ROOT = "/var/lib/docker"


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

    @property
    def blockers(self) -> list[plan.Finding]:
        """The findings that block the move."""
        return [f for f in self.findings if not f.ok]


def _load(state_dir: str) -> journal.Journal:
    """The journal of the last move (empty ``data`` when there is none)."""
    j = journal.Journal(state_dir)
    if j.exists():
        j.load()
    return j


def make_plan(opts: MoveOptions) -> Plan:
    """Gather the facts and build the plan report (changes nothing, writes nothing)."""
    target = opts.target
    daemon = host.read_daemon_json(opts.daemon_json)
    info = None
    error = ""
    try:
        client = engine.connect(opts.docker_host)
        try:
            info = engine.engine_info(client)
        finally:
            client.close()
    except engine.EngineUnavailable as exc:
        error = str(exc)
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
    )
    report = Report(command="docker-root move", mutating=True, dry_run=opts.dry_run)
    new = plan.new_config(daemon.data or {}, target)
    diff = plan.config_diff(opts.daemon_json, daemon.data if daemon.exists else None, new)
    result = Plan(opts, facts, [], new, diff, report)
    if os.path.isabs(target) and info is not None and not unfinished and \
            os.path.realpath(target) == os.path.realpath(current):
        result.nothing_to_do = True
        report.add(CheckResult("docker_root.move", target, "data-root", Status.OK,
                               f"Docker already runs on {current}: nothing to do"))
        return result
    usage = host.usage(current) if info is not None and os.path.isabs(target) else None
    result.used_bytes = usage.bytes if usage else 0
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
        summary = f.summary if f.ok else f"{f.summary} -- fix: {f.fix}"
        report.add(CheckResult(f.id, target, f.name, Status.OK if f.ok else Status.CRITICAL, summary,
                               details={"fix": f.fix} if f.fix and not f.ok else {}))
    result.dropin = os.path.isabs(target) and plan.needs_dropin(facts.systemd, current, target)
    ctl = opts.control
    copy_cmd = " ".join(copy.rsync_command(current, target))
    state_folder = journal.Journal(opts.state_dir).folder
    steps = [
        ("recover", f"roll back the unfinished move to {target} first (rsync re-uses the partial copy)")
        if unfinished else None,
        ("inventory", "record image IDs, containers (state, restart policy) and volumes"),
        ("warm-copy", f"copy while the engine runs: {copy_cmd}"),
        ("stop", "stop the engine: " + "; ".join(ctl.show(ctl.stop_commands()))
         + ("; running containers are stopped first (live-restore is on)" if info and info.live_restore else "")),
        ("final-copy", "copy the last changes with the engine stopped (same rsync, --delete)"),
        ("checksum", "compare a checksum sample of every volume's data, old root vs copy"),
        ("backup", f"back up {opts.daemon_json} to {state_folder}/daemon.json.<timestamp>.bak"),
        ("dropin", f"write {ctl.dropin_path()}: RequiresMountsFor={target}") if result.dropin else None,
        ("selinux", "; ".join(" ".join(c) for c in plan.selinux_commands(target)))
        if facts.selinux and facts.selinux_tools else None,
        ("daemon-json", f"write {opts.daemon_json} atomically (same mode and owner):\n{diff.rstrip()}"),
        ("start", "start the engine: " + "; ".join(ctl.show(ctl.start_commands(result.dropin)))),
        ("verify", f"DockerRootDir = {os.path.realpath(target) if os.path.isabs(target) else target}, same driver, "
                   "d_type, same images/containers/volumes; start the containers that ran before"),
    ]
    for item in steps:
        if item:
            report.steps.append(Step(item[0], Status.OK, ("would " if opts.dry_run else "plan: ") + item[1]))
    result.extra = {
        "plan": {
            "old_root": current,
            "target": target,
            "daemon_json": opts.daemon_json,
            "daemon_json_diff": diff,
            "copy_command": copy_cmd,
            "stop_commands": ctl.show(ctl.stop_commands()),
            "start_commands": ctl.show(ctl.start_commands(result.dropin)),
            "dropin": ctl.dropin_path() if result.dropin else None,
            "blockers": [f.id for f in result.blockers],
        }
    }
    report.extra.update(result.extra)
    if result.blockers:
        report.status_override = Status.CRITICAL
    return result


def _validate_config(path: str) -> str:
    """Run ``dockerd --validate --config-file PATH`` where dockerd supports it; '' when fine."""
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)
    if not dockerd:
        return ""
    try:
        helptext = subprocess.run([dockerd, "--help"], capture_output=True, text=True, timeout=30, check=False)
        if "--validate" not in helptext.stdout:
            return ""
        proc = subprocess.run([dockerd, "--validate", "--config-file", path], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return "" if proc.returncode == 0 else (proc.stderr or proc.stdout).strip()[:400]


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


def apply(p: Plan, progress: Progress | None = None) -> Report:
    """Carry out a planned move. Never deletes the old root.

    Failures after the engine was stopped roll back automatically (old daemon.json back,
    engine on the old root, inventory verified) and the report is CRITICAL.
    """
    if p.blockers:
        raise RefusedError("move refused: " + "; ".join(b.summary for b in p.blockers))
    j = journal.Journal(p.opts.state_dir)
    with j.lock():
        return _apply(p, j, progress)


def _apply(p: Plan, j: journal.Journal, progress: Progress | None) -> Report:
    opts = p.opts
    ctl = opts.control
    report = Report(command="docker-root move", mutating=True, dry_run=False, checks=list(p.report.checks))
    report.extra.update(p.extra)
    target = os.path.abspath(opts.target)
    if j.exists():
        j.load()
        if j.unfinished:
            steps, restored = rollback.restore(j, ctl, str(j.data.get("daemon_json") or opts.daemon_json),
                                               opts.docker_host)
            report.steps += [Step("recover: " + s.name, s.status, s.summary) for s in steps]
            if not restored:
                report.add(CheckResult("docker_root.move", target, "data-root moved", Status.CRITICAL,
                                       "the unfinished earlier move could not be rolled back: see the steps"))
                return report
        j.archive()
    daemon = host.read_daemon_json(opts.daemon_json)
    if daemon.error:  # edited since the plan was shown
        raise RefusedError(daemon.error)
    new_config = plan.new_config(daemon.data or {}, target)
    try:
        client = engine.connect(opts.docker_host)
    except engine.EngineUnavailable as exc:
        raise RefusedError(f"the engine does not answer ({exc}): nothing changed") from None
    info = engine.engine_info(client)
    old_root = info.root_dir
    j.start(old_root=old_root, target=target, daemon_json=opts.daemon_json, docker_host=opts.docker_host,
            stop_command=ctl.stop_command, start_command=ctl.start_command,
            daemon_json_existed=daemon.exists, daemon_json_mode=daemon.mode, daemon_json_owner=list(daemon.owner),
            driver=info.driver, dropin=None)
    times: dict[str, float] = {}
    current = ""
    total = p.used_bytes

    def copy_progress(done: int, estimate: int, files: int) -> None:
        if progress is not None:
            progress(done, estimate or total, files)

    def done(name: str, summary: str, **details: Any) -> None:
        report.steps.append(Step(name, Status.OK, summary, details))
        j.step(name, "done")

    try:
        with _interruptible():
            current = "inventory"
            j.step(current, "started")
            try:
                inv = inventory.take(client)
            finally:
                client.close()
            j.set(inventory=inv)
            done(current, f"{len(inv['images'])} images, {len(inv['containers'])} containers "
                          f"({sum(c['running'] for c in inv['containers'].values())} running), "
                          f"{len(inv['volumes'])} volumes")
            current = "warm-copy"
            j.step(current, "started")
            Path(target).mkdir(mode=0o711, exist_ok=True)
            res = copy.rsync(old_root, target, progress=copy_progress if progress else None, tolerate=(23, 24))
            times["warm_copy_s"] = res.seconds
            done(current, f"{res.files} files, {res.bytes} bytes in {res.seconds:.1f}s (engine running)")
            current = "stop"
            j.step(current, "started", engine_stopped=True)
            stop_started = time.monotonic()
            stopped = engine.stop_containers_for_live_restore(opts.docker_host)
            ctl.stop()
            times["stop_s"] = round(time.monotonic() - stop_started, 3)
            done(current, f"engine stopped in {times['stop_s']:.1f}s"
                 + (f" (live-restore: stopped {', '.join(stopped)} first)" if stopped else ""))
            # The old root cannot change any more: checksum it while the final copy runs (downtime).
            names = sorted(inv["volumes"])
            sums_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsbook-checksum")
            before_future = sums_pool.submit(inventory.volume_checksums, old_root, names)
            sums_pool.shutdown(wait=False)
            current = "final-copy"
            j.step(current, "started")
            res = copy.rsync(old_root, target, progress=copy_progress if progress else None)
            times["final_copy_s"] = res.seconds
            done(current, f"{res.files} files, {res.bytes} bytes changed since the warm copy ({res.seconds:.1f}s)")
            current = "checksum"
            j.step(current, "started")
            after_sums = inventory.volume_checksums(target, names)
            before_sums = before_future.result()
            j.set(checksums=before_sums)
            bad = [n for n in before_sums if after_sums.get(n) != before_sums[n]]
            if bad:
                raise StepFailed(f"volume data differs after the copy: {', '.join(bad)}")
            done(current, f"{len(before_sums)} volume(s) identical on the copy")
            current = "backup"
            j.step(current, "started")
            backup = j.backup_path()
            if daemon.exists:
                atomic_write(backup, Path(opts.daemon_json).read_bytes(), mode=0o600)
                j.set(backup=str(backup))
                done(current, f"{opts.daemon_json} saved as {backup}", backup=str(backup))
            else:
                done(current, f"{opts.daemon_json} did not exist (rollback removes it)")
            if p.dropin:
                current = "dropin"
                j.step(current, "started", dropin=ctl.dropin_path())
                Path(ctl.dropin_path()).parent.mkdir(parents=True, exist_ok=True)
                atomic_write(ctl.dropin_path(), ctl.dropin_text(target), mode=0o644)
                done(current, f"{ctl.dropin_path()}: RequiresMountsFor={target}")
            if p.facts.selinux and p.facts.selinux_tools:
                current = "selinux"
                j.step(current, "started")
                for cmd in plan.selinux_commands(target):
                    subprocess.run(cmd, check=True, capture_output=True, timeout=3600)
                done(current, f"{target} labelled like /var/lib/docker")
            current = "daemon-json"
            j.step(current, "started")
            Path(opts.daemon_json).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(opts.daemon_json, plan.render_config(new_config), mode=daemon.mode,
                         owner=daemon.owner if daemon.exists else None)
            problem = _validate_config(opts.daemon_json)
            if problem:
                raise StepFailed(f"dockerd --validate rejects the new daemon.json: {problem}")
            done(current, f"{opts.daemon_json} now sets data-root {target}", diff=p.diff)
            current = "start"
            j.step(current, "started")
            times["start_s"] = round(ctl.start(reload=p.dropin), 3)
            done(current, f"engine started in {times['start_s']:.1f}s")
            current = "verify"
            j.step(current, "started")
            problems, after = _verify(opts.docker_host, target, info.driver, inv)
            if problems:
                raise StepFailed("; ".join(problems))
            times["downtime_s"] = round(time.monotonic() - stop_started, 3)
            j.set(status=journal.VERIFIED, verified_at=time.time(), times=times)
            done(current, f"Docker runs on {os.path.realpath(target)} with everything present; "
                          f"{sum(c['running'] for c in after['containers'].values())} container(s) running")
        report.changed = True
        report.add(CheckResult("docker_root.move", target, "data-root moved", Status.OK,
                               f"moved from {old_root} to {target}; old data kept at {old_root} "
                               f"(remove it with 'opsbook docker-root cleanup' once satisfied)",
                               metrics=dict(times)))
    except (Exception, Interrupted) as exc:
        message = _describe(exc)
        report.steps.append(Step(current, Status.CRITICAL, message))
        j.step(current, "failed", error=message)
        if j.data.get("engine_stopped"):
            steps, rolled = rollback.restore(j, ctl, opts.daemon_json, opts.docker_host)
            report.steps += [Step("rollback: " + s.name, s.status, s.summary) for s in steps]
            report.changed = not rolled
            summary = (f"move failed at {current}: {message}; rolled back automatically: Docker runs on "
                       f"{old_root} as before, nothing lost" if rolled else
                       f"move failed at {current}: {message}; ROLLBACK INCOMPLETE: see the steps, then run "
                       "'opsbook docker-root rollback'")
        else:
            j.set(status=journal.FAILED)
            summary = (f"move failed at {current}: {message}; the engine was never stopped and daemon.json "
                       f"never changed (a partial copy may remain in {target})")
        report.add(CheckResult("docker_root.move", target, "data-root moved", Status.CRITICAL, summary,
                               details={"failed_step": current}))
    report.extra["times"] = times
    return report


def _verify(docker_host: str | None, target: str, driver: str, inv: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    from .verify import verify_engine

    return verify_engine(docker_host, target, driver, inv)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (StepFailed, ControlError, copy.CopyError, engine.EngineUnavailable, Interrupted)):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)
    return f"{type(exc).__name__}: {exc}"
