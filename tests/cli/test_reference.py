"""The reference in docs/ is generated from the commands: it must not be stale, and every command documents itself."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from opsbook.cli import reference
from tests.helpers import REPO, run_cli

DOCS = REPO / "docs"
COMMANDS = reference.commands()


def test_generated_reference_and_man_page_are_current() -> None:
    for name, make in reference.OUTPUTS.items():
        assert (DOCS / name).read_text(encoding="utf-8") == make(), (
            f"docs/{name} is stale: run 'make docs' (python -m opsbook.cli.reference docs)"
        )
    assert reference.main(["--check", str(DOCS)]) == 0


def test_check_mode_names_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cli.md").write_text("old\n")
    assert reference.main(["--check", str(tmp_path)]) == 1
    assert "cli.md" in capsys.readouterr().err


@pytest.mark.parametrize("doc", COMMANDS, ids=[d.path for d in COMMANDS])
def test_every_command_has_help_and_is_in_the_reference(doc: reference.CommandDoc) -> None:
    assert doc.help, f"{doc.path} has no help text"
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert f"`{doc.path}`" in text
    if not doc.subcommands:  # a leaf command: what a user runs, with examples
        assert "Examples:" in doc.epilog, f"{doc.path} shows no examples in its help"


@pytest.mark.parametrize("doc", [d for d in COMMANDS if not d.subcommands], ids=lambda d: d.path)
def test_every_command_help_shows_its_examples(doc: reference.CommandDoc, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers import run_main

    result = run_main(capsys, *doc.path.split()[1:], "--help")
    assert result.code == 0, result.err
    assert "Examples:" in result.out and doc.help.splitlines()[0][:40] in " ".join(result.out.split())


def test_the_man_page_is_roff_with_every_command() -> None:
    page = (DOCS / "opsbook.1").read_text(encoding="utf-8")
    assert page.startswith(".TH OPSBOOK 1 ")
    for doc in COMMANDS[1:]:
        assert f".SS {doc.path.replace('-', chr(92) + '-')}" in page


def test_exit_codes_match_the_status_model() -> None:
    from opsbook.runbooks.model import Status

    assert [(code, name) for code, name, _ in reference.EXIT_CODES] == [(s.exit_code, s.value) for s in Status]


SCHEMA = json.loads((DOCS / "report.schema.json").read_text())


@pytest.mark.parametrize(
    "args",
    [
        ["docker-root", "status", "--docker-host", "unix:///nonexistent/d.sock", "--daemon-json", "/nonexistent.json"],
        [
            "docker-root",
            "move",
            "/srv/new-root",
            "--dry-run",
            "--docker-host",
            "unix:///nonexistent/d.sock",
            "--daemon-json",
            "/nonexistent.json",
            "--stop-command",
            "true",
            "--start-command",
            "true",
        ],
        ["dns", "check", "--dns", "127.0.0.1:9", "--name", "example.test", "--host-name", "", "--timeout", "0.3"],
    ],
    ids=["status", "move-dry-run", "dns"],
)
def test_json_reports_follow_the_schema(args: list[str], tmp_path: Path) -> None:
    result = (
        run_cli(*args, "--state-dir", str(tmp_path / "s"), "-f", "json")
        if args[0] == "docker-root"
        else run_cli(*args, "-f", "json")
    )
    assert result.out, result.err
    doc = json.loads(result.out)
    jsonschema.validate(doc, SCHEMA)
    assert doc["format_version"].startswith("1.")
    assert result.code == {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}[doc["status"]]
    assert os.path.exists(DOCS / "report.schema.json")
