"""Verification after the engine started: root, driver, d_type, inventory, running containers."""

from __future__ import annotations

import os
import time
from typing import Any

from . import engine, inventory


def verify_engine(
    docker_host: str | None, root: str, driver: str, before: dict[str, Any], *, start_containers: bool = True
) -> tuple[list[str], dict[str, Any]]:
    """Check the engine runs on *root* with *driver* and holds the *before* inventory.

    Starts the containers that ran before and do not run now. Returns ``(problems, after)``.
    """
    client = engine.connect(docker_host)
    try:
        info = engine.engine_info(client)
        problems = []
        if os.path.realpath(info.root_dir) != os.path.realpath(root):
            problems.append(f"DockerRootDir is {info.root_dir}, expected {os.path.realpath(root)}")
        if driver and info.driver != driver:
            problems.append(f"storage driver is {info.driver}, was {driver}")
        if info.d_type is False:
            problems.append("the storage driver reports no d_type support")
        after = inventory.take(client)
        problems += inventory.compare(before, after)
        if start_containers and not problems:
            for cid, c in before.get("containers", {}).items():
                if c.get("running") and not after["containers"].get(cid, {}).get("running"):
                    try:
                        client.api.start(cid)
                    except Exception as exc:  # docker.errors.APIError
                        problems.append(f"container {c['name']} did not start: {str(exc)[:200]}")
            deadline = time.monotonic() + 15
            while True:
                after = inventory.take(client)
                stopped = inventory.not_running(before, after)
                if not stopped or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            if stopped:
                problems.append(f"container(s) not running again: {', '.join(stopped)}")
        return problems, after
    finally:
        client.close()
