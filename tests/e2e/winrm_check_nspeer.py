"""Peers for the namespace e2e test: run INSIDE a throwaway ``unshare -n`` namespace.

Usage: python winrm_check_nspeer.py CA_DIR READY_FILE — starts, on the namespace's own
loopback, a healthy WinRM listener on 127.0.0.1:5986 (for srv1.corp.test) and a server that
never handshakes on 127.0.0.2:5986, writes READY_FILE, and serves until killed.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.tlspeers import HangServer, TestCA, TlsServer


def main() -> None:
    ca_dir, ready = Path(sys.argv[1]), Path(sys.argv[2])
    ca = TestCA("Corp NS CA")
    ca.write(ca_dir)
    servers = [
        TlsServer(ca.issue("srv1.corp.test"), host="127.0.0.1", port=5986),
        HangServer("127.0.0.2", 5986),
    ]
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    ready.write_text("ready\n")
    done.wait(60)
    for srv in servers:
        srv.stop()


if __name__ == "__main__":
    main()
