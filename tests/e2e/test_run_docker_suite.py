"""``opsbook run`` with a docker-root entry against a real dockerd (its own socket and folder)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.dockerd_peer import DockerdPeer
from tests.helpers import run_cli
from tests.peers import need_binary, need_root

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def suite_dockerd() -> Iterator[DockerdPeer]:
    need_root()
    need_binary("dockerd")
    need_binary("docker")
    peer = DockerdPeer()
    try:
        peer.start()
        yield peer
    finally:
        peer.close()


def test_docker_root_entry_runs_when_its_socket_exists(tmp_path: Path, suite_dockerd: DockerdPeer) -> None:
    peer = suite_dockerd
    suite = tmp_path / "docker.yaml"
    suite.write_text(
        "version: 1\n"
        "checks:\n"
        "  - name: engine\n"
        "    runbook: docker-root\n"
        f"    when: {{path_exists: {peer.socket}}}\n"
        "    with:\n"
        f"      daemon-json: {peer.daemon_json}\n"
        f"      docker-host: unix://{peer.socket}\n"
        f"      state-dir: {peer.state_dir}\n"
        "  - name: absent-engine\n"
        "    runbook: docker-root\n"
        f"    when: {{path_exists: {tmp_path / 'no.sock'}}}\n"
    )
    result = run_cli("run", str(suite), "-f", "json")
    assert result.code in (0, 1, 2), result.err
    doc = json.loads(result.out)
    assert doc["skipped"] == [{"name": "absent-engine", "reason": f"{tmp_path / 'no.sock'} does not exist"}]
    assert doc["checks"], doc
    assert {c["source"] for c in doc["checks"]} == {"engine"}
    assert all(c["status"] != "UNKNOWN" for c in doc["checks"]), doc["checks"]
    text = json.dumps(doc)
    assert str(peer.root) in text  # the data-root the engine reports is the peer's
