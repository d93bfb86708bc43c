"""Remove the old data-root, only after a verified move."""

from __future__ import annotations

import glob
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from opsbook.runbooks.errors import RefusedError
from opsbook.runbooks.model import CheckResult, Report, Status

from . import engine, host, journal

GIB = 1 << 30


def open_files(root: str, proc: str = "/proc", limit: int = 5) -> list[str]:
    """Processes whose working folder, root or open files are under *root* (up to *limit*)."""
    real = os.path.realpath(root).rstrip("/") + "/"
    found: list[str] = []
    me = str(os.getpid())
    for folder in glob.glob(os.path.join(proc, "[0-9]*")):
        pid = os.path.basename(folder)
        if pid == me:
            continue
        links = [os.path.join(folder, "cwd"), os.path.join(folder, "root")]
        links += glob.glob(os.path.join(folder, "fd", "*"))
        for link in links:
            try:
                dest = os.readlink(link)
            except OSError:
                continue
            if (dest.rstrip("/") + "/").startswith(real):
                found.append(f"pid {pid} uses {dest}")
                break
        if len(found) >= limit:
            break
    return found


def references(old_root: str, docker_host: str | None, daemon_json: str, proc: str = "/proc") -> list[str]:
    """What still references *old_root*: daemon.json, dockerd flags, mounts inside it, processes.

    The old root being a mount point itself (its own disk) is not a reference: its contents
    are removed and the mount point stays.
    """
    refs = []
    cfg = host.read_daemon_json(daemon_json)
    if cfg.error:
        refs.append(cfg.error)
    elif cfg.data_root and host.is_under(cfg.data_root, old_root):
        refs.append(f"{daemon_json} sets data-root {cfg.data_root}")
    for process in host.dockerd_processes(docker_host, proc=proc):
        for flag in process.flags:
            value = host.flag_value(flag)
            if not value or host.is_under(value, old_root):
                refs.append(f"dockerd (pid {process.pid}) has {flag}")
    real = os.path.realpath(old_root)
    for m in host.mounts(os.path.join(proc, "self", "mountinfo")):
        if m.mount_point.startswith(real + "/"):
            refs.append(f"{m.mount_point} is mounted")
            break
    refs += open_files(old_root, proc)
    return refs


@dataclass
class CleanupPlan:
    """What cleanup deletes: the old root after a verified move, and partial copies of failed moves."""

    old_root: str | None
    old_root_bytes: int = 0
    partial_copies: list[str] = field(default_factory=list)
    partial_bytes: int = 0

    @property
    def paths(self) -> list[str]:
        """Every path to delete, in order."""
        return ([self.old_root] if self.old_root else []) + self.partial_copies

    def describe(self) -> str:
        """The paths and the space they free, for the prompt."""
        parts = []
        if self.old_root:
            parts.append(f"the old data-root {self.old_root} ({self.old_root_bytes / GIB:.2f} GiB)")
        if self.partial_copies:
            parts.append(
                f"partial copies of failed or rolled-back moves: {', '.join(self.partial_copies)} "
                f"({self.partial_bytes / GIB:.2f} GiB)"
            )
        return "; ".join(parts) + f"; frees {(self.old_root_bytes + self.partial_bytes) / GIB:.2f} GiB"


def _running_root(docker_host: str | None, expected: str) -> str:
    """The data-root the engine runs on now (RefusedError when it does not answer)."""
    try:
        client = engine.connect(docker_host)
    except engine.EngineUnavailable as exc:
        raise RefusedError(f"the engine does not answer ({exc}): cannot confirm it runs on {expected}") from None
    try:
        return engine.engine_info(client).root_dir
    finally:
        client.close()


def partial_copies(record: journal.Journal, running_root: str | None = None) -> list[str]:
    """TARGETs of failed or rolled-back moves that still exist and that the engine never ran on.

    With *running_root*, the ones that overlap it are left out.
    """
    out: list[str] = []
    for data in [*record.history(), record.data]:
        target = str(data.get("target") or "")
        if data.get("status") not in (journal.FAILED, journal.ROLLED_BACK) or data.get("verified_at"):
            continue
        if not os.path.isabs(target) or not os.path.isdir(target) or target in out:
            continue
        if running_root and (host.is_under(target, running_root) or host.is_under(running_root, target)):
            continue
        out.append(target)
    return out


def check(record: journal.Journal, docker_host: str | None, daemon_json: str) -> str:
    """The old root to remove; RefusedError unless the move was verified and nothing uses it."""
    if record.status != journal.VERIFIED:
        raise RefusedError(
            f"the move journal says '{record.status}', not 'verified': cleanup only runs after a verified move"
        )
    old_root = str(record.data["old_root"])
    target = str(record.data["target"])
    if not os.path.isabs(old_root) or os.path.realpath(old_root) == "/":
        raise RefusedError(f"the journal names {old_root!r} as the old root: not removing that")
    root_dir = _running_root(docker_host, target)
    if os.path.realpath(root_dir) != os.path.realpath(target):
        raise RefusedError(f"Docker runs on {root_dir}, not on the new root {target}: not removing {old_root}")
    if host.is_under(root_dir, old_root) or host.is_under(old_root, root_dir):
        raise RefusedError(f"{old_root} overlaps the running data-root {root_dir}")
    refs = references(old_root, docker_host, daemon_json)
    if refs:
        raise RefusedError(f"{old_root} is still referenced: " + "; ".join(refs))
    return old_root


