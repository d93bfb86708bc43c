"""Talking to the Docker engine through the docker SDK (imported lazily)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from opsbook.runbooks.errors import InputError

API_TIMEOUT = 30.0


class EngineUnavailable(Exception):
    """The engine does not answer (stopped, wrong socket, no permission)."""


def connect(docker_host: str | None = None, timeout: float = API_TIMEOUT) -> Any:
    """A docker SDK client for *docker_host* (default ``DOCKER_HOST``, else the local socket).

    Raises :class:`EngineUnavailable` when the engine does not answer a ping.
    """
    import docker
    from docker.errors import DockerException

    where = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        if docker_host:
            client = docker.DockerClient(base_url=docker_host, timeout=int(max(timeout, 1)))
        else:
            client = docker.from_env(timeout=int(max(timeout, 1)))
        client.ping()
    except Exception as exc:  # DockerException, requests' connection errors and friends
        reason = _os_reason(exc)
        if reason:
            raise EngineUnavailable(f"cannot connect to {where}: {reason} (is dockerd running?)") from None
        text = str(exc).splitlines()[0][:300] if isinstance(exc, DockerException) else f"{type(exc).__name__}: {exc}"
        raise EngineUnavailable(text[:300]) from None
    return client


def _os_reason(exc: BaseException) -> str:
    """The OS-level reason (``No such file or directory``, ``Connection refused``...) buried in *exc*, or ''.

    docker-py wraps requests, which wraps urllib3, which wraps the socket error; the reason
    is in the exception chain or in an exception's args.
    """
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, OSError) and item.strerror:
            return item.strerror
        todo += [item.__cause__, item.__context__, *item.args]
    return ""


def validate_host(docker_host: str | None) -> str | None:
    """Check the --docker-host URL's scheme (InputError when it is not one docker knows)."""
    if docker_host and not docker_host.startswith(("unix://", "tcp://", "ssh://", "npipe://", "http://", "https://")):
        raise InputError(f"--docker-host {docker_host!r}: expected unix://PATH, tcp://HOST:PORT or ssh://HOST")
    return docker_host


def ping(docker_host: str | None, timeout: float = 3.0) -> bool:
    """Whether the engine answers within *timeout*."""
    try:
        client = connect(docker_host, timeout)
    except EngineUnavailable:
        return False
    client.close()
    return True


@dataclass
class EngineInfo:
    """What ``docker info`` says about the data-root and its surroundings."""

    root_dir: str
    driver: str
    driver_status: dict[str, str]
    containerd_store: bool
    rootless: bool
    swarm_state: str
    swarm_manager: bool
    containers: int
    running: int
    images: int
    server_version: str
    raw_security: list[str] = field(default_factory=list)
    live_restore: bool = False

    @property
    def d_type(self) -> bool | None:
        """``Supports d_type`` from the driver status (None when the driver does not say)."""
        value = self.driver_status.get("Supports d_type")
        return None if value is None else value.lower() == "true"

    @property
    def backing_fs(self) -> str:
        """``Backing Filesystem`` from the driver status."""
        return self.driver_status.get("Backing Filesystem", "")


def engine_info(client: Any) -> EngineInfo:
    """Parse ``client.info()``."""
    info = client.info()
    status = {str(k): str(v) for k, v in (info.get("DriverStatus") or [])}
    security = [str(s) for s in (info.get("SecurityOptions") or [])]
    swarm = info.get("Swarm") or {}
    return EngineInfo(
        root_dir=str(info.get("DockerRootDir") or ""),
        driver=str(info.get("Driver") or ""),
        driver_status=status,
        containerd_store=status.get("driver-type") == "io.containerd.snapshotter.v1",
        rootless=any("name=rootless" in s for s in security),
        swarm_state=str(swarm.get("LocalNodeState") or "inactive"),
        swarm_manager=bool(swarm.get("ControlAvailable")),
        containers=int(info.get("Containers") or 0),
        running=int(info.get("ContainersRunning") or 0),
        images=int(info.get("Images") or 0),
        server_version=str(info.get("ServerVersion") or ""),
        raw_security=security,
        live_restore=bool(info.get("LiveRestoreEnabled")),
    )


def volumes_with_options(client: Any) -> frozenset[str]:
    """Local volumes created with mount options (``--opt type=... device=...``): the engine mounts them."""
    volumes = (client.api.volumes() or {}).get("Volumes") or []
    return frozenset(str(v["Name"]) for v in volumes if v.get("Options"))


def disk_usage(client: Any) -> dict[str, int]:
    """Sizes from ``docker system df``: images, containers, volumes, build cache (bytes)."""
    df = client.df()
    return {
        "images_bytes": int(df.get("LayersSize") or 0),
        "containers_bytes": sum(int(c.get("SizeRw") or 0) for c in df.get("Containers") or []),
        "volumes_bytes": sum(max(int((v.get("UsageData") or {}).get("Size") or 0), 0) for v in df.get("Volumes") or []),
        "build_cache_bytes": sum(int(b.get("Size") or 0) for b in df.get("BuildCache") or []),
    }


def is_running_on(info: EngineInfo, root: str) -> bool:
    """Whether the engine's DockerRootDir is *root* (real paths)."""
    return os.path.realpath(info.root_dir) == os.path.realpath(root)


def stop_containers_for_live_restore(docker_host: str | None, timeout: float = API_TIMEOUT) -> list[str]:
    """With live-restore on, stopping dockerd leaves containers running on the old root.

    Stop the running containers through the API first (each with its own stop timeout)
    and return their names; nothing happens (``[]``) without live-restore or an engine.
    """
    try:
        client = connect(docker_host, timeout)
    except EngineUnavailable:
        return []
    try:
        if not engine_info(client).live_restore:
            return []
        names = []
        for c in client.api.containers():
            client.api.stop(c["Id"])
            names.append(str((c.get("Names") or [c["Id"][:12]])[0]).lstrip("/"))
        return names
    finally:
        client.close()
