"""The containerd image store: detection (recorded Docker 29 /info, daemon.json), which containerd,
config.toml edited with every other line kept, and the other-clients blocker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsbook.runbooks.docker_root import containerd as ctd
from opsbook.runbooks.docker_root import host, journal, plan
from opsbook.runbooks.docker_root.engine import engine_info

FIXTURES = Path(__file__).parent / "fixtures"

CONFIG = """# keep me
version = 2
root = "/var/lib/containerd"  # images live here
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"  # the socket

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
"""


class _Client:
    def __init__(self, info: dict[str, object]) -> None:
        self._info = info

    def info(self) -> dict[str, object]:
        return self._info


def test_docker29_info_reports_the_containerd_store() -> None:
    info = engine_info(_Client(json.loads((FIXTURES / "docker29_info.json").read_text())))
    assert info.containerd_store and info.server_version == "29.0.1"


def test_locate_system_containerd_from_the_dockerd_flag(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG.replace("/var/lib/containerd", str(tmp_path / "ctd")))
    found = ctd.locate("/var/lib/docker", {}, [["dockerd", "--containerd=/run/x.sock"]], str(cfg))
    assert (found.kind, found.root, found.address) == (ctd.SYSTEM, str(tmp_path / "ctd"), "/run/x.sock")
    assert "--containerd" in found.why


def test_locate_embedded_containerd_under_the_data_root(tmp_path: Path) -> None:
    found = ctd.locate("/srv/docker", {}, [["dockerd", "-H", "fd://"]], str(tmp_path / "absent.toml"))
    assert found.kind == ctd.EMBEDDED and found.root == "/srv/docker/containerd/daemon"


def test_locate_from_daemon_json_and_from_an_existing_config(tmp_path: Path) -> None:
    absent = str(tmp_path / "absent.toml")
    assert ctd.locate("/d", {"containerd": "/run/c.sock"}, [], absent).kind == ctd.SYSTEM
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG)
    found = ctd.locate("/d", {}, [], str(cfg))
    assert found.kind == ctd.SYSTEM and found.address == "/run/containerd/containerd.sock"
    assert found.root == "/var/lib/containerd"


def test_config_with_root_keeps_every_other_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    new = ctd.config_with_root(ctd.read_config(str(path)), "/srv/containerd")
    old_lines, new_lines = CONFIG.splitlines(), new.splitlines()
    assert len(old_lines) == len(new_lines)
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert changed == [
        ('root = "/var/lib/containerd"  # images live here', 'root = "/srv/containerd"  # images live here')
    ]


def test_config_absent_is_created_from_the_defaults(tmp_path: Path) -> None:
    cfg = ctd.read_config(str(tmp_path / "config.toml"))
    text = ctd.config_with_root(cfg, "/srv/containerd")
    assert 'root = "/srv/containerd"' in text and "version = 2" in text
    assert "does not exist" in ctd.config_diff(cfg, text)


def test_invalid_config_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("root = [unclosed\n")
    assert "not valid TOML" in ctd.read_config(str(path)).error


def _facts(tmp: Path, namespaces: list[str], *, allow: bool = False, error: str = "") -> plan.Facts:
    current = tmp / "docker"
    current.mkdir(exist_ok=True)
    (tmp / "daemon.json").write_text(json.dumps({"features": {"containerd-snapshotter": True}}))
    (tmp / "config.toml").write_text(CONFIG)
    located = ctd.Located(
        ctd.SYSTEM, str(tmp / "ctd"), "/run/c.sock", ctd.read_config(str(tmp / "config.toml")), "dockerd --containerd"
    )
    c = plan.ContainerdFacts(located, target=str(tmp / "new-containerd"), namespaces=namespaces, error=error)
    return plan.Facts(
        target=str(tmp / "new"),
        daemon=host.read_daemon_json(str(tmp / "daemon.json")),
        info=None,
        engine_error="down",
        current_root=str(current),
        containerd=c,
        allow_other_clients=allow,
    )


def _by_id(f: plan.Facts) -> dict[str, plan.Finding]:
    return {x.id.rsplit(".", 1)[1]: x for x in plan.preflight(f)}


@pytest.mark.parametrize("others", [["k8s.io"], ["default", "k8s.io"]])
def test_other_namespaces_block_without_the_explicit_option(tmp_path: Path, others: list[str]) -> None:
    found = _by_id(_facts(tmp_path, ["moby", *others]))
    assert not found["containerd_clients"].ok and "k8s.io" in found["containerd_clients"].summary
    assert "--allow-other-containerd-clients" in found["containerd_clients"].fix
    allowed = _by_id(_facts(tmp_path, ["moby", *others], allow=True))
    assert allowed["containerd_clients"].ok and allowed["containerd_clients"].warning
    assert allowed["image_store"].ok and "moves to" in allowed["image_store"].summary


def test_docker_alone_and_an_unreachable_containerd(tmp_path: Path) -> None:
    assert _by_id(_facts(tmp_path, ["moby"]))["containerd_clients"].ok
    down = _by_id(_facts(tmp_path, [], error="connection refused"))
    assert not down["image_store"].ok and "connection refused" in down["image_store"].summary


def test_containerd_target_must_not_overlap(tmp_path: Path) -> None:
    f = _facts(tmp_path, ["moby"])
    assert f.containerd is not None
    f.containerd.target = str(tmp_path / "new" / "containerd")
    found = _by_id(f)
    assert not found["containerd_target"].ok and "overlaps" in found["containerd_target"].summary


def _journal(tmp_path: Path, data: dict[str, object]) -> journal.Journal:
    record = journal.Journal(tmp_path / "state")
    record.data = data
    return record


def test_partial_copies_include_containerds_unless_containerd_runs_on_them(tmp_path: Path) -> None:
    from opsbook.runbooks.docker_root import cleanup

    target, ctarget = tmp_path / "new" / "docker", tmp_path / "new" / "containerd"
    target.mkdir(parents=True)
    ctarget.mkdir()
    record = _journal(
        tmp_path,
        {
            "status": "failed",
            "old_root": str(tmp_path / "old"),
            "target": str(target),
            "containerd": {"old_root": str(tmp_path / "octd"), "target": str(ctarget), "address": ""},
        },
    )
    assert cleanup.partial_copies(record) == [str(target), str(ctarget)]
    # containerd (the one the journal names) runs on that folder now: not a partial copy any more.
    assert cleanup.partial_copies(record, None, [str(ctarget)]) == [str(target)]
    verified = _journal(tmp_path, {**record.data, "verified_at": 1.0})
    assert cleanup.partial_copies(verified) == []


def test_containerd_references_config_and_processes_naming_the_old_root(tmp_path: Path) -> None:
    from opsbook.runbooks.docker_root import cleanup

    old, new = tmp_path / "old-ctd", tmp_path / "new-ctd"
    old.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'version = 2\nroot = "{new}"\n')
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text("")
    assert cleanup.containerd_references(str(old), str(config), proc=str(proc)) == []
    (proc / "4242").mkdir()
    (proc / "4242" / "cmdline").write_bytes(b"/usr/bin/containerd\0--root\0" + str(old).encode() + b"\0")
    refs = cleanup.containerd_references(str(old), str(config), proc=str(proc))
    assert len(refs) == 1 and "pid 4242" in refs[0], refs
    config.write_text(f'version = 2\nroot = "{old}/"\n')
    refs = cleanup.containerd_references(str(old), str(config), proc=str(proc))
    assert refs[0] == f"{config} sets root {old}/", refs
