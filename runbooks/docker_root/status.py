"""``docker-root status``: the data-root as the engine and the host see it."""

from __future__ import annotations

import os
from typing import Any

from opsbook.runbooks.model import CheckResult, Metric, Report, Status

from . import cleanup, containerd, engine, host, journal

WARN_FREE_PCT = 15.0
CRIT_FREE_PCT = 5.0
DEFAULT_ROOT = "/var/lib/docker"
GIB = 1 << 30


def build(
    daemon_json: str,
    docker_host: str | None,
    state_dir: str | None = None,
    systemd: bool | None = None,
    unit_dirs: tuple[str, ...] = host.SYSTEMD_UNIT_DIRS,
    *,
    containerd_config: str = containerd.DEFAULT_CONFIG,
) -> Report:
    """The status report (never raises for an engine that is down: UNKNOWN checks instead)."""
    report = Report(command="docker-root status")
    systemd = host.is_systemd_host() if systemd is None else systemd
    cfg = host.read_daemon_json(daemon_json)
    client, info, error = _connect(docker_host)
    root = info.root_dir if info else (cfg.data_root or DEFAULT_ROOT)
    flags = [f for p in host.dockerd_processes(docker_host) for f in p.flags]
    unit_flags = host.systemd_unit_flags(dirs=unit_dirs) if systemd else {}

    report.add(_engine_check(info, docker_host, error))
    all_flags = flags + [f"{f} ({name})" for name, fl in unit_flags.items() for f in fl]
    report.add(_daemon_json_check(daemon_json, cfg, all_flags))
    report.add(_data_root_check(root, info))

    # driver and d_type
    if info:
        report.add(_driver_check(root, info))
    if info or cfg.snapshotter:
        _add_image_store_checks(report, root, info, cfg, docker_host=docker_host, containerd_config=containerd_config)
    if not info:
        report.add(_host_driver_check(root))

    report.add(_space_check(root))
    if info and client is not None:
        report.add(_usage_check(root, info, client))
    if client is not None:
        client.close()

    if state_dir:
        _add_journal_checks(report, state_dir, root if info else None)
    return report


def _connect(docker_host: str | None) -> tuple[Any, engine.EngineInfo | None, str]:
    """The engine client, its info and why it does not answer ('' when it does); client or info may be None."""
    info = None
    client = None
    error = ""
    try:
        client = engine.connect(docker_host)
        info = engine.engine_info(client)
    except engine.EngineUnavailable as exc:
        error = str(exc)
    return client, info, error


def _engine_check(info: engine.EngineInfo | None, docker_host: str | None, error: str) -> CheckResult:
    """Whether the engine answers (UNKNOWN when it does not: the rest is what the host shows)."""
    if info:
        return CheckResult(
            "docker_root.engine",
            docker_host or "local",
            "engine",
            Status.OK,
            f"Docker {info.server_version} answers" + (" (rootless)" if info.rootless else ""),
            details={"rootless": info.rootless, "swarm": info.swarm_state},
        )
    return CheckResult(
        "docker_root.engine",
        docker_host or "local",
        "engine",
        Status.UNKNOWN,
        f"the engine does not answer ({error}); what follows is what the host shows",
    )


def _daemon_json_check(daemon_json: str, cfg: host.DaemonConfig, all_flags: list[str]) -> CheckResult:
    """daemon.json and the data-root flags of dockerd and its unit (both at once: dockerd refuses to start)."""
    details = {"path": daemon_json, "exists": cfg.exists, "data_root": cfg.data_root, "flags": all_flags}
    if cfg.error:
        return CheckResult(
            "docker_root.daemon_json", daemon_json, "daemon.json", Status.CRITICAL, cfg.error, details=details
        )
    if cfg.data_root and all_flags:
        return CheckResult(
            "docker_root.daemon_json",
            daemon_json,
            "daemon.json",
            Status.CRITICAL,
            f"data-root is set in daemon.json ({cfg.data_root}) AND as a flag "
            f"({'; '.join(all_flags)}): dockerd refuses to start like this",
            details=details,
        )
    where = (
        (f"data-root {cfg.data_root}" if cfg.data_root else "no data-root (default)")
        if cfg.exists
        else "absent (defaults apply)"
    )
    if all_flags:
        where += f"; flag: {'; '.join(all_flags)}"
    if cfg.data and "graph" in cfg.data:
        where += "; uses the deprecated 'graph' key"
    return CheckResult("docker_root.daemon_json", daemon_json, "daemon.json", Status.OK, where, details=details)


