"""Remove the old data-root, only after a verified move."""

from __future__ import annotations

import contextlib
import glob
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsbook.runbooks.errors import RefusedError
from opsbook.runbooks.model import CheckResult, Report, Status

from . import containerd as containerd_store
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
    return refs + in_use(old_root, proc)


def in_use(old_root: str, proc: str = "/proc") -> list[str]:
    """Filesystems mounted inside *old_root* and processes using it."""
    refs = []
    real = os.path.realpath(old_root)
    for m in host.mounts(os.path.join(proc, "self", "mountinfo")):
        if m.mount_point.startswith(real + "/"):
            refs.append(f"{m.mount_point} is mounted")
            break
    return refs + open_files(old_root, proc)


def containerd_references(old_root: str, config: str, proc: str = "/proc") -> list[str]:
    """What still references containerd's *old_root*: config.toml, containerd processes naming it, mounts, processes."""
    refs = []
    cfg = containerd_store.read_config(config)
    if cfg.error:
        refs.append(cfg.error)
    elif host.is_under(cfg.root, old_root):
        refs.append(f"{config} sets root {cfg.root}")
    refs += [f"a containerd process names it: {u}" for u in containerd_store.processes_using(old_root, proc)]
    return refs + in_use(old_root, proc)


@dataclass
class CleanupPlan:
    """What cleanup deletes: the old root after a verified move, and partial copies of failed moves."""

    old_root: str | None
    old_root_bytes: int = 0
    partial_copies: list[str] = field(default_factory=list)
    partial_bytes: int = 0
    #: containerd's old root, when the verified move took it along.
    containerd_old_root: str | None = None
    containerd_old_root_bytes: int = 0

    @property
    def paths(self) -> list[str]:
        """Every path to delete, in order."""
        roots = [p for p in (self.old_root, self.containerd_old_root) if p]
        return roots + self.partial_copies

    @property
    def freed_bytes(self) -> int:
        """The space the deletions free."""
        return self.old_root_bytes + self.containerd_old_root_bytes + self.partial_bytes

    def describe(self) -> str:
        """The paths and the space they free, for the prompt."""
        parts = []
        if self.old_root:
            parts.append(f"the old data-root {self.old_root} ({self.old_root_bytes / GIB:.2f} GiB)")
        if self.containerd_old_root:
            parts.append(
                f"containerd's old root {self.containerd_old_root} ({self.containerd_old_root_bytes / GIB:.2f} GiB)"
            )
        if self.partial_copies:
            parts.append(
                f"partial copies of failed or rolled-back moves: {', '.join(self.partial_copies)} "
                f"({self.partial_bytes / GIB:.2f} GiB)"
            )
        return "; ".join(parts) + f"; frees {self.freed_bytes / GIB:.2f} GiB"


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


def _overlaps(path: str, roots: list[str]) -> bool:
    return any(host.is_under(path, root) or host.is_under(root, path) for root in roots)


def _moves(record: journal.Journal) -> list[dict[str, Any]]:
    return [*record.history(), record.data]


def partial_copies(
    record: journal.Journal, running_root: str | None = None, in_use_roots: list[str] | None = None
) -> list[str]:
    """TARGETs (data-root and containerd's) of failed or rolled-back moves that still exist and were never run on.

    The ones that overlap *running_root* (the engine's) or one of *in_use_roots* (containerd's) are left out.
    """
    busy = [r for r in [running_root, *(in_use_roots or [])] if r]
    out: list[str] = []
    for data in _moves(record):
        if data.get("status") not in (journal.FAILED, journal.ROLLED_BACK) or data.get("verified_at"):
            continue
        containerd_move = data.get("containerd") or {}
        for target in (str(data.get("target") or ""), str(containerd_move.get("target") or "")):
            if not os.path.isabs(target) or not os.path.isdir(target) or target in out:
                continue
            if _overlaps(target, busy):
                continue
            out.append(target)
    return out


def containerd_roots(record: journal.Journal) -> list[str]:
    """The roots the containerds the journals name use now: what each answers, and what its config.toml says."""
    roots: list[str] = []
    seen: set[tuple[str, str]] = set()
    for data in _moves(record):
        containerd_move = data.get("containerd") or {}
        key = (str(containerd_move.get("address") or ""), str(containerd_move.get("config") or ""))
        if not containerd_move or key in seen:
            continue
        seen.add(key)
        if key[0]:
            with contextlib.suppress(containerd_store.ContainerdError):
                roots.append(containerd_store.running_root(key[0]))
        if key[1]:
            cfg = containerd_store.read_config(key[1])
            if not cfg.error:
                roots.append(cfg.root)
    return roots


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


