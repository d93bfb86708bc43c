"""Preflight blockers of ``docker-root move``: each one has a reason and a fix.

Facts that need no engine are real (temp folders, files); what only an engine or a
special filesystem can show (swarm role, image store, NFS, xfs ftype=0) is given as facts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from opsbook.runbooks.docker_root import host, plan
from opsbook.runbooks.docker_root.engine import EngineInfo


def info(**kw: object) -> EngineInfo:
    """An engine as ``docker info`` would describe it."""
    base: dict[str, object] = dict(
        root_dir="/var/lib/docker",
        driver="overlay2",
        driver_status={"Backing Filesystem": "extfs", "Supports d_type": "true"},
        containerd_store=False,
        rootless=False,
        swarm_state="inactive",
        swarm_manager=False,
        containers=2,
        running=1,
        images=1,
        server_version="20.10.24",
    )
    base.update(kw)
    return EngineInfo(**base)  # type: ignore[arg-type]


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """A current root with some content and a daemon.json beside it."""
    current = tmp_path / "docker"
    (current / "volumes").mkdir(parents=True)
    (current / "volumes" / "f").write_text("x")
    (tmp_path / "daemon.json").write_text(json.dumps({"data-root": str(current)}) + "\n")
    return current, tmp_path


def facts(tmp_path: Path, target: str, current: Path, **kw: object) -> plan.Facts:
    base: dict[str, object] = dict(
        target=target,
        daemon=host.read_daemon_json(tmp_path / "daemon.json"),
        info=info(root_dir=str(current)),
        current_root=str(current),
    )
    base.update(kw)
    return plan.Facts(**base)  # type: ignore[arg-type]


def blockers(f: plan.Facts, usage: host.Usage | None = None) -> dict[str, plan.Finding]:
    found = plan.preflight(f, usage=usage)
    out = {b.id.rsplit(".", 1)[1]: b for b in found if not b.ok}
    for b in out.values():
        assert b.summary and b.fix, b  # every blocker says why and how to fix it
    return out


def test_a_clean_plan_has_no_blockers(roots: tuple[Path, Path]) -> None:
    current, tmp = roots
    found = plan.preflight(facts(tmp, str(tmp / "new"), current), usage=host.usage(str(current)))
    assert [f for f in found if not f.ok] == []
    assert {f.id.rsplit(".", 1)[1] for f in found} >= {
        "engine",
        "daemon_json",
        "target_empty",
        "filesystem",
        "d_type",
        "space",
        "inodes",
        "flags",
        "swarm",
        "image_store",
    }


def test_relative_target(roots: tuple[Path, Path]) -> None:
    current, tmp = roots
    b = blockers(facts(tmp, "srv/docker", current))
    assert list(b) == ["target"] and "relative" in b["target"].summary


def test_target_inside_current_root_and_root_inside_target(roots: tuple[Path, Path]) -> None:
    current, tmp = roots
    assert "inside the current root" in blockers(facts(tmp, str(current / "sub"), current))["target"].summary
    assert "is inside TARGET" in blockers(facts(tmp, str(tmp), current))["target"].summary
    # a sibling sharing the name prefix is not inside
    assert "target" not in blockers(facts(tmp, str(current) + "-new", current))


def test_target_not_empty_unless_only_lost_found_or_our_partial_copy(roots: tuple[Path, Path]) -> None:
    current, tmp = roots
    target = tmp / "new"
    (target / "lost+found").mkdir(parents=True)
    assert "target_empty" not in blockers(facts(tmp, str(target), current))  # a fresh filesystem's mount point
    (target / "data").write_text("someone's")
    b = blockers(facts(tmp, str(target), current))
    assert "not empty" in b["target_empty"].summary
    assert "target_empty" not in blockers(facts(tmp, str(target), current, resumable=True))
    (tmp / "file").write_text("x")
    assert "not a folder" in blockers(facts(tmp, str(tmp / "file"), current))["target_empty"].summary


def test_parent_missing(roots: tuple[Path, Path]) -> None:
    current, tmp = roots
    b = blockers(facts(tmp, str(tmp / "no" / "such" / "docker"), current))
    assert "does not exist" in b["parent"].summary and "mkdir -p" in b["parent"].fix


def test_space_and_inodes(roots: tuple[Path, Path]) -> None:
    current, tmp = roots
    sp = host.space(str(tmp))
    huge = host.Usage(bytes=sp.free_bytes, inodes=sp.free_inodes)  # x 1.1 (+1 GiB) does not fit
    b = blockers(facts(tmp, str(tmp / "new"), current), usage=huge)
    assert "x 1.1 + 1 GiB" in b["space"].summary
    if sp.total_inodes:
        assert "inodes free" in b["inodes"].summary
    small = host.Usage(bytes=1, inodes=1)
    assert not {"space", "inodes"} & set(blockers(facts(tmp, str(tmp / "new"), current), usage=small))


@pytest.mark.parametrize(
    ("fstype", "name"), [("nfs4", "NFS"), ("cifs", "CIFS"), ("fuse.sshfs", "FUSE"), ("overlay", "overlayfs")]
)
def test_network_fuse_and_overlay_filesystems(
    roots: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, fstype: str, name: str
) -> None:
    current, tmp = roots
    monkeypatch.setattr(host, "mount_of", lambda path: host.Mount("/mnt/x", fstype, "srv:/export"))
    b = blockers(facts(tmp, str(tmp / "new"), current))
    assert name in b["filesystem"].summary and "/mnt/x" in b["filesystem"].summary


def test_filesystem_without_d_type(roots: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    current, tmp = roots
    monkeypatch.setattr(host, "supports_d_type", lambda path: False)  # what xfs with ftype=0 answers
    assert "ftype=1" in blockers(facts(tmp, str(tmp / "new"), current))["d_type"].fix


def test_d_type_probe_reads_a_real_folder(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "f").write_text("x")
    types = host.d_types(str(tmp_path))
    assert sorted(types) == sorted([4, 4, 4, 8])  # ., .., a (DT_DIR) and f (DT_REG)
    assert host.supports_d_type(str(tmp_path / "not" / "yet")) is True  # the closest existing folder


def test_data_root_flag_on_dockerd_or_in_the_unit(roots: tuple[Path, Path]) -> None:
    current, tmp = roots
    b = blockers(facts(tmp, str(tmp / "new"), current, flags=["--data-root /srv/d"]))
    assert "specified both as a flag and in the configuration file" in b["flags"].summary
    b = blockers(
        facts(tmp, str(tmp / "new"), current, unit_flags={"/etc/systemd/system/docker.service.d/x.conf": ["-g /srv/d"]})
    )
    assert "x.conf" in b["flags"].summary and "systemctl edit docker.service" in b["flags"].fix


def test_dockerd_reading_another_config_file(roots: tuple[Path, Path]) -> None:
    current, tmp = roots
    b = blockers(facts(tmp, str(tmp / "new"), current, config_files=["/etc/docker/other.json"]))
    assert "--daemon-json /etc/docker/other.json" in b["config_file"].fix
    same = facts(tmp, str(tmp / "new"), current, config_files=[str(tmp / "daemon.json")])
    assert "config_file" not in blockers(same)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"data-root": "/a", "data-root": "/b"}', "duplicate key 'data-root'"),
        ('{"data-root": "/a",}', "not a valid daemon.json"),
        ('["data-root"]', "not an object"),
    ],
)
def test_daemon_json_duplicate_invalid_or_not_an_object(roots: tuple[Path, Path], text: str, words: str) -> None:
    current, tmp = roots
    (tmp / "daemon.json").write_text(text)
    b = blockers(facts(tmp, str(tmp / "new"), current))
    assert words in b["daemon_json"].summary and "never rewrites" in b["daemon_json"].fix


def test_daemon_json_unreadable(roots: tuple[Path, Path]) -> None:
    current, tmp = roots
    os.unlink(tmp / "daemon.json")
    (tmp / "daemon.json").mkdir()  # even root cannot read a folder as a file
    b = blockers(facts(tmp, str(tmp / "new"), current))
    assert "cannot read" in b["daemon_json"].summary


def test_swarm_manager(roots: tuple[Path, Path]) -> None:
    current, tmp = roots
    f = facts(
        tmp, str(tmp / "new"), current, info=info(root_dir=str(current), swarm_state="active", swarm_manager=True)
    )
    assert "docker node demote" in blockers(f)["swarm"].fix
    worker = facts(tmp, str(tmp / "new"), current, info=info(root_dir=str(current), swarm_state="active"))
    assert "swarm" not in blockers(worker)


def test_containerd_image_store_needs_the_explicit_option(roots: tuple[Path, Path]) -> None:
    current, tmp = roots
    store = info(root_dir=str(current), containerd_store=True)
    b = blockers(facts(tmp, str(tmp / "new"), current, info=store))
    assert "/var/lib/containerd" in b["image_store"].summary and "--containerd-root-moved" in b["image_store"].fix
    assert "image_store" not in blockers(facts(tmp, str(tmp / "new"), current, info=store, allow_containerd_store=True))


def test_engine_down_and_no_way_to_stop_it(roots: tuple[Path, Path]) -> None:
    current, tmp = roots
    b = blockers(facts(tmp, str(tmp / "new"), current, info=None, engine_error="connection refused", control_ok=False))
    assert "connection refused" in b["engine"].summary
    assert "--stop-command" in b["control"].fix


def test_selinux_without_tools_gives_the_commands(roots: tuple[Path, Path]) -> None:
    current, tmp = roots
    b = blockers(facts(tmp, str(tmp / "new"), current, selinux=True, selinux_tools=False))
    assert f"semanage fcontext -a -e /var/lib/docker {tmp / 'new'}" in b["selinux"].fix
    assert f"restorecon -R {tmp / 'new'}" in b["selinux"].fix


def _finding(f: plan.Facts, name: str) -> plan.Finding:
    return next(x for x in plan.preflight(f) if x.id.endswith("." + name))


def test_dockerd_validate_results(roots: tuple[Path, Path]) -> None:
    from opsbook.runbooks.docker_root.validate import Validation

    current, tmp = roots
    unknown = (
        "unable to configure the Docker daemon with file daemon.json: the following directives don't "
        "match any configuration option: no-such-option"
    )
    cases = {
        "current refused": (Validation(True, unknown), Validation(True, unknown), False, "already refuses"),
        "new refused": (Validation(True), Validation(True, "bad data-root"), False, "refuses the new"),
        "both fine": (Validation(True), Validation(True), True, "accepts the current and the new"),
        "no --validate": (Validation(False, dockerd="/usr/sbin/dockerd"), Validation(False), True, "not validated"),
    }
    for name, (cur, new, ok, words) in cases.items():
        found = _finding(facts(tmp, str(tmp / "new"), current, current_validation=cur, new_validation=new), "validate")
        assert found.ok is ok and words in found.summary, name
    assert (
        unknown
        in _finding(
            facts(
                tmp,
                str(tmp / "new"),
                current,
                current_validation=cases["current refused"][0],
                new_validation=cases["current refused"][1],
            ),
            "validate",
        ).summary
    )


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_dockerd_refuses_are_refused(roots: tuple[Path, Path], constant: str) -> None:
    current, tmp = roots
    (tmp / "daemon.json").write_text('{"max-concurrent-downloads": ' + constant + "}\n")
    b = blockers(facts(tmp, str(tmp / "new"), current))
    assert f"{constant.lstrip('-')} is not a JSON value" in b["daemon_json"].summary


def test_snapshotter_in_daemon_json_counts_when_the_engine_is_down(roots: tuple[Path, Path]) -> None:
    current, tmp = roots
    (tmp / "daemon.json").write_text(json.dumps({"features": {"containerd-snapshotter": True}}))
    b = blockers(facts(tmp, str(tmp / "new"), current, info=None, engine_error="down"))
    assert "features.containerd-snapshotter" in b["image_store"].summary
    assert "image_store" not in blockers(
        facts(tmp, str(tmp / "new"), current, info=None, engine_error="down", allow_containerd_store=True)
    )


def test_same_filesystem_is_a_warning_with_the_rename_hint(roots: tuple[Path, Path]) -> None:
    current, tmp = roots
    found = _finding(facts(tmp, str(tmp / "new"), current), "same_filesystem")
    assert found.ok and found.warning
    assert "frees no space" in found.summary and f"mv {current} {tmp / 'new'}" in found.fix


def test_mount_ordering_advice_without_systemd(roots: tuple[Path, Path]) -> None:
    import subprocess

    from tests.peers import need_root

    need_root()
    current, tmp = roots
    disk = tmp / "disk"  # TARGET on a filesystem of its own, mounted at boot on a real host
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "opsbook-test", str(disk)], check=True)
    try:
        found = _finding(facts(tmp, str(disk / "docker"), current, systemd=False), "mount_order")
        assert found.ok and "starts only after that filesystem is mounted" in found.summary
        assert "same_filesystem" not in {
            f.id.rsplit(".", 1)[1] for f in plan.preflight(facts(tmp, str(disk / "docker"), current, systemd=False))
        }
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_symlinked_target_blocks(roots: tuple[Path, Path]) -> None:
    current, tmp = roots
    (tmp / "elsewhere").mkdir()
    (tmp / "new").symlink_to(tmp / "elsewhere")
    assert "is a symlink" in blockers(facts(tmp, str(tmp / "new"), current))["target_empty"].summary


def test_mounts_below_leaves_out_the_engines_own(tmp_path: Path) -> None:
    root = tmp_path / "docker"
    root.mkdir()
    r = str(root)
    lines = [
        f"36 35 98:0 / {r} rw - ext4 /dev/vda rw",  # dockerd's private bind of the root itself
        f"40 36 0:50 / {r}/overlay2/abc/merged rw - overlay overlay rw",
        f"41 36 0:51 / {r}/containers/abc/mounts/shm rw - tmpfs shm rw",
        f"42 36 0:52 / {r}/volumes/scratch/_data rw - tmpfs tmpfs rw",
        f"43 36 0:53 / {r}/volumes/disk rw - xfs /dev/sdb1 rw",
        f"44 36 0:54 / {r}/volumes/other/_data rw - ext4 /dev/sdc1 rw",
        f"45 36 0:55 / {r}-other rw - ext4 /dev/sdd1 rw",
    ]
    info_file = tmp_path / "mountinfo"
    info_file.write_text("\n".join(lines) + "\n")
    found = host.mounts_below(r, volumes_with_options=frozenset({"scratch"}), mountinfo=str(info_file))
    assert [m.mount_point for m in found] == [f"{r}/volumes/disk", f"{r}/volumes/other/_data"]


def test_same_filesystem_even_when_the_engine_bind_mounts_its_root(roots: tuple[Path, Path]) -> None:
    """dockerd makes its data-root a (private) bind mount of itself: still the same filesystem."""
    import subprocess

    from tests.peers import need_root

    need_root()
    current, tmp = roots
    subprocess.run(["mount", "--bind", str(current), str(current)], check=True)
    try:
        assert host.mount_of(str(current)).mount_point == str(current)
        found = _finding(facts(tmp, str(tmp / "new"), current), "same_filesystem")
        assert found.warning and "frees no space" in found.summary
    finally:
        subprocess.run(["umount", str(current)], check=True)