def _data_root_check(root: str, info: engine.EngineInfo | None) -> CheckResult:
    """The data-root and the filesystem it is on (as the engine reports it, or as daemon.json/defaults say)."""
    mount = host.mount_of(root)
    if info:
        return CheckResult(
            "docker_root.data_root",
            root,
            "data-root",
            Status.OK,
            f"DockerRootDir {info.root_dir} on {mount.fstype} ({mount.source} at {mount.mount_point})",
            details={"root": info.root_dir, "fstype": mount.fstype, "mount_point": mount.mount_point},
        )
    return CheckResult(
        "docker_root.data_root",
        root,
        "data-root",
        Status.UNKNOWN,
        f"engine down: daemon.json/defaults say {root} ({mount.fstype} at {mount.mount_point})",
    )


def _driver_check(root: str, info: engine.EngineInfo) -> CheckResult:
    """The storage driver the engine reports, and d_type (CRITICAL without it under overlay)."""
    dtype = info.d_type
    status = Status.CRITICAL if dtype is False and info.driver.startswith("overlay") else Status.OK
    return CheckResult(
        "docker_root.driver",
        root,
        "storage driver",
        status,
        f"{info.driver}, backing filesystem {info.backing_fs or '?'}, d_type "
        f"{'supported' if dtype else 'NOT supported' if dtype is False else 'not reported'}",
        details={"driver": info.driver, "driver_status": info.driver_status},
    )


def _host_driver_check(root: str) -> CheckResult:
    """Engine down: the driver is unknown, the host's own d_type test of the data-root says what it can."""
    dtype_host = host.supports_d_type(root)
    return CheckResult(
        "docker_root.driver",
        root,
        "storage driver",
        Status.UNKNOWN,
        "engine down: driver unknown; host d_type test: "
        + ({True: "supported", False: "NOT supported", None: "inconclusive"}[dtype_host]),
    )


def _add_image_store_checks(
    report: Report,
    root: str,
    info: engine.EngineInfo | None,
    cfg: host.DaemonConfig,
    *,
    docker_host: str | None,
    containerd_config: str,
) -> None:
    """The image store (classic or containerd's) and, for containerd's, the containerd holding it."""
    containerd_store = bool(info and info.containerd_store) or cfg.snapshotter
    source = "" if info and info.containerd_store else " (features.containerd-snapshotter in daemon.json)"
    store = (
        f"containerd snapshotter{source}: images in containerd's root, not under data-root"
        if containerd_store
        else "classic (images under data-root)"
    )
    if containerd_store:
        store += "; 'opsbook docker-root move' moves containerd's root with the data-root"
    report.add(
        CheckResult(
            "docker_root.image_store",
            root,
            "image store",
            Status.WARNING if containerd_store else Status.OK,
            store,
            details={"containerd_store": containerd_store},
        )
    )
    if containerd_store:
        report.add(_containerd_check(root, cfg.data or {}, docker_host, containerd_config))


def _space_check(root: str) -> CheckResult:
    """Free bytes and inodes of the data-root's filesystem against the WARNING/CRITICAL percentages."""
    try:
        sp = host.space(root)
        free_pct = 100.0 * sp.free_bytes / sp.total_bytes if sp.total_bytes else 100.0
        inode_pct = 100.0 * sp.free_inodes / sp.total_inodes if sp.total_inodes else 100.0
        low = min(free_pct, inode_pct)
        status = Status.CRITICAL if low < CRIT_FREE_PCT else Status.WARNING if low < WARN_FREE_PCT else Status.OK
        return CheckResult(
            "docker_root.space",
            root,
            "free space",
            status,
            f"{sp.free_bytes / GIB:.1f} GiB free ({free_pct:.0f}%), {sp.free_inodes} inodes free ({inode_pct:.0f}%)",
            metrics={
                "free_bytes": Metric(sp.free_bytes, "B", min=0, max=sp.total_bytes),
                "free_pct": Metric(
                    round(free_pct, 2), "%", warn=WARN_FREE_PCT, crit=CRIT_FREE_PCT, min=0, max=100, low=True
                ),
                "free_inodes_pct": Metric(
                    round(inode_pct, 2), "%", warn=WARN_FREE_PCT, crit=CRIT_FREE_PCT, min=0, max=100, low=True
                ),
            },
        )
    except OSError as exc:
        return CheckResult("docker_root.space", root, "free space", Status.UNKNOWN, f"statvfs failed: {exc}")


