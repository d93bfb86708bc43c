"""Connecting to an engine that is not there: one plain reason, naming where we looked."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from opsbook.runbooks.docker_root.engine import EngineUnavailable, connect


def test_missing_socket_names_the_socket_and_the_reason(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/docker.sock"
    with pytest.raises(EngineUnavailable) as info:
        connect(url, timeout=2)
    assert str(info.value) == f"cannot connect to {url}: No such file or directory (is dockerd running?)"


def test_refused_tcp_port_names_the_reason() -> None:
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    with pytest.raises(EngineUnavailable) as info:
        connect(url, timeout=2)
    assert str(info.value) == f"cannot connect to {url}: Connection refused (is dockerd running?)"
