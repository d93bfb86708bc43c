"""containerd beside Docker: which one serves the engine, its root, config.toml, namespaces, inventory.

Since Docker Engine 29 fresh installs use the containerd image store: image content,
snapshots and containers live in containerd's root, which ``data-root`` does not move.
With the system containerd that root is ``root`` in /etc/containerd/config.toml
(default /var/lib/containerd); the containerd dockerd embeds keeps it under the
data-root (``<data-root>/containerd/daemon``), so it moves with it.

containerd is asked through ``ctr`` (Debian's containerd package ships it), every call
with a timeout; config.toml is read with tomllib and edited with tomlkit (imported lazily),
which keeps every other key and every comment.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from typing import Any

from .control import EngineControl

DEFAULT_CONFIG = "/etc/containerd/config.toml"
DEFAULT_ROOT = "/var/lib/containerd"
DEFAULT_ADDRESS = "/run/containerd/containerd.sock"
DOCKER_NAMESPACE = "moby"
#: Where dockerd keeps its embedded containerd's root, relative to the data-root.
EMBEDDED_SUBDIR = os.path.join("containerd", "daemon")
CTR_TIMEOUT = 60.0
SYSTEM = "system"
EMBEDDED = "embedded"


class ContainerdError(Exception):
    """containerd does not answer, or ctr failed."""


# ---------------------------------------------------------------- config.toml
@dataclass
class ContainerdConfig:
    """containerd's config.toml as read from disk (``root`` and the gRPC address resolved)."""

    path: str
    exists: bool = False
    real_path: str = ""
    raw: bytes = b""
    sha256: str = ""
    mode: int = 0o644
    owner: tuple[int, int] = (0, 0)
    root: str = DEFAULT_ROOT
    address: str = DEFAULT_ADDRESS
    error: str = ""


