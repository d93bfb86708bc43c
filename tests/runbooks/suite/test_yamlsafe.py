"""Bounded YAML parsing: positions, size limit, anchor bombs, nesting, duplicates."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from opsbook.runbooks.errors import InputError
from opsbook.runbooks.suite.yamlsafe import MAX_ALIASES, MAX_FILE_BYTES, Mark, SuiteError, load_file, parse_yaml


def test_positions_are_one_based_and_keys_are_tracked() -> None:
    root = parse_yaml("version: 1\nchecks:\n  - name: a\n    runbook: winrm\n", "s.yaml")
    assert root is not None
    assert root.keys["checks"] == Mark("s.yaml", 2, 1)
    item = root.value["checks"].value[0]
    assert item.value["runbook"].mark == Mark("s.yaml", 4, 14)
    assert item.keys["runbook"] == Mark("s.yaml", 4, 5)
    assert root.plain() == {"version": 1, "checks": [{"name": "a", "runbook": "winrm"}]}


def test_scalars_keep_yaml_types() -> None:
    root = parse_yaml("a: 1\nb: 2.5\nc: true\nd: null\ne: '1'\nf: 2026-01-01\n", "t.yaml")
    assert root is not None
    assert root.plain() == {"a": 1, "b": 2.5, "c": True, "d": None, "e": "1", "f": "2026-01-01"}


def test_syntax_error_has_file_line_col() -> None:
    with pytest.raises(SuiteError) as err:
        parse_yaml("version: 1\nchecks:\n  - name: [a\n", "bad.yaml")
    assert str(err.value).startswith("bad.yaml:4:1: invalid YAML")
    assert isinstance(err.value, InputError)


def test_duplicate_key_is_an_error_with_both_lines() -> None:
    with pytest.raises(SuiteError, match=r"^d\.yaml:3:1: duplicate key 'a' \(first at line 1\)"):
        parse_yaml("a: 1\nb: 2\na: 3\n", "d.yaml")


def test_billion_laughs_fails_fast() -> None:
    lines = ['x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        refs = ",".join([f"*a{i - 1}"] * 10)
        lines.append(f"x{i}: &a{i} [{refs}]")
    with pytest.raises(SuiteError, match=r"anchor bomb|too many YAML aliases"):
        parse_yaml("\n".join(lines) + "\n", "bomb.yaml")


def test_many_aliases_are_refused_while_composing() -> None:
    text = "a: &x 1\nb: [" + ",".join(["*x"] * (MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(SuiteError, match=r"^many\.yaml:2:\d+: too many YAML aliases"):
        parse_yaml(text, "many.yaml")


def test_a_fleet_suite_may_reuse_an_anchor_in_every_entry() -> None:
    # x- keys hold anchors; a 300-entry fleet that writes `dns: *dns` each time is ordinary
    lines = ["version: 1", "x-dns: &dns [10.0.0.1, 10.0.0.2]", "checks:"]
    for i in range(300):
        lines += [f"  - name: e{i}", "    runbook: adsync", "    with: {domain: corp.test, dns: *dns}"]
    root = parse_yaml("\n".join(lines) + "\n", "fleet.yaml")
    assert root is not None
    entries = root.value["checks"].value
    assert len(entries) == 300
    assert entries[299].value["with"].value["dns"].plain() == ["10.0.0.1", "10.0.0.2"]


def test_alias_bomb_at_the_limits_fails_in_well_under_a_second() -> None:
    # every alias the composer allows, each pointing at a 1000-node anchor: 1 000 000 nodes if expanded
    anchor = "[" + ",".join(["1"] * 1000) + "]"
    text = f"a: &big {anchor}\nb: [" + ",".join(["*big"] * (MAX_ALIASES - 1)) + "]\n"
    started = time.perf_counter()
    with pytest.raises(SuiteError, match=r"anchor bomb"):
        parse_yaml(text, "wide.yaml")
    assert time.perf_counter() - started < 1.0


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(SuiteError, match=r"recursive YAML alias|expand"):
        parse_yaml("a: &x [1, *x]\n", "rec.yaml")


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    with pytest.raises(SuiteError, match="nested too deeply"):
        parse_yaml("a: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml")


def test_merge_keys_and_python_tags_are_refused() -> None:
    with pytest.raises(SuiteError, match="merge keys"):
        parse_yaml("a: &x {b: 1}\nc:\n  <<: *x\n", "m.yaml")
    with pytest.raises(SuiteError, match=r"^p\.yaml:1:4: invalid YAML"):
        parse_yaml("a: !!python/object/apply:os.system ['true']\n", "p.yaml")


def test_oversize_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    # invalid YAML on purpose: a parse would report a syntax error, not the size
    path.write_bytes(b"version: [\n" + b"#" * (MAX_FILE_BYTES + 10))
    with pytest.raises(SuiteError, match=r"huge\.yaml: file too large"):
        load_file(path)


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="cannot read suite file"):
        load_file(tmp_path / "missing.yaml")
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(SuiteError, match="not UTF-8"):
        load_file(path)