def plan(record: journal.Journal, docker_host: str | None, daemon_json: str) -> CleanupPlan:
    """What cleanup would delete now (RefusedError when there is nothing it may delete)."""
    old_root = check(record, docker_host, daemon_json) if record.status == journal.VERIFIED else None
    if old_root is None and not partial_copies(record):
        check(record, docker_host, daemon_json)  # raises with the reason
    partial = partial_copies(record, _running_root(docker_host, str(record.data.get("old_root"))))
    if old_root is None and not partial:
        raise RefusedError("nothing to clean up: the partial copies of earlier moves overlap the running data-root")
    out = CleanupPlan(old_root, partial_copies=partial)
    if old_root and os.path.isdir(old_root):
        out.old_root_bytes = host.usage(old_root).bytes
    out.partial_bytes = sum(host.usage(path).bytes for path in partial)
    return out


def _remove_tree(path: str) -> str:
    """Delete *path* (its contents only when it is a mount point); '' or rm's error."""
    if os.path.ismount(path):
        victims = [os.path.join(path, name) for name in os.listdir(path) if name != "lost+found"]
    else:
        victims = [path]
    if not victims:
        return ""
    # rm --one-file-system never follows into something mounted below.
    proc = subprocess.run(
        ["rm", "-rf", "--one-file-system", "--", *victims],
        capture_output=True,
        text=True,
        check=False,
        timeout=24 * 3600,
    )
    return proc.stderr.strip()[:300] if proc.returncode != 0 else ""


def remove(record: journal.Journal, what: CleanupPlan, docker_host: str | None, daemon_json: str) -> Report:
    """Delete what *what* names, checking again right before each deletion that the engine does not use it."""
    report = Report(command="docker-root cleanup", mutating=True)
    if what.old_root:
        old_root = what.old_root
        if not os.path.isdir(old_root):
            report.add(
                CheckResult(
                    "docker_root.cleanup", old_root, "old root removed", Status.OK, f"{old_root} is already gone"
                )
            )
            record.set(status=journal.CLEANED)
        else:
            check(record, docker_host, daemon_json)  # the last word, right before deleting
            error = _remove_tree(old_root)
            if error:
                report.add(
                    CheckResult(
                        "docker_root.cleanup", old_root, "old root removed", Status.CRITICAL, f"rm failed: {error}"
                    )
                )
                return report
            record.set(status=journal.CLEANED)
            report.changed = True
            kept = (
                " (its mount point stays: unmount it and remove it from /etc/fstab)"
                if os.path.ismount(old_root)
                else ""
            )
            report.add(
                CheckResult(
                    "docker_root.cleanup",
                    old_root,
                    "old root removed",
                    Status.OK,
                    f"{old_root} removed ({what.old_root_bytes / GIB:.2f} GiB freed){kept}",
                    metrics={"freed_bytes": what.old_root_bytes},
                )
            )
    removed = []
    for path in what.partial_copies:
        running = _running_root(docker_host, "another root")
        if host.is_under(path, running) or host.is_under(running, path):
            report.add(
                CheckResult(
                    "docker_root.cleanup",
                    path,
                    "partial copy removed",
                    Status.CRITICAL,
                    f"the engine now runs on {running}: not removing {path}",
                )
            )
            continue
        error = _remove_tree(path)
        if error:
            report.add(
                CheckResult("docker_root.cleanup", path, "partial copy removed", Status.CRITICAL, f"rm failed: {error}")
            )
            continue
        removed.append(path)
        report.changed = True
        report.add(
            CheckResult("docker_root.cleanup", path, "partial copy removed", Status.OK, f"partial copy {path} removed")
        )
    if removed:
        record.set(removed_partial_copies=[*record.data.get("removed_partial_copies", []), *removed])
    return report


def run_locked(
    record: journal.Journal, docker_host: str | None, daemon_json: str | None, confirm: Callable[[CleanupPlan], None]
) -> Report:
    """The whole cleanup under the state dir's lock, held through the confirmation.

    Load the journal, work out what may be deleted, let *confirm* show it and refuse (by
    raising) or accept, then delete -- checking once more what the engine runs on right
    before. A rollback cannot slip in between the check and the deletion.
    """
    record.require()
    with record.lock():
        record.load()
        host_url, daemon_path = record.engine_defaults(docker_host, daemon_json)
        what = plan(record, host_url, daemon_path)
        confirm(what)
        return remove(record, what, host_url, daemon_path)
