"""Remove the old data-root, only after a verified move."""

from __future__ import annotations

import glob
import os
import subprocess

from runbooks.errors import RefusedError
from runbooks.model import CheckResult, Report, Status

from . import engine, host, journal


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
    """What still references *old_root*: daemon.json, dockerd flags, mounts, processes."""
    refs = []
    cfg = host.read_daemon_json(daemon_json)
    if cfg.error:
        refs.append(cfg.error)
    elif cfg.data_root and host.is_under(cfg.data_root, old_root):
        refs.append(f"{daemon_json} sets data-root {cfg.data_root}")
    for p in host.dockerd_processes(docker_host, proc=proc):
        for flag in p.flags:
            value = host.flag_value(flag)
            if not value or host.is_under(value, old_root):
                refs.append(f"dockerd (pid {p.pid}) has {flag}")
    real = os.path.realpath(old_root)
    try:
        with open(os.path.join(proc, "self", "mountinfo")) as handle:
            for line in handle:
                point = line.split()[4]
                if point == real or point.startswith(real + "/"):
                    refs.append(f"{point} is mounted")
                    break
    except OSError:
        pass
    refs += open_files(old_root, proc)
    return refs


def check(j: journal.Journal, docker_host: str | None, daemon_json: str) -> str:
    """The old root to remove; RefusedError unless the move was verified and nothing uses it."""
    if j.status != journal.VERIFIED:
        raise RefusedError(
            f"the move journal says '{j.status}', not 'verified': cleanup only runs after a verified move"
        )
    old_root = str(j.data["old_root"])
    target = str(j.data["target"])
    if not os.path.isabs(old_root) or os.path.realpath(old_root) == "/":
        raise RefusedError(f"the journal names {old_root!r} as the old root: not removing that")
    try:
        client = engine.connect(docker_host)
    except engine.EngineUnavailable as exc:
        raise RefusedError(f"the engine does not answer ({exc}): cannot confirm it runs on {target}") from None
    try:
        info = engine.engine_info(client)
    finally:
        client.close()
    if not engine.is_running_on(info, target):
        raise RefusedError(f"Docker runs on {info.root_dir}, not on the new root {target}: not removing {old_root}")
    if host.is_under(info.root_dir, old_root) or host.is_under(old_root, info.root_dir):
        raise RefusedError(f"{old_root} overlaps the running data-root {info.root_dir}")
    refs = references(old_root, docker_host, daemon_json)
    if refs:
        raise RefusedError(f"{old_root} is still referenced: " + "; ".join(refs))
    return old_root


def remove(j: journal.Journal, old_root: str) -> Report:
    """Delete *old_root* (after :func:`check`) and record it in the journal."""
    report = Report(command="docker-root cleanup", mutating=True)
    if not os.path.isdir(old_root):
        report.add(CheckResult("docker_root.cleanup", old_root, "old root removed", Status.OK,
                               f"{old_root} is already gone"))
        j.set(status=journal.CLEANED)
        return report
    usage = host.usage(old_root)
    # rm --one-file-system never follows into something mounted below the old root.
    proc = subprocess.run(["rm", "-rf", "--one-file-system", "--", old_root], capture_output=True, text=True,
                          check=False, timeout=24 * 3600)
    if proc.returncode != 0:
        report.add(CheckResult("docker_root.cleanup", old_root, "old root removed", Status.CRITICAL,
                               f"rm failed: {proc.stderr.strip()[:300]}"))
        return report
    j.set(status=journal.CLEANED)
    report.changed = True
    report.add(CheckResult("docker_root.cleanup", old_root, "old root removed", Status.OK,
                           f"{old_root} removed ({usage.bytes / (1 << 30):.2f} GiB, {usage.inodes} inodes freed)",
                           metrics={"freed_bytes": usage.bytes}))
    return report
