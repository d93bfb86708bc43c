"""A busy container during ``docker-root move``: its last write must reach the new root.

The container rewrites a fixed-width counter every 50 ms and writes the next value when
it gets SIGTERM (the engine stopping). rsync's quick check (size + whole-second mtime)
misses a rewrite of the same size in the same second, so the final copy must be exact.
On the new root the container starts again and logs the counter it finds: that must be
exactly the last value the old root holds (the old root is frozen once the engine stops).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.dockerd_peer import DockerdPeer
from tests.e2e.test_docker_root_move import _need_peer, opsbook

pytestmark = pytest.mark.e2e

#: The counter is kept twice: in a volume and in the container's own writable layer (/c),
#: which the old volume-checksum sample never looked at.
WRITER = (
    "n=$(cat /c 2>/dev/null || echo 00000000); m=$(cat /data/c 2>/dev/null || echo 00000000); "
    'echo "start $n" >> /starts; echo "start $m" >> /data/starts; '
    "i=$((1$n - 100000000)); "
    "w() { printf %08d $i > /c; printf %08d $i > /data/c; }; "
    "trap 'i=$((i+1)); w; exit 0' TERM; "
    "while true; do i=$((i+1)); w; sleep 0.05; done"
)


@pytest.fixture
def busy() -> Iterator[DockerdPeer]:
    """An engine with a container that writes continuously into a volume."""
    _need_peer()
    p = DockerdPeer()
    try:
        p.start()
        p.populate()
        p.docker("volume", "create", "counter")
        p.docker(
            "run",
            "-d",
            "--name",
            "writer",
            "--network",
            "none",
            "--stop-timeout",
            "5",
            "--restart",
            "unless-stopped",
            "-v",
            "counter:/data",
            "opsbook-bb:1",
            "sh",
            "-c",
            WRITER,
        )
        yield p
    finally:
        p.close()


def _last_start(root: Path) -> str:
    lines = (root / "volumes" / "counter" / "_data" / "starts").read_text().splitlines()
    return lines[-1]


def _upper_dir(peer: DockerdPeer) -> Path:
    """The writer's writable layer on the current root."""
    return Path(peer.docker("inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", "writer").stdout.strip())


def _wait_restarted(root: Path, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    path = root / "volumes" / "counter" / "_data" / "starts"
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"the writer did not start again on {root}")


def test_continuous_writer_keeps_its_last_write_across_moves(busy: DockerdPeer) -> None:
    peer = busy
    roots = [peer.root]
    time.sleep(1.0)
    for n in range(1, 4):
        target = peer.new_disk(f"root{n}")
        upper = _upper_dir(peer)
        result = opsbook(peer, "move", str(target), "--yes")
        assert result.code == 0, result.out + result.err
        doc = json.loads(result.out)
        old = roots[-1]
        truth = (old / "volumes" / "counter" / "_data" / "c").read_text()
        assert len(truth) == 8
        _wait_restarted(target, n + 1)
        assert _last_start(target) == f"start {truth}", (
            f"move {n}: the writer found an older counter on the new root than the old root holds "
            f"(old root {truth}); report said: {doc['checks'][-1]['summary']}"
        )
        layer_truth = (upper / "c").read_text()
        layer_seen = peer.docker("exec", "writer", "cat", "/starts").stdout.splitlines()[-1]
        assert layer_seen == f"start {layer_truth}", (
            f"move {n}: the container's writable layer on the new root is older than the old root's "
            f"({layer_seen!r}, old root {layer_truth}); report said: {doc['checks'][-1]['summary']}"
        )
        roots.append(target)
        # The journal of this move is archived by the next one; let the writer run a bit.
        time.sleep(0.7)
