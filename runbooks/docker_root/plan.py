"""Preflight checks (blockers with reason and fix) and the daemon.json change of a move."""

from __future__ import annotations

import difflib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import containerd as ctd
from . import host
from .engine import EngineInfo
from .validate import Validation

GIB = 1 << 30
SPACE_FACTOR = 1.1


@dataclass
class Finding:
    """One preflight check: ``ok`` False makes it a blocker (with reason and fix)."""

    id: str
    name: str
    ok: bool
    summary: str
    fix: str = ""
    #: Not a blocker, but worth the admin's attention (reported as WARNING).
    warning: bool = False


@dataclass
class ContainerdFacts:
    """The containerd holding the image store, when the move takes its root along."""

    located: ctd.Located
    #: Where the system containerd's root goes ('' for the embedded one: it moves with data-root).
    target: str = ""
    namespaces: list[str] = field(default_factory=list)
    #: Why containerd could not be asked ('' when it answered).
    error: str = ""
    usage: host.Usage | None = None
    control_ok: bool = True
    resumable: bool = False
    new_config: str = ""
    diff: str = ""

    @property
    def moves(self) -> bool:
        """Whether the move copies containerd's root itself (the system containerd)."""
        return self.located.kind == ctd.SYSTEM


@dataclass
class Facts:
    """Everything the plan is made from."""

    target: str
    daemon: host.DaemonConfig
    info: EngineInfo | None
    engine_error: str = ""
    current_root: str = ""
    flags: list[str] = field(default_factory=list)
    #: ``--config-file`` paths of the running dockerd (empty when it reads the default).
    config_files: list[str] = field(default_factory=list)
    unit_flags: dict[str, list[str]] = field(default_factory=dict)
    systemd: bool = False
    control_ok: bool = True
    resumable: bool = False
    allow_containerd_store: bool = False
    #: The containerd image store's containerd (None: classic store, or the user moves it).
    containerd: ContainerdFacts | None = None
    allow_other_clients: bool = False
    selinux: bool = False
    selinux_tools: bool = False
    #: Mounts inside the current root that are not the engine's own (rsync would skip them).
    nested_mounts: list[host.Mount] = field(default_factory=list)
    #: ``dockerd --validate`` of the current daemon.json and of the one the move writes.
    current_validation: Validation | None = None
    new_validation: Validation | None = None


def new_config(data: dict[str, Any], target: str) -> dict[str, Any]:
    """daemon.json with data-root set to *target*, every other key kept in its place.

    A deprecated ``graph`` key is replaced by ``data-root`` (dockerd refuses both).
    """
    out: dict[str, Any] = {}
    placed = False
    for key, value in data.items():
        if key in ("data-root", "graph"):
            if not placed:
                out["data-root"] = target
                placed = True
            continue
        out[key] = value
    if not placed:
        out["data-root"] = target
    return out


def render_config(data: dict[str, Any]) -> str:
    """daemon.json text as opsbook writes it."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def config_diff(path: str, old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """Unified diff of daemon.json (normalised JSON on both sides)."""
    before = render_config(old).splitlines(keepends=True) if old else []
    after = render_config(new).splitlines(keepends=True)
    return "".join(difflib.unified_diff(before, after, fromfile=f"{path} (now)", tofile=f"{path} (after move)"))


def space_needed(usage: host.Usage) -> int:
    """Free bytes TARGET needs: what the current root uses, plus 10 %, plus 1 GiB."""
    return int(usage.bytes * SPACE_FACTOR + GIB)


def target_state(target: str, resumable: bool) -> str:
    """Why TARGET cannot receive the copy now ('' when it can): a symlink, not a folder, not empty."""
    if os.path.islink(target):
        return f"{target} is a symlink"
    if os.path.lexists(target) and not os.path.isdir(target):
        return f"{target} exists and is not a folder"
    if os.path.isdir(target) and not _empty(target) and not resumable:
        return f"{target} exists and is not empty"
    return ""


def _empty(path: str) -> bool:
    """Whether folder *path* is empty (an empty ``lost+found`` of a fresh filesystem counts as empty)."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return False
    if len(entries) == 1 and entries[0].name == "lost+found" and entries[0].is_dir(follow_symlinks=False):
        try:
            return not any(os.scandir(entries[0].path))
        except OSError:
            return False
    return not entries


#: How a preflight check reports a finding: ``add(id, name, ok, summary, fix="", *, warning=False)``.
AddFinding = Callable[..., None]


