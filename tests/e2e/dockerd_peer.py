"""A real dockerd in a temporary folder, driven by stop/start scripts (no systemd here).

Its data-root comes from TMP/daemon.json (``--config-file``), so ``move`` can edit it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

START = """#!/bin/sh
D={d}
rm -f $D/d.sock
{dockerd} -H unix://$D/d.sock --pidfile $D/d.pid --exec-root $D/x --config-file $D/daemon.json \\
  --iptables=false --ip6tables=false --bridge=none $(cat $D/extra-flags 2>/dev/null) >>$D/dockerd.log 2>&1 &
pid=$!
i=0
while [ $i -lt 300 ]; do
  [ -S $D/d.sock ] && exit 0
  case "$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null)" in Z|X|"") echo "dockerd exited"; tail -n 3 $D/dockerd.log; exit 1;; esac
  sleep 0.1; i=$((i+1))
done
echo "no socket after 30s"; exit 1
"""

STOP = """#!/bin/sh
D={d}
[ -f $D/d.pid ] || exit 0
pid=$(cat $D/d.pid)
kill $pid 2>/dev/null || exit 0
i=0
while [ $i -lt 300 ]; do
  case "$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null)" in Z|X|"") break;; esac
  sleep 0.1; i=$((i+1))
done
i=0
while [ -e $D/d.pid ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
exit 0
"""


class DockerdPeer:
    """A dockerd with its own socket, exec-root, config file and data-root under one temp folder."""

    def __init__(self, daemon_json: dict[str, object] | None = None, *, own_filesystem: bool = True) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="odr", dir="/tmp"))
        self.dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        self.root = self.dir / "root"
        if own_filesystem:
            # The data-root on a disk of its own (a tmpfs), as on a host that moves it to another disk:
            # a TARGET next to it is then on another filesystem.
            self.root.mkdir()
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=4g,mode=0710", "opsbook-test", str(self.root)],
                check=True,
                capture_output=True,
            )
        self.daemon_json = self.dir / "daemon.json"
        self.state_dir = self.dir / "state"
        self.socket = self.dir / "d.sock"
        self.host = f"unix://{self.socket}"
        config = {"data-root": str(self.root), "storage-driver": "overlay2", "log-level": "warn"}
        config.update(daemon_json or {})
        self.daemon_json.write_text(json.dumps(config, indent=2) + "\n")
        os.chmod(self.daemon_json, 0o640)
        self.start_script = self.dir / "start.sh"
        self.stop_script = self.dir / "stop.sh"
        self.start_script.write_text(START.format(d=self.dir, dockerd=self.dockerd))
        self.stop_script.write_text(STOP.format(d=self.dir))
        self.start_script.chmod(0o755)
        self.stop_script.chmod(0o755)

    def new_disk(self, name: str, size: str = "4g") -> Path:
        """An empty folder with a filesystem of its own (a tmpfs), as a new disk for TARGET."""
        path = self.dir / name
        path.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "opsbook-test", str(path)], check=True, capture_output=True
        )
        return path

    # ---------------------------------------------------------------- engine
    def options(self) -> list[str]:
        """The shared opsbook options pointing at this peer."""
        return [
            "--daemon-json",
            str(self.daemon_json),
            "--docker-host",
            self.host,
            "--stop-command",
            str(self.stop_script),
            "--start-command",
            str(self.start_script),
            "--state-dir",
            str(self.state_dir),
        ]

    def start(self) -> None:
        """Start dockerd and wait until it answers."""
        subprocess.run([str(self.start_script)], check=True, timeout=60, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while self.docker("version", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("dockerd does not answer: " + self.log_tail())
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop dockerd (waits for it)."""
        subprocess.run([str(self.stop_script)], check=False, timeout=60)

    def set_extra_flags(self, flags: str | None) -> None:
        """Extra dockerd flags for the next starts (None removes them)."""
        path = self.dir / "extra-flags"
        if flags is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(flags + "\n")

    def fail_next_start(self, flags: str) -> str:
        """A start command that starts dockerd once with *flags* added, then normally again.

        The first start after this fails when *flags* make dockerd refuse to start
        (``--data-root X`` with data-root in daemon.json); a rollback's start then works.
        """
        script = self.dir / "start-failing-once.sh"
        marker = self.dir / "failed-once"
        script.write_text(
            "#!/bin/sh\n"
            f"if [ ! -e {marker} ]; then touch {marker}; echo '{flags}' > {self.dir}/extra-flags; "
            f"else rm -f {self.dir}/extra-flags; fi\n"
            f"exec {self.start_script}\n"
        )
        script.chmod(0o755)
        return str(script)

    def volume_path(self, name: str) -> Path:
        """Where volume *name*'s data lives on the host now."""
        return Path(self.docker("volume", "inspect", "--format", "{{.Mountpoint}}", name).stdout.strip())

    def bulk_volume(self, name: str = "bulk", files: int = 20000, size: int = 512) -> Path:
        """A volume with many small files written straight into its folder (a slow copy)."""
        self.docker("volume", "create", name)
        base = self.volume_path(name)
        payload = os.urandom(size)
        for i in range(files):
            sub = base / f"d{i // 1000:03d}"
            if i % 1000 == 0:
                sub.mkdir()
            (sub / f"f{i:06d}").write_bytes(payload[: (i % size) + 1])
        return base

    def log_tail(self) -> str:
        """Last lines of dockerd's log."""
        with contextlib.suppress(OSError):
            return "\n".join((self.dir / "dockerd.log").read_text().splitlines()[-10:])
        return ""

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this peer."""
        return subprocess.run(
            ["docker", "-H", self.host, *args], capture_output=True, text=True, timeout=60, check=check
        )

    def info(self, fmt: str) -> str:
        """``docker info --format FMT``."""
        return self.docker("info", "--format", fmt).stdout.strip()

    # ---------------------------------------------------------------- content
    def populate(self) -> None:
        """An imported busybox image, a volume with data, a running and a stopped container."""
        rootfs = self.dir / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        busybox = shutil.which("busybox") or "/bin/busybox"
        shutil.copy2(busybox, rootfs / "bin" / "busybox")
        for applet in ("sh", "sleep", "cat", "echo", "ls", "dd", "md5sum", "touch"):
            os.symlink("busybox", rootfs / "bin" / applet)
        tar = self.dir / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
        self.docker("import", "--change", 'CMD ["/bin/sh"]', str(tar), "opsbook-bb:1")
        self.docker("volume", "create", "odata")
        self.docker(
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "odata:/data",
            "opsbook-bb:1",
            "sh",
            "-c",
            "echo precious > /data/file.txt; dd if=/dev/urandom of=/data/blob bs=1k count=64 2>/dev/null",
        )
        self.docker(
            "run",
            "-d",
            "--name",
            "runner",
            "--network",
            "none",
            "--stop-timeout",
            "1",
            "-v",
            "odata:/data",
            "opsbook-bb:1",
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 0.2; done",
        )
        self.docker("create", "--name", "stopped", "--network", "none", "opsbook-bb:1", "echo", "hi")

    def state(self) -> dict[str, object]:
        """What is on the engine now: images, containers with state, volumes, the volume's file."""
        images = sorted(self.docker("images", "-q", "--no-trunc").stdout.split())
        ps = self.docker("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.split("\n")
        containers = dict(line.split() for line in ps if line.strip())
        volumes = sorted(self.docker("volume", "ls", "-q").stdout.split())
        return {"images": images, "containers": containers, "volumes": volumes}

    def volume_file(self) -> str:
        """The content of file.txt in the volume, read through a container."""
        return self.docker(
            "run", "--rm", "--network", "none", "-v", "odata:/data", "opsbook-bb:1", "cat", "/data/file.txt"
        ).stdout

    # ---------------------------------------------------------------- teardown
    def close(self) -> None:
        """Stop dockerd (kill -9 if needed), undo mounts under the folder, delete it."""
        self.stop()
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.dir / "d.pid").read_text())
            os.kill(pid, 9)
        # dockerd, its containerd and the shims all name the folder on their command line.
        for proc in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError, ValueError):
                if int(proc.parent.name) != os.getpid() and str(self.dir).encode() in proc.read_bytes():
                    os.kill(int(proc.parent.name), 9)
        mounts = []
        with open("/proc/self/mountinfo") as handle:
            for line in handle:
                point = line.split()[4]
                if point.startswith(str(self.dir) + "/"):
                    mounts.append(point)
        for point in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
