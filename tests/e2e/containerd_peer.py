"""A real containerd (Debian's 1.6) with a private config.toml under a temp folder, no systemd.

Its root is on a tmpfs of its own (or, with ``own_filesystem=False``, a plain folder on this
machine's disk, as benchmarks/bench_docker_root.py --containerd uses it); stop/start scripts drive it like ``--containerd-stop-command``
and ``--containerd-start-command`` would on a host without systemd.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.e2e import oci_image

CONFIG = """# opsbook test containerd -- this comment must survive the move
version = 2
root = "{d}/root"   # where images and snapshots live
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

# the sockets, private to this test
[grpc]
  address = "{d}/c.sock"

[ttrpc]
  address = "{d}/c.sock.ttrpc"

[debug]
  address = "{d}/debug.sock"
  level = "warn"
"""

START = """#!/bin/sh
D={d}
rm -f $D/c.sock
containerd -c $D/config.toml >>$D/containerd.log 2>&1 &
pid=$!
echo $pid > $D/c.pid
i=0
while [ $i -lt 200 ]; do
  ctr -a $D/c.sock version >/dev/null 2>&1 && exit 0
  case "$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null)" in Z|X|"") echo "containerd exited"; tail -n 3 $D/containerd.log; exit 1;; esac
  sleep 0.1; i=$((i+1))
done
echo "containerd does not answer"; exit 1
"""

STOP = """#!/bin/sh
D={d}
[ -f $D/c.pid ] || exit 0
pid=$(cat $D/c.pid)
kill $pid 2>/dev/null || exit 0
i=0
while [ $i -lt 300 ]; do
  case "$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null)" in Z|X|"") break;; esac
  sleep 0.1; i=$((i+1))
done
rm -f $D/c.pid
exit 0
"""


class ContainerdPeer:
    """containerd with its config, root, state and sockets under one temp folder."""

    def __init__(self, *, own_filesystem: bool = True) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="octd", dir="/tmp"))
        self.root = self.dir / "root"
        self.root.mkdir(mode=0o711)
        if own_filesystem:
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=2g,mode=0711", "opsbook-test", str(self.root)],
                check=True,
                capture_output=True,
            )
        self.config = self.dir / "config.toml"
        self.config.write_text(CONFIG.format(d=self.dir))
        self.config.chmod(0o640)
        self.socket = str(self.dir / "c.sock")
        #: runc keeps its state in /run/containerd/runc/NS/ID whatever the config: ids unique to this peer.
        #: containerd ids allow no '_' (mkdtemp's names may have one, even at the end).
        self.ident = self.dir.name.replace("_", "0")
        self.runner = f"runner-{self.ident}"
        self.start_script = self.dir / "start.sh"
        self.stop_script = self.dir / "stop.sh"
        self.start_script.write_text(START.format(d=self.dir))
        self.stop_script.write_text(STOP.format(d=self.dir))
        self.start_script.chmod(0o755)
        self.stop_script.chmod(0o755)

    def options(self) -> list[str]:
        """The opsbook options pointing at this containerd."""
        return [
            "--containerd-config",
            str(self.config),
            "--containerd-stop-command",
            str(self.stop_script),
            "--containerd-start-command",
            str(self.start_script),
        ]

    def start(self) -> None:
        """Start containerd and wait until it answers."""
        subprocess.run([str(self.start_script)], check=True, timeout=60, stdout=subprocess.DEVNULL)

    def ctr(self, *args: str, ns: str = "default", check: bool = True) -> str:
        """Run ctr against this containerd."""
        out = subprocess.run(
            ["ctr", "-a", self.socket, "-n", ns, *args], capture_output=True, text=True, timeout=60, check=False
        )
        if check and out.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def populate(self, ns: str = "default") -> None:
        """An imported image, a running container (active snapshot + task), a stopped one."""
        tar = oci_image.build(self.dir / "image.tar")
        self.ctr("images", "import", "--all-platforms", str(tar), ns=ns)
        self.ctr(
            "run",
            "-d",
            "docker.io/opsbook/bb:1",
            self.runner,
            "sh",
            "-c",
            "trap 'exit 0' TERM; echo written > /data/w; while true; do sleep 0.2; done",
            ns=ns,
        )
        self.ctr("containers", "create", "docker.io/opsbook/bb:1", f"idle-{self.ident}", "echo", "hi", ns=ns)

    def state(self, ns: str = "default") -> dict[str, object]:
        """Blobs, images, snapshots, containers and running tasks of namespace *ns*."""

        def col(text: str, i: int = 0) -> list[str]:
            return sorted(line.split()[i] for line in text.splitlines()[1:] if line.strip())

        tasks = [line.split() for line in self.ctr("tasks", "ls", ns=ns).splitlines()[1:] if line.strip()]
        return {
            "content": col(self.ctr("content", "ls", ns=ns)),
            "images": col(self.ctr("images", "ls", ns=ns)),
            "snapshots": col(self.ctr("snapshots", "ls", ns=ns)),
            "containers": col(self.ctr("containers", "ls", ns=ns)),
            "running": sorted(t[0] for t in tasks if t[2] == "RUNNING"),
        }

    def close(self) -> None:
        """Kill the tasks, containerd and its shims, unmount, delete the folder."""
        for proc in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError, ValueError):
                if int(proc.parent.name) != os.getpid() and str(self.dir).encode() in proc.read_bytes():
                    os.kill(int(proc.parent.name), 9)
        time.sleep(0.2)
        mounts = []
        with open("/proc/self/mountinfo") as handle:
            for line in handle:
                point = line.split()[4]
                if point.startswith(str(self.dir) + "/"):
                    mounts.append(point)
        for point in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        for ns in Path("/run/containerd/runc").glob("*"):
            shutil.rmtree(ns / self.runner, ignore_errors=True)