def preflight(facts: Facts, *, usage: host.Usage | None = None) -> list[Finding]:
    """Every preflight check; the ones with ``ok=False`` block the move."""
    t = facts.target
    out: list[Finding] = []

    def add(id_: str, name: str, ok: bool, summary: str, fix: str = "", *, warning: bool = False) -> None:
        out.append(Finding(f"docker_root.preflight.{id_}", name, ok, summary, fix, warning))

    if not os.path.isabs(t):
        add("target", "target path", False, f"TARGET {t!r} is relative", "give an absolute path, e.g. /srv/docker")
        return out
    _engine_findings(facts, add)
    _daemon_json_findings(facts, add)
    _validation_findings(facts, add)
    _config_file_findings(facts, add)
    _target_location_findings(facts, add)
    _target_empty_findings(facts, add)
    _nested_mount_findings(facts, add)
    mount = host.mount_of(t)
    _filesystem_findings(t, mount, add)
    if usage is not None:
        _space_findings(t, mount, usage, add)
    _flag_findings(facts, add)
    _mount_placement_findings(facts, mount, add)
    _image_store_findings(facts, add, usage)
    _control_findings(facts, add)
    return out


def _engine_findings(facts: Facts, add: AddFinding) -> None:
    """Whether the engine answers (the move inventories and verifies through it)."""
    cur = facts.current_root
    if facts.info is None:
        add(
            "engine",
            "engine reachable",
            False,
            f"the engine does not answer: {facts.engine_error}",
            "start Docker (or point --docker-host at it): the move inventories and verifies through the engine",
        )
    else:
        add("engine", "engine reachable", True, f"Docker {facts.info.server_version} answers, data-root {cur}")


def _daemon_json_findings(facts: Facts, add: AddFinding) -> None:
    """Whether daemon.json can be read exactly (absent is fine: it is created)."""
    if facts.daemon.error:
        add(
            "daemon_json",
            "daemon.json",
            False,
            facts.daemon.error,
            "fix the file by hand (opsbook never rewrites a daemon.json it cannot read exactly)",
        )
    else:
        add(
            "daemon_json",
            "daemon.json",
            True,
            f"{facts.daemon.path} {'readable' if facts.daemon.exists else 'absent (will be created)'}"
            + (
                f"; a symlink to {facts.daemon.real_path}, which is backed up and edited (the link stays)"
                if facts.daemon.is_symlink
                else ""
            ),
        )


def _config_file_findings(facts: Facts, add: AddFinding) -> None:
    """A running dockerd reading another ``--config-file`` than the daemon.json the move edits."""
    other = sorted({c for c in facts.config_files if os.path.realpath(c) != os.path.realpath(facts.daemon.path)})
    if other:
        add(
            "config_file",
            "config file",
            False,
            f"the running dockerd reads --config-file {', '.join(other)}, not {facts.daemon.path}: "
            "editing the latter would not move anything",
            f"re-run with --daemon-json {other[0]}",
        )


def _target_location_findings(facts: Facts, add: AddFinding) -> None:
    """TARGET and the current root must not contain each other; TARGET's parent must exist."""
    t, cur = facts.target, facts.current_root
    if cur:
        if host.is_under(t, cur):
            add(
                "target",
                "target path",
                False,
                f"TARGET {t} is inside the current root {cur}",
                "choose a folder outside the current data-root",
            )
        elif host.is_under(cur, t):
            add(
                "target",
                "target path",
                False,
                f"the current root {cur} is inside TARGET {t}",
                "choose a folder that does not contain the current data-root",
            )
    parent = os.path.dirname(t.rstrip("/")) or "/"
    if not os.path.isdir(parent):
        add(
            "parent",
            "target parent",
            False,
            f"the parent folder {parent} does not exist",
            f"create it (and mount the new disk there): mkdir -p {parent}",
        )


def _target_empty_findings(facts: Facts, add: AddFinding) -> None:
    """TARGET must be new or empty (or the partial copy of an earlier move), never a symlink."""
    t = facts.target
    problem = target_state(t, facts.resumable)
    if problem:
        add(
            "target_empty",
            "target empty",
            False,
            problem,
            "give an empty or new folder, not a symlink (opsbook never copies over existing data)",
        )
    else:
        add(
            "target_empty",
            "target empty",
            True,
            f"{t} is {'empty' if os.path.isdir(t) else 'new'}"
            + (" (partial copy of an earlier move: reused)" if facts.resumable else ""),
        )


