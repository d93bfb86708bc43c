"""What must survive a move: images, containers (state, restart policy) and volumes, as the engine lists them."""

from __future__ import annotations

from typing import Any


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