def containerd_check(record: journal.Journal) -> str | None:
    """containerd's old root to remove (None when the move left containerd alone).

    RefusedError unless containerd answers on its socket from the new root and nothing
    (config.toml, a containerd process, a mount, an open file) still uses the old one.
    """
    containerd_move = record.data.get("containerd")
    if not containerd_move:
        return None
    old_root, target = str(containerd_move.get("old_root") or ""), str(containerd_move.get("target") or "")
    address = str(containerd_move.get("address") or "")
    if not os.path.isabs(old_root) or os.path.realpath(old_root) == "/":
        raise RefusedError(f"the journal names {old_root!r} as containerd's old root: not removing that")
    try:
        running = containerd_store.running_root(address)
    except containerd_store.ContainerdError as exc:
        raise RefusedError(
            f"containerd does not answer ({exc}): cannot confirm it runs on {target}; nothing deleted"
        ) from None
    if os.path.realpath(running) != os.path.realpath(target):
        raise RefusedError(f"containerd runs on {running}, not on its new root {target}: not removing {old_root}")
    if host.is_under(running, old_root) or host.is_under(old_root, running):
        raise RefusedError(f"{old_root} overlaps the root containerd runs on ({running})")
    refs = containerd_references(old_root, str(containerd_move.get("config") or containerd_store.DEFAULT_CONFIG))
    if refs:
        raise RefusedError(f"containerd's old root {old_root} is still referenced: " + "; ".join(refs))
    return old_root


def plan(record: journal.Journal, docker_host: str | None, daemon_json: str) -> CleanupPlan:
    """What cleanup would delete now (RefusedError when there is nothing it may delete)."""
    verified = record.status == journal.VERIFIED
    old_root = check(record, docker_host, daemon_json) if verified else None
    containerd_old_root = containerd_check(record) if verified else None
    if old_root is None and not partial_copies(record):
        check(record, docker_host, daemon_json)  # raises with the reason
    partial = partial_copies(
        record, _running_root(docker_host, str(record.data.get("old_root"))), containerd_roots(record)
    )
    if old_root is None and not partial:
        raise RefusedError(
            "nothing to clean up: the partial copies of earlier moves overlap the roots Docker and containerd run on"
        )
    out = CleanupPlan(old_root, partial_copies=partial, containerd_old_root=containerd_old_root)
    if old_root and os.path.isdir(old_root):
        out.old_root_bytes = host.usage(old_root).bytes
    if containerd_old_root and os.path.isdir(containerd_old_root):
        out.containerd_old_root_bytes = host.usage(containerd_old_root).bytes
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


def _remove_old_root(report: Report, path: str, freed: int, name: str, recheck: Callable[[], object]) -> bool:
    """Delete one old root, *recheck* (raising to refuse) right before; whether it is gone now."""
    if not os.path.isdir(path):
        report.add(CheckResult("docker_root.cleanup", path, name, Status.OK, f"{path} is already gone"))
        return True
    recheck()  # the last word, right before deleting
    error = _remove_tree(path)
    if error:
        report.add(CheckResult("docker_root.cleanup", path, name, Status.CRITICAL, f"rm failed: {error}"))
        return False
    report.changed = True
    kept = " (its mount point stays: unmount it and remove it from /etc/fstab)" if os.path.ismount(path) else ""
    report.add(
        CheckResult(
            "docker_root.cleanup",
            path,
            name,
            Status.OK,
            f"{path} removed ({freed / GIB:.2f} GiB freed){kept}",
            metrics={"freed_bytes": freed},
        )
    )
    return True


def remove(record: journal.Journal, what: CleanupPlan, docker_host: str | None, daemon_json: str) -> Report:
    """Delete what *what* names, checking again right before each deletion that nothing uses it.

    Both old roots (the data-root and containerd's) are checked before either is deleted,
    and each once more right before its deletion; the journal says 'cleaned' once both are gone.
    """
    report = Report(command="docker-root cleanup", mutating=True)
    roots: list[tuple[str, int, str, Callable[[], object]]] = []
    if what.old_root:
        roots.append(
            (what.old_root, what.old_root_bytes, "old root removed", lambda: check(record, docker_host, daemon_json))
        )
    if what.containerd_old_root:
        roots.append(
            (
                what.containerd_old_root,
                what.containerd_old_root_bytes,
                "containerd's old root removed",
                lambda: containerd_check(record),
            )
        )
    for path, _freed, _name, recheck in roots:
        if os.path.isdir(path):
            recheck()  # a refusal here deletes nothing at all
    for path, freed, name, recheck in roots:
        if not _remove_old_root(report, path, freed, name, recheck):
            return report
    if roots:
        record.set(status=journal.CLEANED)
    _remove_partial_copies(record, what, docker_host, report)
    return report


def _remove_partial_copies(record: journal.Journal, what: CleanupPlan, docker_host: str | None, report: Report) -> None:
    """Delete the partial copies, each after checking that neither the engine nor containerd runs on it now."""
    removed = []
    for path in what.partial_copies:
        running = [_running_root(docker_host, "another root"), *containerd_roots(record)]
        if _overlaps(path, running):
            report.add(
                CheckResult(
                    "docker_root.cleanup",
                    path,
                    "partial copy removed",
                    Status.CRITICAL,
                    f"the engine or containerd now runs on {', '.join(running)}: not removing {path}",
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