def _nested_mount_findings(facts: Facts, add: AddFinding) -> None:
    """Filesystems mounted inside the current root, which the one-filesystem copy would skip."""
    cur = facts.current_root
    if facts.nested_mounts:
        names = "; ".join(f"{m.mount_point} ({m.fstype} from {m.source})" for m in facts.nested_mounts)
        add(
            "nested_mounts",
            "mounts inside the data-root",
            False,
            f"a filesystem is mounted inside {cur}: {names}. The copy stays on one filesystem "
            "(rsync --one-file-system), so its data would not be copied",
            "unmount it and copy its data into the data-root, or mount it at the same place under TARGET "
            "(and in /etc/fstab) before the move",
        )
    elif cur:
        add(
            "nested_mounts",
            "mounts inside the data-root",
            True,
            f"nothing is mounted inside {cur} but the engine's own mounts",
        )


def _filesystem_findings(t: str, mount: host.Mount, add: AddFinding) -> None:
    """TARGET's filesystem: a supported type, with d_type."""
    bad = host.unsupported_fs(mount.fstype)
    if bad:
        add(
            "filesystem",
            "target filesystem",
            False,
            f"{t} is on {bad} ({mount.fstype} at {mount.mount_point}): not supported as a data-root",
            "use a local filesystem (ext4 or xfs with ftype=1)",
        )
    else:
        add("filesystem", "target filesystem", True, f"{mount.fstype} at {mount.mount_point}")
    dtype = host.supports_d_type(t)
    if dtype is False:
        add(
            "d_type",
            "d_type support",
            False,
            f"the filesystem of {t} does not support d_type (xfs with ftype=0?)",
            "use a filesystem with d_type: xfs formatted with -n ftype=1, or ext4",
        )
    else:
        add("d_type", "d_type support", True, "d_type supported" if dtype else "d_type could not be tested")


def _space_findings(t: str, mount: host.Mount, usage: host.Usage, add: AddFinding) -> None:
    """Free bytes and inodes on TARGET's filesystem for a copy of what the current root uses."""
    sp = host.space(t)
    need = space_needed(usage)
    if sp.free_bytes < need:
        add(
            "space",
            "free space",
            False,
            f"{sp.free_bytes / GIB:.1f} GiB free on {mount.mount_point}, need {need / GIB:.1f} GiB "
            f"(used {usage.bytes / GIB:.1f} GiB x 1.1 + 1 GiB)",
            "free space or choose a bigger filesystem",
        )
    else:
        add("space", "free space", True, f"{sp.free_bytes / GIB:.1f} GiB free, need {need / GIB:.1f} GiB")
    need_inodes = int(usage.inodes * SPACE_FACTOR)
    if sp.total_inodes and sp.free_inodes < need_inodes:
        add(
            "inodes",
            "free inodes",
            False,
            f"{sp.free_inodes} inodes free, need {need_inodes}",
            "choose a filesystem with more inodes",
        )
    else:
        add("inodes", "free inodes", True, f"{sp.free_inodes} inodes free, need {need_inodes}")


def _flag_findings(facts: Facts, add: AddFinding) -> None:
    """A data-root flag on dockerd or in its unit (dockerd refuses it with data-root in daemon.json)."""
    flags = facts.flags + [f"{f} ({name})" for name, fl in facts.unit_flags.items() for f in fl]
    if flags:
        add(
            "flags",
            "data-root flag",
            False,
            "data-root is also given as a dockerd flag: "
            + "; ".join(flags)
            + '. With data-root in daemon.json too, dockerd refuses to start ("the following directives are '
            'specified both as a flag and in the configuration file")',
            "remove -g/--graph/--data-root from the unit (systemctl edit docker.service) and daemon-reload first",
        )
    else:
        add("flags", "data-root flag", True, "no -g/--graph/--data-root flag on dockerd or in the unit")


def _same_device(current: str, target: str) -> bool:
    """Whether TARGET (or its closest existing folder) is on the current root's filesystem.

    By device number, not by mount point: dockerd bind-mounts its data-root onto itself, so
    the root is a mount point of its own on the very filesystem TARGET may be on.
    """
    try:
        return os.stat(current).st_dev == os.stat(host.nearest_existing(target)).st_dev
    except OSError:
        return False


def _mount_placement_findings(facts: Facts, mount: host.Mount, add: AddFinding) -> None:
    """Warnings on where TARGET is mounted: the current root's filesystem, or one mounted at boot."""
    t, cur = facts.target, facts.current_root
    if cur and os.path.isabs(t) and _same_device(cur, t) and not host.is_under(t, cur):
        add(
            "same_filesystem",
            "target filesystem",
            True,
            f"TARGET {t} is on the same filesystem as {cur} ({mount.mount_point}): the move frees no space there",
            f"to change only the path, stop the engine, 'mv {cur} {t}' (instant on one filesystem), set data-root, "
            "start it; to free space, choose a folder on another disk",
            warning=True,
        )
    elif not facts.systemd and cur and mount.mount_point != "/":
        add(
            "mount_order",
            "mount ordering",
            True,
            f"TARGET is on {mount.mount_point}: make sure the engine starts only after that filesystem is "
            "mounted at boot (an init script dependency, or 'x-systemd.before=' in fstab); started earlier, "
            "Docker would create an empty data-root on the disk below it",
        )


