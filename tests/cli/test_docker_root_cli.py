"""``opsbook docker-root`` through the CLI without an engine: exit codes, refusals, dry-run output.

The engine these commands point at does not exist (a socket path in the test's folder), so
every plan is blocked by "engine reachable"; the full moves run in tests/e2e.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli, run_main


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    old = tmp_path / "docker"
    old.mkdir()
    daemon = tmp_path / "daemon.json"
    daemon.write_text(json.dumps({"data-root": str(old), "log-opts": {"max-size": "10m"}}))
    return {"tmp": tmp_path, "old": old, "daemon": daemon, "state": tmp_path / "state"}


def opts(s: dict[str, Path], *, commands: bool = True) -> list[str]:
    out = [
        "--daemon-json",
        str(s["daemon"]),
        "--docker-host",
        f"unix://{s['tmp']}/no.sock",
        "--state-dir",
        str(s["state"]),
    ]
    if commands:
        out += ["--stop-command", "true", "--start-command", "true"]
    return out


def test_relative_target_is_one_line_exit_3(capsys: pytest.CaptureFixture[str], setup: dict[str, Path]) -> None:
    res = run_main(capsys, "docker-root", "move", "srv/docker", *opts(setup))
    assert res.code == 3
    assert res.out == ""
    assert res.err == "opsbook: error: TARGET 'srv/docker' is not an absolute path (e.g. /srv/docker)\n"


def test_relative_target_under_dry_run_is_a_blocker_exit_2(
    capsys: pytest.CaptureFixture[str], setup: dict[str, Path]
) -> None:
    res = run_main(capsys, "docker-root", "move", "srv/docker", "--dry-run", "-f", "json", *opts(setup))
    assert res.code == 2, res.err
    doc = json.loads(res.out)
    blocker = next(c for c in doc["checks"] if c["id"] == "docker_root.preflight.target")
    assert blocker["status"] == "CRITICAL"
    assert "relative" in blocker["summary"] and "absolute path" in blocker["summary"]
    assert not setup["state"].exists()  # a dry run writes nothing


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--stop-command", "true"], "go together"),
        (["--docker-host", "docker.sock"], "expected unix://PATH"),
        (["--bogus"], "No such option"),
    ],
)
def test_bad_options_exit_3(
    capsys: pytest.CaptureFixture[str], setup: dict[str, Path], args: list[str], words: str
) -> None:
    res = run_main(capsys, "docker-root", "move", str(setup["tmp"] / "new"), "--dry-run", *args)
    assert res.code == 3 and words in res.err and res.err.count("\n") == 1


def test_blocked_dry_run_exit_2_with_reason_and_fix_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], setup: dict[str, Path]
) -> None:
    target = setup["tmp"] / "new"
    before = setup["daemon"].read_bytes()
    res = run_main(capsys, "docker-root", "move", str(target), "--dry-run", *opts(setup), "-f", "json")
    assert res.code == 2, res.err
    doc = json.loads(res.out)
    assert doc["command"] == "docker-root move" and doc["status"] == "CRITICAL"
    assert doc["dry_run"] is True and doc["changed"] is False
    assert doc["plan"]["blockers"] == ["docker_root.preflight.engine"]
    engine = next(c for c in doc["checks"] if c["id"] == "docker_root.preflight.engine")
    assert engine["status"] == "CRITICAL" and "start Docker" in engine["details"]["fix"]
    # the daemon.json diff keeps the other keys and is shown even when blocked
    assert f'+  "data-root": "{target}",' in doc["plan"]["daemon_json_diff"]
    assert '"max-size": "10m"' in doc["plan"]["daemon_json_diff"]
    assert all(s["summary"].startswith("would ") for s in doc["steps"])
    assert not setup["state"].exists() and not target.exists()
    assert setup["daemon"].read_bytes() == before


def test_blocked_move_is_refused_exit_3(capsys: pytest.CaptureFixture[str], setup: dict[str, Path]) -> None:
    res = run_main(capsys, "docker-root", "move", str(setup["tmp"] / "new"), "--yes", *opts(setup), "-f", "json")
    assert res.code == 3
    assert json.loads(res.out)["status"] == "CRITICAL"  # the plan, with its reasons and fixes
    assert res.err.startswith("opsbook: error: move refused: the engine does not answer")
    assert res.err.count("\n") == 1
    assert not setup["state"].exists()


def test_blocked_plan_in_every_format(capsys: pytest.CaptureFixture[str], setup: dict[str, Path]) -> None:
    args = ["docker-root", "move", str(setup["tmp"] / "new"), "--dry-run", *opts(setup)]
    table = run_main(capsys, *args)
    assert table.code == 2 and "-- fix: start Docker" in table.out and "would copy while the engine runs" in table.out
    nagios = run_main(capsys, *args, "-f", "nagios")
    assert nagios.code == 2 and nagios.out.startswith("OPSBOOK CRITICAL - ")
    junit = run_main(capsys, *args, "-f", "junit")
    assert junit.code == 2 and '<failure type="CRITICAL"' in junit.out
    prom = run_main(capsys, *args, "-f", "prometheus")
    assert prom.code == 2 and 'check="docker_root.preflight.engine",name="engine reachable"' in prom.out


def test_no_way_to_stop_the_engine_is_a_blocker(capsys: pytest.CaptureFixture[str], setup: dict[str, Path]) -> None:
    res = run_main(
        capsys,
        "docker-root",
        "move",
        str(setup["tmp"] / "new"),
        "--dry-run",
        *opts(setup, commands=False),
        "-f",
        "json",
    )
    assert res.code == 2
    assert "docker_root.preflight.control" in json.loads(res.out)["plan"]["blockers"]


def test_unfinished_move_elsewhere_blocks(capsys: pytest.CaptureFixture[str], setup: dict[str, Path]) -> None:
    folder = setup["state"] / "docker-root"
    folder.mkdir(parents=True)
    (folder / "journal.json").write_text(
        json.dumps(
            {
                "version": 1,
                "id": "x",
                "status": "in-progress",
                "steps": [],
                "old_root": str(setup["old"]),
                "target": str(setup["tmp"] / "first"),
                "daemon_json": str(setup["daemon"]),
            }
        )
    )
    res = run_main(capsys, "docker-root", "move", str(setup["tmp"] / "second"), "--dry-run", *opts(setup), "-f", "json")
    assert res.code == 2
    blocker = next(c for c in json.loads(res.out)["checks"] if c["id"] == "docker_root.preflight.journal")
    assert "rollback" in blocker["details"]["fix"]


def test_status_with_the_engine_down(capsys: pytest.CaptureFixture[str], setup: dict[str, Path]) -> None:
    res = run_main(capsys, "docker-root", "status", *opts(setup), "-f", "json")
    assert res.code == 3
    doc = json.loads(res.out)
    assert doc["status"] == "UNKNOWN"
    engine = next(c for c in doc["checks"] if c["id"] == "docker_root.engine")
    assert engine["status"] == "UNKNOWN"
    nagios = run_main(capsys, "docker-root", "status", *opts(setup), "-f", "nagios")
    assert nagios.out.startswith("OPSBOOK UNKNOWN - ")


def test_rollback_and_cleanup_without_a_journal(capsys: pytest.CaptureFixture[str], setup: dict[str, Path]) -> None:
    for command in ("rollback", "cleanup"):
        res = run_main(capsys, "docker-root", command, "--yes", *opts(setup))
        assert res.code == 3 and "no move journal" in res.err and res.out == ""
        assert not setup["state"].exists(), f"{command} created the state dir for nothing"


def _journal(setup: dict[str, Path], status: str) -> None:
    folder = setup["state"] / "docker-root"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "journal.json").write_text(
        json.dumps(
            {
                "version": 1,
                "id": "x",
                "status": status,
                "steps": [],
                "old_root": str(setup["old"]),
                "target": str(setup["tmp"] / "new"),
                "daemon_json": str(setup["daemon"]),
                "docker_host": f"unix://{setup['tmp']}/no.sock",
            }
        )
    )


@pytest.mark.parametrize("status", ["in-progress", "failed", "rolled-back"])
def test_cleanup_refuses_before_verification(
    capsys: pytest.CaptureFixture[str], setup: dict[str, Path], status: str
) -> None:
    _journal(setup, status)
    res = run_main(capsys, "docker-root", "cleanup", "--yes", *opts(setup))
    assert res.code == 3 and f"says '{status}', not 'verified'" in res.err
    assert setup["old"].is_dir()


def test_cleanup_refuses_while_the_engine_does_not_answer(
    capsys: pytest.CaptureFixture[str], setup: dict[str, Path]
) -> None:
    _journal(setup, "verified")
    res = run_main(capsys, "docker-root", "cleanup", "--yes", *opts(setup))
    assert res.code == 3 and "cannot confirm it runs on" in res.err
    assert setup["old"].is_dir()


def test_rollback_warns_then_refuses_without_yes_and_a_terminal(setup: dict[str, Path]) -> None:
    _journal(setup, "verified")
    res = run_cli("docker-root", "rollback", *opts(setup))
    assert res.code == 3
    assert "stays behind" in res.err and "give --yes" in res.err
    assert json.loads(setup["daemon"].read_text())["data-root"] == str(setup["old"])


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_main(capsys, "docker-root", "--help")
    assert res.code == 0
    for command in ("status", "move", "rollback", "cleanup"):
        assert command in res.out
