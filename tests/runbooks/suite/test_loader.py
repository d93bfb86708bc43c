"""Suite structure: keys, types, runbooks, names, includes, cycles, defaults cascade."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from opsbook.runbooks.suite import SuiteError, load_suite

SuiteFile = Callable[..., Path]


def test_a_valid_suite_loads_with_defaults_and_positions(suite_file: SuiteFile) -> None:
    path = suite_file(
        """
        version: 1
        defaults:
          timeout: 2
          concurrency: 3
          deadline: 30
        checks:
          - name: dc-dns
            runbook: adsync
            with:
              domain: corp.example.com
              dns: [10.0.0.1, 10.0.0.2]
          - name: fleet
            runbook: winrm
            deadline: 5
            optional: true
            when: {path_exists: /etc, env_set: [HOME]}
            with:
              hosts: [a, b]
        """
    )
    suite = load_suite(path)
    assert [e.name for e in suite.entries] == ["dc-dns", "fleet"]
    assert suite.concurrency == 3 and suite.deadline == 30
    dns = suite.entry("dc-dns")
    assert dns.command == "adsync check"
    assert dns.options["dns"].node.plain() == ["10.0.0.1", "10.0.0.2"]
    assert dns.options["domain"].key_mark.line == 10
    assert set(dns.defaults) == {"timeout"}  # suite-wide settings are not command options
    fleet = suite.entry("fleet")
    assert fleet.deadline == 5 and fleet.optional
    assert fleet.when is not None and fleet.when.path_exists == ["/etc"] and fleet.when.env_set == ["HOME"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\nchecks: []\nextra: 1\n", r":3:1: unknown key 'extra' in the suite file"),
        ("checks: []\n", r":1:1: missing 'version: 1'"),
        ("version: 2\nchecks: []\n", r":1:10: unsupported suite version 2"),
        ("version: true\nchecks: []\n", r":1:10: unsupported suite version True"),
        ("version: 1\nchecks: {a: 1}\n", r":2:9: checks must be a list, not a mapping"),
        (
            "version: 1\nchecks:\n  - name: a\n    runbook: ftp\n",
            r":4:14: unknown runbook 'ftp' \(expected one of: winrm, adsync, dns, docker-root\)",
        ),
        ("version: 1\nchecks:\n  - runbook: winrm\n", r":3:5: check has no 'name'"),
        (
            "version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    with: [1]\n",
            r":5:11: with must be a mapping, not a list",
        ),
        (
            "version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    colour: red\n",
            r":5:5: unknown key 'colour' in a check",
        ),
        ("version: 1\nchecks:\n  - name: 'a b'\n    runbook: winrm\n", r":3:11: name must be a string"),
        ("version: 1\nchecks:\n  - name: 12\n    runbook: winrm\n", None),
        (
            "version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    with: {hosts: {x: 1}}\n",
            r":5:19: with.hosts must be a value or a list of values, not a mapping",
        ),
        (
            "version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    with: {--port: 1}\n",
            r":5:12: with: write option names without dashes",
        ),
        (
            "version: 1\ndefaults: {concurrency: 0}\nchecks: []\n",
            r":2:25: defaults.concurrency must be a positive integer up to 256, not integer 0",
        ),
        ("version: 1\ndefaults: {concurrency: 2.5}\nchecks: []\n", r"defaults.concurrency must be a positive integer"),
        (
            "version: 1\ndefaults: {deadline: -1}\nchecks: []\n",
            r"defaults.deadline must be a positive number of seconds",
        ),
        (
            "version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    deadline: soon\n",
            r":5:15: deadline must be a positive number",
        ),
        (
            "version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    optional: yes please\n",
            r":5:15: optional must be true or false",
        ),
        (
            "version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    when: {port_open: 1}\n",
            r":5:12: unknown key 'port_open' in when",
        ),
        (
            "version: 1\nchecks:\n  - name: a\n    runbook: winrm\n    when: {env_set: 'A-B'}\n",
            r"when.env_set: 'A-B' is not a variable name",
        ),
        ("version: 1\nenv: PW\nchecks: []\n", r":2:6: env must be a list of environment variable names, not a string"),
        ("version: 1\nenv: [PW, 'A-B']\nchecks: []\n", r":2:11: env: 'A-B' is not an environment variable name"),
        ("version: 1\nenv:\n  - PW\n  - PW\nchecks: []\n", r":4:5: env: PW is listed twice \(first at line 3\)"),
        ("version: 1\n", r":1:1: the suite has no checks"),
        ("", r":1:1: empty suite file"),
        ("- 1\n", r":1:1: a suite file must be a mapping, not a list"),
    ],
)
def test_structure_errors_point_at_the_line(suite_file: SuiteFile, text: str, expected: str | None) -> None:
    path = suite_file(text, "bad.yaml")
    if expected is None:  # a YAML integer name is refused like any non-string
        with pytest.raises(SuiteError, match="name must be a string"):
            load_suite(path)
        return
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    message = str(err.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message
    import re

    assert re.search(expected, message), message


def test_duplicate_names_across_includes(suite_file: SuiteFile) -> None:
    suite_file("version: 1\nchecks:\n  - name: dup\n    runbook: winrm\n", "sub/extra.yaml")
    top = suite_file("version: 1\ninclude: [sub/extra.yaml]\nchecks:\n  - name: dup\n    runbook: adsync\n")
    with pytest.raises(SuiteError) as err:
        load_suite(top)
    assert str(err.value) == (
        f"{top}:4:11: duplicate check name 'dup' (first defined at {os.path.join(os.path.dirname(str(top)), 'sub/extra.yaml')}:3:11)"
    )


def test_includes_are_relative_to_the_including_file_and_cascade_defaults(suite_file: SuiteFile) -> None:
    suite_file(
        "version: 1\ndefaults: {warn-days: 40}\ninclude: [../common/base.yaml]\nchecks:\n  - name: two\n    runbook: winrm\n",
        "nested/mid.yaml",
    )
    suite_file("version: 1\nchecks:\n  - name: three\n    runbook: winrm\n", "common/base.yaml")
    top = suite_file(
        "version: 1\ndefaults: {timeout: 3, warn-days: 30}\ninclude: [nested/mid.yaml]\n"
        "checks:\n  - name: one\n    runbook: winrm\n"
    )
    suite = load_suite(top)
    assert [e.name for e in suite.entries] == ["three", "two", "one"]
    assert len(suite.files) == 3 and suite.files[0] == str(top)
    assert suite.entry("one").defaults["warn-days"].node.value == 30
    assert suite.entry("two").defaults["warn-days"].node.value == 40
    assert suite.entry("three").defaults["warn-days"].node.value == 40  # mid's defaults reach its includes
    assert suite.entry("three").defaults["timeout"].node.value == 3


def test_diamond_includes_are_read_once(suite_file: SuiteFile) -> None:
    suite_file("version: 1\nchecks:\n  - name: shared\n    runbook: winrm\n", "shared.yaml")
    suite_file("version: 1\ninclude: [shared.yaml]\n", "a.yaml")
    suite_file("version: 1\ninclude: [shared.yaml]\n", "b.yaml")
    top = suite_file("version: 1\ninclude: [a.yaml, b.yaml]\n")
    assert [e.name for e in load_suite(top).entries] == ["shared"]


def test_include_cycle_is_reported_at_the_include_line(suite_file: SuiteFile) -> None:
    suite_file("version: 1\ninclude:\n  - top.yaml\nchecks: []\n", "b.yaml")
    suite_file("version: 1\ninclude: [b.yaml]\n", "a.yaml")
    top = suite_file("version: 1\ninclude: [a.yaml]\nchecks:\n  - name: x\n    runbook: winrm\n", "top.yaml")
    with pytest.raises(SuiteError) as err:
        load_suite(top)
    assert str(err.value).endswith("b.yaml:3:5: include cycle: top.yaml -> a.yaml -> b.yaml -> top.yaml")


def test_self_include_and_missing_include(suite_file: SuiteFile) -> None:
    top = suite_file("version: 1\ninclude: suite.yaml\n")
    with pytest.raises(SuiteError, match=r":2:10: include cycle: suite.yaml -> suite.yaml"):
        load_suite(top)
    top = suite_file("version: 1\ninclude: [nope.yaml]\n")
    with pytest.raises(SuiteError, match=r":2:11: included file .*nope.yaml does not exist"):
        load_suite(top)


def test_suite_wide_defaults_only_in_the_top_file(suite_file: SuiteFile) -> None:
    suite_file("version: 1\ndefaults: {concurrency: 2}\nchecks:\n  - name: a\n    runbook: winrm\n", "inc.yaml")
    top = suite_file("version: 1\ninclude: [inc.yaml]\n")
    with pytest.raises(SuiteError, match=r"inc\.yaml:2:12: defaults.concurrency is a suite-wide setting"):
        load_suite(top)


def test_x_keys_hold_anchors_for_reuse(suite_file: SuiteFile) -> None:
    top = suite_file(
        """
        version: 1
        x-dns: &dns [10.0.0.1, 10.0.0.2]
        checks:
          - name: a
            runbook: adsync
            with: {domain: corp.example.com, dns: *dns}
        """
    )
    assert load_suite(top).entry("a").options["dns"].node.plain() == ["10.0.0.1", "10.0.0.2"]


def test_missing_suite_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="suite file does not exist"):
        load_suite(tmp_path / "none.yaml")


def test_env_declarations_from_every_file_are_collected(suite_file: SuiteFile) -> None:
    suite_file("version: 1\nenv: [CORP_CA_DIR]\nchecks: []\n", "inc.yaml")
    path = suite_file(
        "version: 1\nenv: [WINRM_PW, CORP_CA_DIR]\ninclude: inc.yaml\nchecks:\n  - name: a\n    runbook: winrm\n"
    )
    assert load_suite(path).env == ["WINRM_PW", "CORP_CA_DIR"]