def _image_store_findings(facts: Facts, add: AddFinding, usage: host.Usage | None) -> None:
    """Swarm role and image store (classic, or containerd's, whose root data-root does not move)."""
    store = bool(facts.info and facts.info.containerd_store) or facts.daemon.snapshotter
    if facts.info is not None or facts.daemon.snapshotter:
        if facts.info is not None and facts.info.swarm_manager:
            add(
                "swarm",
                "swarm",
                False,
                "this node is a swarm manager: restarting it on a copied Raft store is unsafe",
                "demote it (docker node demote) or move it with the swarm's own procedure",
            )
        elif facts.info is not None:
            add("swarm", "swarm", True, f"swarm {facts.info.swarm_state}")
        source = (
            "the engine reports the containerd snapshotter"
            if facts.info and facts.info.containerd_store
            else "daemon.json sets features.containerd-snapshotter"
        )
        if store and facts.containerd is not None and not facts.allow_containerd_store:
            _containerd_findings(facts, facts.containerd, source, add, usage)
        elif store and not facts.allow_containerd_store:
            add(
                "image_store",
                "image store",
                False,
                f"the containerd image store is in use ({source}): images live in containerd's root "
                "(/var/lib/containerd), which data-root does not move",
                "move containerd's root yourself (root in /etc/containerd/config.toml), then re-run with "
                "--containerd-root-moved",
            )
        else:
            add(
                "image_store",
                "image store",
                True,
                "containerd snapshotter (containerd's root handled by you)"
                if store
                else "classic image store (everything is under data-root)",
            )


def _control_findings(facts: Facts, add: AddFinding) -> None:
    """How the engine is stopped and started, and the tools SELinux labelling needs."""
    t = facts.target
    if not facts.control_ok:
        add(
            "control",
            "engine control",
            False,
            "systemd is not running this host and --stop-command/--start-command were not both given",
            "give both, e.g. --stop-command 'service docker stop' --start-command 'service docker start'",
        )
    if facts.selinux and not facts.selinux_tools:
        add(
            "selinux",
            "SELinux labels",
            False,
            "SELinux is enforcing and semanage/restorecon are missing",
            f"install policycoreutils-python-utils, or label by hand: semanage fcontext -a -e /var/lib/docker {t}; "
            f"restorecon -R {t}",
        )


