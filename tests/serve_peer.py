"""A real ``opsbook serve`` process on loopback for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Served:
    """A running exporter: its URL, process and what it logged."""

    url: str
    proc: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)

    def get(
        self,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
        method: str = "GET",
        context: ssl.SSLContext | None = None,
    ) -> tuple[int, str, dict[str, str]]:
        """(status, body, headers) of a request to the exporter."""
        request = urllib.request.Request(self.url + path, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
                return resp.status, resp.read().decode(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), dict(exc.headers)


@contextlib.contextmanager
def serve(
    config: Path, *args: str, listen: str = "127.0.115.1:0", env: dict[str, str] | None = None, startup_s: float = 20
) -> Iterator[Served]:
    """Start ``opsbook serve --config CONFIG ARGS`` and wait for 'listening on URL'."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsbook", "serve", "--config", str(config), "--listen", listen, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    assert proc.stderr is not None
    served = Served("", proc)
    found = threading.Event()

    def reader() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            served.log.append(line.rstrip("\n"))
            match = re.search(r"listening on (https?://\S+)", line)
            if match:
                served.url = match.group(1)
                found.set()
        found.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        if not found.wait(startup_s) or not served.url:
            raise AssertionError("opsbook serve did not start:\n" + "\n".join(served.log))
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        thread.join(5)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    """Poll *predicate* until it is true or *timeout* passes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