def read_config(path: str) -> ContainerdConfig:
    """Read *path* (absent: containerd's defaults apply; unreadable or invalid: ``error`` set)."""
    cfg = ContainerdConfig(path=path, real_path=os.path.realpath(path))
    try:
        st = os.stat(path)
        with open(path, "rb") as handle:
            cfg.raw = handle.read()
    except FileNotFoundError:
        return cfg
    except OSError as exc:
        cfg.error = f"cannot read {path}: {exc.strerror or exc}"
        return cfg
    cfg.exists, cfg.mode, cfg.owner = True, stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
    cfg.sha256 = hashlib.sha256(cfg.raw).hexdigest()
    try:
        data = tomllib.loads(cfg.raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        cfg.error = f"{path} is not valid TOML: {exc}"
        return cfg
    root = data.get("root", DEFAULT_ROOT)
    grpc = data.get("grpc")
    grpc = grpc if isinstance(grpc, dict) else {}
    address = grpc.get("address", DEFAULT_ADDRESS)
    if not isinstance(root, str) or not isinstance(address, str):
        cfg.error = f"{path}: root and grpc.address must be strings"
        return cfg
    cfg.root, cfg.address = root, address
    return cfg


def default_config_text() -> str:
    """What ``containerd config default`` prints (``version = 2`` alone when containerd is missing)."""
    binary = shutil.which("containerd")
    if binary:
        try:
            out = subprocess.run([binary, "config", "default"], capture_output=True, timeout=30, check=True)
            return out.stdout.decode()
        except (OSError, subprocess.SubprocessError):
            pass
    return "version = 2\n"


def config_with_root(cfg: ContainerdConfig, new_root: str) -> str:
    """config.toml with ``root`` set to *new_root*: every other key, comment and blank line kept.

    A file that does not exist is built from ``containerd config default``.
    """
    import tomlkit

    text = cfg.raw.decode("utf-8") if cfg.exists else default_config_text()
    doc = tomlkit.parse(text)
    doc["root"] = new_root
    return tomlkit.dumps(doc)


def config_diff(cfg: ContainerdConfig, new_text: str) -> str:
    """Unified diff of config.toml (absent file: everything added)."""
    import difflib

    before = cfg.raw.decode("utf-8", errors="replace").splitlines(keepends=True) if cfg.exists else []
    after = new_text.splitlines(keepends=True)
    if not cfg.exists:
        return f"{cfg.path} does not exist: created from 'containerd config default' with root set\n"
    return "".join(difflib.unified_diff(before, after, fromfile=f"{cfg.path} (now)", tofile=f"{cfg.path} (after move)"))


# ---------------------------------------------------------------- which containerd
@dataclass
class Located:
    """The containerd serving the engine."""

    kind: str  # SYSTEM or EMBEDDED
    root: str
    address: str
    config: ContainerdConfig | None = None
    #: How the choice was made (for the report).
    why: str = ""


def containerd_flag(args: list[str]) -> str | None:
    """The ``--containerd`` socket a dockerd argument list names, if any."""
    for i, arg in enumerate(args):
        if arg == "--containerd" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--containerd="):
            return arg.split("=", 1)[1]
    return None


def locate(
    data_root: str, daemon_data: dict[str, Any] | None, dockerd_args: list[list[str]], config_path: str
) -> Located:
    """The system containerd when dockerd is pointed at one (``--containerd`` flag or the
    ``containerd`` key of daemon.json, or a config.toml exists), else the embedded one under data-root.
    """
    address = next((a for a in (containerd_flag(args) for args in dockerd_args) if a), None)
    why = "dockerd --containerd" if address else ""
    if not address and daemon_data and isinstance(daemon_data.get("containerd"), str):
        address, why = str(daemon_data["containerd"]), "daemon.json 'containerd'"
    cfg = read_config(config_path)
    if not address and cfg.exists:
        address, why = cfg.address, f"{config_path} exists"
    if address:
        return Located(SYSTEM, cfg.root, address, cfg, why)
    root = os.path.join(data_root, EMBEDDED_SUBDIR)
    return Located(EMBEDDED, root, "", None, "no --containerd for dockerd and no containerd config.toml")


# ---------------------------------------------------------------- ctr
def ctr(address: str, *args: str, namespace: str | None = None, timeout: float = CTR_TIMEOUT) -> str:
    """Run ``ctr -a ADDRESS [-n NS] ARGS`` and return its output (ContainerdError on failure)."""
    binary = shutil.which("ctr")
    if not binary:
        raise ContainerdError("ctr is not installed (it comes with the containerd package)")
    cmd = [binary, "-a", address, "--timeout", "20s"]
    if namespace:
        cmd += ["-n", namespace]
    try:
        out = subprocess.run([*cmd, *args], capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ContainerdError(f"ctr {' '.join(args)}: {exc}") from None
    if out.returncode != 0:
        reason = out.stderr.decode(errors="replace").strip().splitlines()
        raise ContainerdError(f"ctr {' '.join(args)} ({address}): {reason[-1] if reason else out.returncode}")
    return out.stdout.decode(errors="replace")


def ping(address: str, timeout: float = 5.0) -> bool:
    """Whether containerd answers on *address*."""
    try:
        ctr(address, "version", timeout=timeout)
    except ContainerdError:
        return False
    return True


def running_root(address: str) -> str:
    """The root the containerd answering on *address* runs on (its content plugin's ``root`` export).

    ContainerdError when containerd does not answer or does not say.
    """
    kind = ""
    for line in ctr(address, "plugins", "ls", "-d").splitlines():
        words = line.split()
        if words[:1] == ["Type:"] and len(words) > 1:
            kind = words[1]
        elif kind == "io.containerd.content.v1" and len(words) == 2 and words[0] == "root":
            return os.path.dirname(words[1].rstrip("/"))
    raise ContainerdError(f"containerd on {address} does not tell its root (no content plugin export)")


def namespaces(address: str) -> list[str]:
    """containerd's namespaces."""
    return sorted(line.strip() for line in ctr(address, "namespaces", "ls", "-q").splitlines() if line.strip())


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()[1:] if line.strip()]


def take(address: str) -> dict[str, Any]:
    """Content blobs, images, snapshots (key: kind), containers and running tasks per namespace."""
    out: dict[str, Any] = {}
    for ns in namespaces(address):
        images = {r[0]: r[2] for r in _rows(ctr(address, "images", "ls", namespace=ns)) if len(r) >= 3}
        content = sorted(r[0] for r in _rows(ctr(address, "content", "ls", namespace=ns)) if r)
        snaps = {r[0]: r[-1] for r in _rows(ctr(address, "snapshots", "ls", namespace=ns)) if len(r) >= 2}
        containers = sorted(r[0] for r in _rows(ctr(address, "containers", "ls", namespace=ns)) if r)
        running = sorted(
            r[0] for r in _rows(ctr(address, "tasks", "ls", namespace=ns)) if len(r) >= 3 and r[2] == "RUNNING"
        )
        out[ns] = {
            "images": images,
            "content": content,
            "snapshots": snaps,
            "containers": containers,
            "running": running,
        }
    return out


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What the *before* inventory has that *after* lacks (or has differently)."""
    problems = []
    for ns, inv in before.items():
        now = after.get(ns)
        if now is None:
            problems.append(f"containerd namespace {ns} is missing")
            continue
        for kind in ("content", "containers"):
            lost = sorted(set(inv[kind]) - set(now[kind]))
            if lost:
                problems.append(f"containerd {ns}: {len(lost)} {kind} missing ({', '.join(lost[:3])})")
        for kind in ("images", "snapshots"):
            lost = sorted(k for k, v in inv[kind].items() if now[kind].get(k) != v)
            if lost:
                problems.append(f"containerd {ns}: {len(lost)} {kind} missing or changed ({', '.join(lost[:3])})")
    return problems


def other_clients(inv_or_namespaces: dict[str, Any] | list[str]) -> list[str]:
    """The namespaces other than Docker's own ``moby`` (Kubernetes' ``k8s.io``, nerdctl's ``default``...)."""
    return sorted(ns for ns in inv_or_namespaces if ns != DOCKER_NAMESPACE)


def stop_tasks(address: str, inv: dict[str, Any], timeout: float = 20.0) -> list[str]:
    """Stop the running tasks of the namespaces other than moby (dockerd stops its own): ``ns/id`` list.

    A task's shim survives containerd; a task left running would keep using the old root.
    """
    stopped = []
    for ns in other_clients(inv):
        for cid in inv[ns].get("running", []):
            with contextlib.suppress(ContainerdError):
                ctr(address, "tasks", "kill", cid, namespace=ns)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                rows = {r[0]: r[2] for r in _rows(ctr(address, "tasks", "ls", namespace=ns)) if len(r) >= 3}
                if rows.get(cid) != "RUNNING":
                    break
                time.sleep(0.2)
            else:
                ctr(address, "tasks", "kill", "-s", "SIGKILL", cid, namespace=ns)
                time.sleep(0.5)
            ctr(address, "tasks", "delete", "-f", cid, namespace=ns)
            stopped.append(f"{ns}/{cid}")
    return stopped


def start_tasks(address: str, before: dict[str, Any]) -> list[str]:
    """Start again the tasks (other namespaces than moby) that ran before and do not run now; problems."""
    problems = []
    now = take(address)
    for ns in other_clients(before):
        for cid in before[ns].get("running", []):
            if cid in now.get(ns, {}).get("running", []):
                continue
            try:
                if cid in {r[0] for r in _rows(ctr(address, "tasks", "ls", namespace=ns))}:
                    ctr(address, "tasks", "delete", "-f", cid, namespace=ns)
                ctr(address, "tasks", "start", "-d", cid, namespace=ns)
            except ContainerdError as exc:
                problems.append(f"containerd task {ns}/{cid} did not start: {exc}")
    return problems


def processes_using(path: str, proc: str = "/proc") -> list[str]:
    """containerd processes whose command line names *path* (the embedded containerd after a move)."""
    import glob

    real = os.path.realpath(path).rstrip("/") + "/"
    found = []
    for entry in glob.glob(os.path.join(proc, "[0-9]*", "cmdline")):
        try:
            with open(entry, "rb") as handle:
                args = [a.decode(errors="replace") for a in handle.read().split(b"\0") if a]
        except OSError:
            continue
        if (
            args
            and os.path.basename(args[0]).startswith("containerd")
            and any((a.rstrip("/") + "/").startswith(real) for a in args)
        ):
            found.append(f"pid {entry.split('/')[-2]}: {' '.join(args)[:200]}")
    return found


# ---------------------------------------------------------------- control
@dataclass
class ContainerdControl(EngineControl):
    """Stopping and starting the system containerd: containerd.service, or the user's commands.

    The same machinery as the engine's (commands run with a timeout, output kept); it waits
    on containerd's socket instead of the Docker API.
    """

    address: str = DEFAULT_ADDRESS
    unit: str = "containerd.service"
    log: list[str] = field(default_factory=list)

    def stop_commands(self) -> list[list[str]]:
        """The commands that stop containerd."""
        return [["sh", "-c", self.stop_command]] if self.stop_command else [["systemctl", "stop", self.unit]]

    def start_commands(self, reload: bool = False) -> list[list[str]]:
        """The commands that start containerd."""
        if self.start_command:
            return [["sh", "-c", self.start_command]]
        return [*([["systemctl", "daemon-reload"]] if reload else []), ["systemctl", "start", self.unit]]

    def dropin_path(self) -> str:
        """containerd's RequiresMountsFor= drop-in."""
        from .control import DROPIN_NAME

        return os.path.join(self.unit_dir, f"{self.unit}.d", DROPIN_NAME)

    @staticmethod
    def dropin_text(target: str) -> str:
        """Contents of the drop-in making containerd.service wait for its new root's mount."""
        return (
            "# Written by opsbook docker-root move: start containerd only once its root is mounted.\n"
            f"[Unit]\nRequiresMountsFor={target}\n"
        )

    name = "containerd"

    def answers(self) -> bool:
        """Whether containerd answers on its socket."""
        return ping(self.address, timeout=3)

    def where(self) -> str:
        """containerd's socket, for the start message."""
        return f" on {self.address}"