def _containerd_findings(facts: Facts, c: ContainerdFacts, source: str, add: Any, usage: host.Usage | None) -> None:
    """The containerd image store: which containerd, its clients, where its root goes."""
    loc = c.located
    if not c.moves:
        add(
            "image_store",
            "image store",
            True,
            f"containerd image store ({source}) with dockerd's embedded containerd: its root {loc.root} is "
            "under data-root and moves with it",
        )
        return
    cfg = loc.config
    if cfg is not None and cfg.error:
        add(
            "image_store",
            "image store",
            False,
            cfg.error,
            "fix containerd's config.toml by hand (opsbook never rewrites a file it cannot parse)",
        )
        return
    if c.error and c.resumable:
        add(
            "image_store",
            "image store",
            True,
            f"containerd does not answer ({c.error}) after an unfinished move: it is rolled back to {loc.root} first",
        )
    elif c.error:
        add(
            "image_store",
            "image store",
            False,
            f"the containerd image store is in use ({source}) but containerd does not answer on {loc.address}: "
            f"{c.error}",
            "start containerd (or give --containerd-config naming the config.toml it runs with)",
        )
        return
    else:
        add(
            "image_store",
            "image store",
            True,
            f"containerd image store ({source}): images, snapshots and containers live in the system containerd's "
            f"root {loc.root} ({cfg.path if cfg else '?'}{'' if cfg and cfg.exists else ', absent'}; {loc.why}); "
            f"it moves to {c.target} with the data-root",
        )
    others = ctd.other_clients(c.namespaces)
    if others and not facts.allow_other_clients:
        add(
            "containerd_clients",
            "other containerd clients",
            False,
            f"containerd also serves namespace(s) {', '.join(others)} (not Docker's 'moby'): moving its root "
            "stops their running containers and moves their images too",
            "stop those clients (e.g. the kubelet) yourself, or accept it with --allow-other-containerd-clients",
        )
    elif others:
        add(
            "containerd_clients",
            "other containerd clients",
            True,
            f"containerd also serves namespace(s) {', '.join(others)}: their running tasks are stopped and "
            "started again on the new root (accepted with --allow-other-containerd-clients)",
            "tell their owners: their containers are down during the move",
            warning=True,
        )
    else:
        add("containerd_clients", "other containerd clients", True, "containerd serves Docker alone (namespace moby)")
    t = c.target
    problem = target_state(t, c.resumable)
    overlaps = [
        r for r in (facts.current_root, facts.target, loc.root) if r and (host.is_under(t, r) or host.is_under(r, t))
    ]
    if not os.path.isabs(t):
        add(
            "containerd_target",
            "containerd target",
            False,
            f"containerd target {t!r} is relative",
            "give an absolute --containerd-target",
        )
    elif overlaps:
        add(
            "containerd_target",
            "containerd target",
            False,
            f"containerd's new root {t} overlaps {', '.join(overlaps)}",
            "give a separate folder with --containerd-target",
        )
    elif problem:
        add(
            "containerd_target",
            "containerd target",
            False,
            problem,
            "give an empty or new folder with --containerd-target",
        )
    elif not os.path.isdir(os.path.dirname(t.rstrip("/")) or "/"):
        add(
            "containerd_target",
            "containerd target",
            False,
            f"the parent folder of {t} does not exist",
            f"create it: mkdir -p {os.path.dirname(t)}",
        )
    else:
        add(
            "containerd_target",
            "containerd target",
            True,
            f"containerd's root goes to {t}" + (" (partial copy of an earlier move: reused)" if c.resumable else ""),
        )
    if c.usage is not None and os.path.isabs(t):
        need = space_needed(c.usage)
        if usage is not None and host.mount_of(t).mount_point == host.mount_of(facts.target).mount_point:
            need += space_needed(usage)
        free = host.space(t).free_bytes
        both = ", with the data-root on the same filesystem" if need > space_needed(c.usage) else ""
        add(
            "containerd_space",
            "free space for containerd",
            free >= need,
            f"{free / GIB:.1f} GiB free for {t}, need {need / GIB:.1f} GiB (containerd's root "
            f"{c.usage.bytes / GIB:.2f} GiB{both})",
            "" if free >= need else "free space or choose a bigger filesystem (--containerd-target)",
        )
    if not c.control_ok:
        add(
            "containerd_control",
            "containerd control",
            False,
            "systemd is not running this host and --containerd-stop-command/--containerd-start-command were "
            "not both given",
            "give both, e.g. --containerd-stop-command 'service containerd stop' "
            "--containerd-start-command 'service containerd start'",
        )


def _validation_findings(facts: Facts, add: Any) -> None:
    """What ``dockerd --validate`` said of the current and the new daemon.json."""
    current, new = facts.current_validation, facts.new_validation
    if current is None or new is None:
        return
    if not current.available:
        add(
            "validate",
            "daemon.json validated",
            True,
            f"not validated: {current.dockerd or 'dockerd'} has no --validate (Docker 23.0+); the new "
            "daemon.json is checked only by starting the engine (a refusal rolls back)",
            warning=False,
        )
        return
    if current.error:
        add(
            "validate",
            "daemon.json validated",
            False,
            f"dockerd already refuses the current {facts.daemon.path}: {current.error}",
            "fix the current daemon.json first: the engine could not start again on it, not even to roll back",
        )
    elif new.error:
        add(
            "validate",
            "daemon.json validated",
            False,
            f"dockerd refuses the new daemon.json: {new.error}",
            "fix the current daemon.json so that it stays valid with data-root set",
        )
    else:
        add("validate", "daemon.json validated", True, "dockerd --validate accepts the current and the new daemon.json")


def selinux_commands(target: str) -> list[list[str]]:
    """The commands that give TARGET the labels of /var/lib/docker."""
    return [["semanage", "fcontext", "-a", "-e", "/var/lib/docker", target], ["restorecon", "-R", target]]


def selinux_tools() -> bool:
    """Whether semanage and restorecon are installed."""
    return bool(shutil.which("semanage") and shutil.which("restorecon"))


def needs_dropin(systemd: bool, current_root: str, target: str) -> bool:
    """A RequiresMountsFor= drop-in is needed on systemd when TARGET is on another mount."""
    if not systemd:
        return False
    return host.mount_of(target).mount_point not in ("/", host.mount_of(current_root).mount_point)
