"""${...} references: environment, fallbacks, host facts, secrets masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsbook.runbooks.secrets import Secret
from opsbook.runbooks.suite.refs import Resolver, UnresolvedReference, host_facts, reveal
from opsbook.runbooks.suite.yamlsafe import Mark, SuiteError, YNode

HERE = Mark("s.yaml", 7, 9)


def node(value: object) -> YNode:
    if isinstance(value, list):
        return YNode([node(v) for v in value], HERE)
    return YNode(value, HERE)


def facts(domain: str = "corp.test", servers: list[str] | None = None) -> dict:
    return {
        "host.domain": lambda: domain,
        "host.nameservers": lambda: servers or ["127.0.40.1", "127.0.40.2"],
        "host.hostname": lambda: "box",
    }


def test_plain_values_pass_through() -> None:
    r = Resolver(environ={}, facts=facts())
    assert r.resolve(node(5)) == 5
    assert r.resolve(node("no refs")) == "no refs"
    assert r.resolve(node(["a", 2])) == ["a", 2]
    assert r.resolve(node("costs $5")) == "costs $5"
    assert r.resolve(node("literal $${HOME}")) == "literal ${HOME}"


def test_environment_values_are_secrets_and_masked() -> None:
    r = Resolver(environ={"PW": "hunter2", "ID": "tenant-42"}, facts=facts(), allowed_env=["PW", "ID"])
    value = r.resolve(node("${PW}"))
    assert isinstance(value, Secret) and value.reveal() == "hunter2"
    assert "hunter2" not in repr(value)
    mixed = r.resolve(node("id=${ID};x"))
    assert isinstance(mixed, Secret) and mixed.reveal() == "id=tenant-42;x"
    assert r.scrub("bad value 'hunter2' and id=tenant-42;x") == "bad value '***' and ***"


def test_unset_variable_is_an_error_with_the_position() -> None:
    r = Resolver(environ={}, facts=facts(), allowed_env=["MISSING_VAR"])
    with pytest.raises(UnresolvedReference) as err:
        r.resolve(node("${MISSING_VAR}"))
    assert str(err.value) == "s.yaml:7:9: environment variable MISSING_VAR is not set (referenced as ${MISSING_VAR})"
    with pytest.raises(UnresolvedReference):  # an empty variable counts as unset
        Resolver(environ={"E": ""}, facts=facts(), allowed_env=["E"]).resolve(node("${E}"))


def test_fallbacks_nest() -> None:
    r = Resolver(environ={}, facts=facts(domain="lan.test"), allowed_env=["DOMAIN"])
    assert r.resolve(node("${DOMAIN:-corp.example.com}")) == "corp.example.com"
    assert r.resolve(node("${DOMAIN:-${host.domain}}")) == "lan.test"
    r2 = Resolver(environ={"DOMAIN": "env.test"}, facts=facts(), allowed_env=["DOMAIN"])
    assert reveal(r2.resolve(node("${DOMAIN:-${host.domain}}"))) == "env.test"


def test_whole_value_list_fact_becomes_a_list() -> None:
    r = Resolver(environ={}, facts=facts(servers=["127.0.40.1", "[::1]"]))
    assert r.resolve(node("${host.nameservers}")) == ["127.0.40.1", "[::1]"]
    assert r.resolve(node(["${host.nameservers}", "127.0.0.9"])) == ["127.0.40.1", "[::1]", "127.0.0.9"]
    assert r.resolve(node("ns=${host.nameservers}")) == "ns=127.0.40.1,[::1]"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${host.colour}", "unknown host fact"),
        ("${1BAD}", "invalid reference"),
        ("${A", "unterminated"),
        ("${host.domain:-x}", "takes no fallback"),
    ],
)
def test_bad_references(text: str, message: str) -> None:
    with pytest.raises(SuiteError, match=message):
        Resolver(environ={}, facts=facts()).resolve(node(text))


def test_host_facts_from_a_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch corp.test other.test\nnameserver 127.0.40.1\nnameserver ::1\noptions ndots:2\n")
    found = host_facts(str(conf))
    assert found["host.domain"]() == "corp.test"
    assert found["host.nameservers"]() == ["127.0.40.1", "[::1]"]
    conf.write_text("domain first.test\nsearch second.test\n")
    assert host_facts(str(conf))["host.domain"]() == "first.test"
    with pytest.raises(LookupError, match="no 'nameserver' line"):
        host_facts(str(conf))["host.nameservers"]()


def test_missing_fact_is_an_unresolved_reference(tmp_path: Path) -> None:
    r = Resolver(environ={}, facts=host_facts(str(tmp_path / "absent.conf")))
    with pytest.raises(UnresolvedReference, match=r"\$\{host.nameservers\}: cannot read"):
        r.resolve(node("${host.nameservers}"))


def test_only_declared_or_opsbook_variables_are_read() -> None:
    env = {"AWS_SECRET_ACCESS_KEY": "aws-key-value", "OPSBOOK_PW": "pw-value", "CORP_PW": "corp-value"}
    r = Resolver(environ=env, facts=facts(), allowed_env=["CORP_PW"])
    assert reveal(r.resolve(node("${OPSBOOK_PW}"))) == "pw-value"
    assert reveal(r.resolve(node("${CORP_PW}"))) == "corp-value"
    for text in (
        "${AWS_SECRET_ACCESS_KEY}",
        "x-${AWS_SECRET_ACCESS_KEY:-none}",
        "${OPSBOOK_X:-${AWS_SECRET_ACCESS_KEY}}",
    ):
        with pytest.raises(SuiteError) as err:
            r.resolve(node(text))
        assert str(err.value) == (
            "s.yaml:7:9: ${AWS_SECRET_ACCESS_KEY}: the suite does not declare AWS_SECRET_ACCESS_KEY; "
            "list it under the top-level 'env:' (or use a name starting with OPSBOOK_)"
        )
    assert "aws-key-value" not in r.scrub.secrets
