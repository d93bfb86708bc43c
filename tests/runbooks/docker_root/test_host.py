"""What the host shows without the engine: daemon.json, dockerd flags, units, mounts, config changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsbook.runbooks.docker_root import host, inventory, journal, plan, treecopy
from opsbook.runbooks.errors import RefusedError


def test_new_config_keeps_every_other_key_in_place_and_replaces_graph() -> None:
    data = {"log-driver": "journald", "graph": "/var/lib/docker", "labels": ["a=b"], "debug": True}
    new = plan.new_config(data, "/srv/docker")
    assert list(new.items()) == [
        ("log-driver", "journald"),
        ("data-root", "/srv/docker"),
        ("labels", ["a=b"]),
        ("debug", True),
    ]
    both = plan.new_config({"data-root": "/a", "x": 1, "graph": "/b"}, "/srv/d")
    assert both == {"data-root": "/srv/d", "x": 1}
    assert plan.new_config({}, "/srv/d") == {"data-root": "/srv/d"}
    assert data["graph"] == "/var/lib/docker"  # the input is not modified


def test_config_diff_shows_only_the_data_root_change() -> None:
    diff = plan.config_diff("/etc/docker/daemon.json", {"data-root": "/a", "x": 1}, {"data-root": "/b", "x": 1})
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("---", "+++"))]
    assert changed == ['-  "data-root": "/a",', '+  "data-root": "/b",']


def test_read_daemon_json(tmp_path: Path) -> None:
    missing = host.read_daemon_json(tmp_path / "none.json")
    assert missing.usable and not missing.exists and missing.data == {}
    path = tmp_path / "daemon.json"
    path.write_text("")
    assert host.read_daemon_json(path).data == {}
    path.write_text('{"graph": "/old", "n": {"a": 1, "a": 2}}')
    cfg = host.read_daemon_json(path)
    assert not cfg.usable and "duplicate key 'a'" in cfg.error  # nested duplicates too
    path.write_text('{"graph": "/old"}')
    path.chmod(0o640)
    cfg = host.read_daemon_json(path)
    assert cfg.usable and cfg.data_root == "/old" and cfg.mode == 0o640


@pytest.mark.parametrize(
    ("args", "flags"),
    [
        (["dockerd", "-H", "fd://", "--data-root", "/srv/d"], ["--data-root /srv/d"]),
        (["dockerd", "--data-root=/srv/d"], ["--data-root=/srv/d"]),
        (["dockerd", "-g", "/srv/d"], ["-g /srv/d"]),
        (["dockerd", "-g/srv/d"], ["-g/srv/d"]),
        (["dockerd", "--graph", "/srv/d"], ["--graph /srv/d"]),
        (["dockerd", "--group", "docker", "--debug"], []),
    ],
)
def test_data_root_flags(args: list[str], flags: list[str]) -> None:
    assert host.data_root_flags(args) == flags
    assert [host.flag_value(f) for f in flags] == ["/srv/d"] * len(flags)


def _fake_proc(tmp_path: Path, pid: int, args: list[str]) -> None:
    folder = tmp_path / str(pid)
    folder.mkdir()
    (folder / "cmdline").write_bytes(b"\0".join(a.encode() for a in args) + b"\0")


def test_dockerd_processes_from_proc_cmdline(tmp_path: Path) -> None:
    _fake_proc(
        tmp_path,
        10,
        ["/usr/bin/dockerd", "-H", "fd://", "--data-root", "/srv/d", "--config-file", "/etc/docker/other.json"],
    )
    _fake_proc(tmp_path, 11, ["/usr/bin/dockerd", "-H", "unix:///tmp/peer.sock", "--graph=/x"])
    _fake_proc(tmp_path, 12, ["/usr/bin/containerd", "--data-root", "/nope"])
    default = host.dockerd_processes(None, proc=str(tmp_path))
    assert [(p.pid, p.flags, p.config_file) for p in default] == [
        (10, ["--data-root /srv/d"], "/etc/docker/other.json")
    ]
    peer = host.dockerd_processes("unix:///tmp/peer.sock", proc=str(tmp_path))
    assert [(p.pid, p.flags, p.config_file) for p in peer] == [(11, ["--graph=/x"], None)]


def test_systemd_unit_and_drop_in_flags(tmp_path: Path) -> None:
    etc, lib = tmp_path / "etc", tmp_path / "lib"
    (lib).mkdir()
    (lib / "docker.service").write_text("[Service]\nExecStart=/usr/bin/dockerd -H fd:// \\\n  -g /srv/old\n")
    (etc / "docker.service.d").mkdir(parents=True)
    (etc / "docker.service.d" / "override.conf").write_text(
        "[Service]\nExecStart=\nExecStart=-/usr/bin/dockerd --data-root=/srv/new\n"
    )
    (etc / "docker.service.d" / "env.conf").write_text("[Service]\nEnvironment=X=1\n")
    found = host.systemd_unit_flags(dirs=(str(etc), str(lib)))
    # The empty ExecStart= of the drop-in clears the unit's own line: its -g is not run.
    assert found == {str(etc / "docker.service.d" / "override.conf"): ["--data-root=/srv/new"]}
    assert host.unit_exists("docker.service", (str(etc), str(lib)))
    assert not host.unit_exists("docker.socket", (str(etc), str(lib)))


def test_mount_of_picks_the_longest_mount_point(tmp_path: Path) -> None:
    (tmp_path / "srv" / "docker data").mkdir(parents=True)
    (tmp_path / "srvx").mkdir()
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
        f"40 22 0:50 / {tmp_path}/srv rw - nfs4 nas:/export rw\n"
        f"41 40 0:51 / {tmp_path}/srv/docker\\040data rw - xfs /dev/sdb1 rw\n"
    )
    assert host.mount_of(str(tmp_path / "srv" / "new"), str(mountinfo)).fstype == "nfs4"
    deep = host.mount_of(str(tmp_path / "srv" / "docker data" / "not" / "yet"), str(mountinfo))
    assert (deep.mount_point, deep.fstype, deep.source) == (f"{tmp_path}/srv/docker data", "xfs", "/dev/sdb1")
    assert host.mount_of(str(tmp_path / "srvx"), str(mountinfo)).fstype == "ext4"
    assert host.unsupported_fs("fuse.sshfs") == "FUSE (fuse.sshfs)"
    assert host.unsupported_fs("ext4") is None


def test_is_under_is_component_wise(tmp_path: Path) -> None:
    assert host.is_under(str(tmp_path / "a" / "b"), str(tmp_path / "a"))
    assert host.is_under(str(tmp_path / "a"), str(tmp_path / "a/"))
    assert not host.is_under(str(tmp_path / "ab"), str(tmp_path / "a"))


def test_usage_counts_hard_links_once(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 100_000)
    (tmp_path / "g").hardlink_to(tmp_path / "f")
    u = host.usage(str(tmp_path))
    assert u.inodes == 2  # the folder and one file
    assert 100_000 <= u.bytes < 200_000


def test_rsync_progress_lines() -> None:
    assert treecopy.parse_progress("    100,000   2%   64.12MB/s    0:00:00 (xfr#1, to-chk=49/51)") == (
        100_000,
        5_000_000,
        1,
    )
    assert treecopy.parse_progress("     32,768   0%    0.00kB/s    0:00:00") == (32_768, 0, 0)
    assert treecopy.parse_progress("sending incremental file list") is None
    cmd = treecopy.rsync_command("/var/lib/docker", "/srv/docker/")
    assert cmd[1:5] == ["-aHAXS", "--numeric-ids", "--one-file-system", "--delete"]
    assert cmd[-2:] == ["/var/lib/docker/", "/srv/docker/"]


def test_rsync_copies_hard_links_and_sparse_files_and_reports_progress(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    (src / "d" / "a").write_bytes(b"a" * 300_000)
    (src / "d" / "b").hardlink_to(src / "d" / "a")
    with open(src / "sparse", "wb") as handle:
        handle.seek(50 << 20)
        handle.write(b"end")
    seen: list[tuple[int, int, int]] = []
    res = treecopy.rsync(str(src), str(dst), progress=lambda *a: seen.append(a))
    assert res.exit_code == 0 and res.files >= 2
    assert (dst / "d" / "a").stat().st_ino == (dst / "d" / "b").stat().st_ino
    assert (dst / "sparse").stat().st_blocks * 512 < 1 << 20
    assert seen and seen[-1][0] >= 300_000
    with pytest.raises(treecopy.CopyError, match="rsync exited with"):
        treecopy.rsync(str(tmp_path / "missing"), str(dst))


def test_inventory_compare_and_not_running() -> None:
    before = {
        "images": ["sha256:1", "sha256:2"],
        "tags": ["bb:1"],
        "volumes": {"v": {}},
        "containers": {"c1": {"name": "web", "running": True, "restart_policy": "always"}},
    }
    assert inventory.compare(before, before) == []
    after = {
        "images": ["sha256:1"],
        "tags": [],
        "volumes": {},
        "containers": {"c1": {"name": "web", "running": False, "restart_policy": "no"}},
    }
    problems = inventory.compare(before, after)
    assert len(problems) == 4 and any("restart policy" in p for p in problems)
    assert inventory.not_running(before, after) == ["web"]


def test_journal_lock_resume_rules_and_archive(tmp_path: Path) -> None:
    j = journal.Journal(tmp_path)
    j.start(old_root="/var/lib/docker", target="/srv/d")
    assert oct(j.folder.stat().st_mode & 0o777) == oct(0o700)
    assert j.unfinished and j.reusable_copy("/srv/d") and not j.reusable_copy("/srv/other")
    j.set(status=journal.ROLLED_BACK)
    assert not j.unfinished and j.reusable_copy("/srv/d")
    j.set(verified_at=1.0)  # the engine ran on /srv/d: what is there now is the user's
    assert not j.reusable_copy("/srv/d")
    with j.lock(), pytest.raises(RefusedError, match="holds"), journal.Journal(tmp_path).lock():
        pass
    with journal.Journal(tmp_path).lock():  # released
        pass
    archived = j.archive()
    assert not j.exists() and json.loads(archived.read_text())["target"] == "/srv/d"
