"""What must survive a move: images, containers (state, restart policy), volumes, volume data."""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Any

SAMPLE_FILES = 256
SAMPLE_BYTES = 1 << 20


def take(client: Any) -> dict[str, Any]:
    """Inventory of the engine: image IDs, containers and volumes (JSON-ready)."""
    api = client.api
    images = sorted({str(i["Id"]) for i in api.images(all=True)})
    tags = sorted({str(t) for i in api.images() for t in (i.get("RepoTags") or []) if t != "<none>:<none>"})
    containers: dict[str, Any] = {}
    for c in api.containers(all=True):
        detail = api.inspect_container(c["Id"])
        state = detail.get("State") or {}
        policy = ((detail.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
        containers[str(c["Id"])] = {
            "name": str(detail.get("Name", "")).lstrip("/"),
            "image": str(detail.get("Image", "")),
            "running": bool(state.get("Running")),
            "restart_policy": policy,
        }
    volumes: dict[str, Any] = {}
    for v in (api.volumes() or {}).get("Volumes") or []:
        volumes[str(v["Name"])] = {"driver": str(v.get("Driver", "")), "mountpoint": str(v.get("Mountpoint", ""))}
    return {"images": images, "tags": tags, "containers": containers, "volumes": volumes}


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Differences that mean something was lost (empty when *after* holds everything)."""
    problems = []
    missing_images = sorted(set(before.get("images", [])) - set(after.get("images", [])))
    if missing_images:
        problems.append(f"{len(missing_images)} image(s) missing: {', '.join(i[:19] for i in missing_images[:5])}")
    missing_tags = sorted(set(before.get("tags", [])) - set(after.get("tags", [])))
    if missing_tags:
        problems.append(f"tag(s) missing: {', '.join(missing_tags[:5])}")
    for cid, c in before.get("containers", {}).items():
        other = after.get("containers", {}).get(cid)
        if other is None:
            problems.append(f"container {c['name']} ({cid[:12]}) missing")
        elif other.get("restart_policy") != c.get("restart_policy"):
            problems.append(f"container {c['name']}: restart policy changed")
    missing_vols = sorted(set(before.get("volumes", {})) - set(after.get("volumes", {})))
    if missing_vols:
        problems.append(f"volume(s) missing: {', '.join(missing_vols[:5])}")
    return problems


def not_running(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Names of containers that ran before and do not run in *after*."""
    return [
        c["name"]
        for cid, c in before.get("containers", {}).items()
        if c.get("running") and not after.get("containers", {}).get(cid, {}).get("running")
    ]


def volume_checksums(
    root: str, names: list[str], files: int = SAMPLE_FILES, limit: int = SAMPLE_BYTES
) -> dict[str, str]:
    """A checksum sample of each local volume's data under *root*/volumes/NAME/_data.

    Per volume: the sorted relative paths, sizes, modes and the SHA-256 of the first
    *limit* bytes of up to *files* regular files (spread evenly over the sorted list).
    Comparable between the old root and the copy.
    """
    out: dict[str, str] = {}
    for name in sorted(names):
        base = os.path.join(root, "volumes", name, "_data")
        if not os.path.isdir(base):
            continue
        entries: list[tuple[str, os.stat_result]] = []
        for folder, dirs, filenames in os.walk(base):
            dirs.sort()
            prefix = "" if folder == base else os.path.relpath(folder, base) + os.sep  # once per folder: fast
            for fname in filenames:
                try:
                    entries.append((prefix + fname, os.lstat(os.path.join(folder, fname))))
                except OSError:
                    continue
        entries.sort()
        digest = hashlib.sha256()
        regular = [e for e in entries if stat.S_ISREG(e[1].st_mode)]
        step = max(1, len(regular) // files) if regular else 1
        sample = {rel for rel, _ in regular[::step][:files]}
        for rel, st in entries:
            digest.update(f"{rel}\0{st.st_size}\0{st.st_mode:o}\0{st.st_uid}:{st.st_gid}\n".encode())
            if rel in sample:
                try:
                    with open(os.path.join(base, rel), "rb") as handle:
                        digest.update(hashlib.sha256(handle.read(limit)).digest())
                except OSError as exc:
                    digest.update(f"unreadable:{exc.errno}".encode())
        out[name] = f"{len(entries)}:{digest.hexdigest()}"
    return out