def _usage_check(root: str, info: engine.EngineInfo, client: Any) -> CheckResult:
    """Counts of images and containers, and the bytes the engine says they use (when it says)."""
    metrics: dict[str, float | int | Metric] = {
        "containers": info.containers,
        "running": info.running,
        "images": info.images,
    }
    try:
        sizes = engine.disk_usage(client)
        metrics.update({k: Metric(v, "B") for k, v in sizes.items()})
        used = f"; images {sizes['images_bytes'] / GIB:.2f} GiB, volumes {sizes['volumes_bytes'] / GIB:.2f} GiB"
    except Exception:
        used = ""
    return CheckResult(
        "docker_root.usage",
        root,
        "usage",
        Status.OK,
        f"{info.images} images, {info.containers} containers ({info.running} running){used}",
        metrics=metrics,
    )


def _add_journal_checks(report: Report, state_dir: str, root: str | None) -> None:
    """The last move's journal and the partial copies of failed or rolled-back moves (*root*: None, engine down)."""
    j = journal.Journal(state_dir)
    if j.exists():
        try:
            j.load()
            st = {journal.IN_PROGRESS: Status.WARNING, journal.FAILED: Status.WARNING}.get(j.status, Status.OK)
            note = {
                journal.VERIFIED: (
                    f"; the old root and containerd's ({(j.data.get('containerd') or {}).get('old_root')}) are kept "
                    "until 'opsbook docker-root cleanup'"
                    if j.data.get("containerd")
                    else "; the old root is kept until 'opsbook docker-root cleanup'"
                ),
                journal.IN_PROGRESS: "; run 'opsbook docker-root rollback' or re-run the move",
                journal.FAILED: "; run 'opsbook docker-root rollback'",
            }.get(j.status, "")
            report.add(
                CheckResult(
                    "docker_root.journal",
                    str(j.path),
                    "last move",
                    st,
                    f"{j.status}: {j.data.get('old_root')} -> {j.data.get('target')}{note}",
                    details={"status": j.status, "old_root": j.data.get("old_root"), "target": j.data.get("target")},
                )
            )
            # containerd's partial copies are listed too, unless containerd runs on them.
            partial = cleanup.partial_copies(j, root, cleanup.containerd_roots(j))
            if partial:
                report.add(
                    CheckResult(
                        "docker_root.partial_copies",
                        state_dir,
                        "partial copies",
                        Status.OK,
                        f"partial copies of failed or rolled-back moves: {', '.join(partial)} "
                        "(a new move to the same TARGET reuses one; 'opsbook docker-root "
                        "cleanup' removes them)",
                        details={"paths": partial},
                    )
                )
        except Exception as exc:
            report.add(CheckResult("docker_root.journal", str(j.path), "last move", Status.UNKNOWN, str(exc)))


def _containerd_check(
    root: str, daemon_data: dict[str, object], docker_host: str | None, config_path: str
) -> CheckResult:
    """Which containerd holds the image store, where its root is, its size and its clients."""
    args = [p.args for p in host.dockerd_processes(docker_host)]
    loc = containerd.locate(root, dict(daemon_data), args, config_path)
    details: dict[str, object] = {
        "kind": loc.kind,
        "root": loc.root,
        "address": loc.address or None,
        "config": loc.config.path if loc.config else None,
        "why": loc.why,
    }
    if loc.config is not None and loc.config.error:
        return CheckResult(
            "docker_root.containerd", loc.root, "containerd", Status.CRITICAL, loc.config.error, details=details
        )
    size = host.usage(loc.root) if os.path.isdir(loc.root) else None
    mount = host.mount_of(loc.root)
    where = (
        f"system containerd ({loc.why}): images, snapshots and containers in {loc.root} "
        f"({mount.fstype} at {mount.mount_point}), set by root in {config_path}"
        if loc.kind == containerd.SYSTEM
        else f"dockerd's embedded containerd: images, snapshots and containers in {loc.root} (under data-root)"
    )
    metrics: dict[str, float | int | Metric] = {}
    if size is not None:
        where += f"; {size.bytes / GIB:.2f} GiB in {size.inodes} files and folders"
        metrics["containerd_bytes"] = Metric(size.bytes, "B")
    status = Status.OK
    if loc.address:
        try:
            names = containerd.namespaces(loc.address)
            details["namespaces"] = names
            others = containerd.other_clients(names)
            where += f"; namespaces {', '.join(names) or 'none'}"
            if others:
                status = Status.WARNING
                where += (
                    f" -- {', '.join(others)} belong to other clients (e.g. Kubernetes): moving containerd's "
                    "root affects them too (the move needs --allow-other-containerd-clients)"
                )
        except containerd.ContainerdError as exc:
            status = Status.UNKNOWN
            where += f"; containerd does not answer: {exc}"
    return CheckResult(
        "docker_root.containerd", loc.root, "containerd", status, where, details=details, metrics=metrics
    )
