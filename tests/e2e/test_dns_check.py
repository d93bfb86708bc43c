"""``opsbook dns check`` against real dnsmasq servers: healthy, brown-out, SERVFAIL-free REFUSED, down, hung."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest

from tests.e2e.dnsmasq_peer import dnsmasq
from tests.helpers import run_cli
from tests.peers import need_binary

pytestmark = pytest.mark.e2e

PORT = 5393
HEALTHY, SECOND, BROWNOUT, REFUSED, HUNG, DOWN = (f"127.0.93.{i}" for i in range(1, 7))
CANARY, HOST = "intranet.corp.test", "vm7.corp.test"


@pytest.fixture(scope="module")
def lab() -> Iterator[None]:
    need_binary("dnsmasq")
    good = ["--local=/corp.test/", f"--host-record={CANARY},10.1.2.3"]
    with contextlib.ExitStack() as stack:
        stack.enter_context(dnsmasq(HEALTHY, PORT, good))
        stack.enter_context(dnsmasq(SECOND, PORT, good))
        stack.enter_context(dnsmasq(BROWNOUT, PORT, ["--local=/corp.test/", f"--txt-record={CANARY},brown-out"]))
        stack.enter_context(dnsmasq(REFUSED, PORT, []))
        stack.enter_context(dnsmasq(HUNG, PORT, good, paused=True))
        yield


def check(*servers: str, extra: tuple[str, ...] = ()) -> tuple[int, dict[tuple[str, str], dict[str, object]]]:
    args = ["dns", "check", "--name", CANARY, "--host-name", HOST, "--timeout", "1", "-f", "json", *extra]
    for server in servers:
        args += ["--dns", f"{server}:{PORT}"]
    result = run_cli(*args)
    assert "Traceback" not in result.err, result.err
    doc = json.loads(result.out)
    return result.code, {(c["target"].split(":")[0], c["details"]["name"]): c for c in doc["checks"]}


def test_healthy_servers_are_ok(lab: None) -> None:
    code, checks = check(HEALTHY, SECOND)
    assert code == 0, checks
    assert "10.1.2.3" in str(checks[(HEALTHY, CANARY)]["summary"])
    # the host's own name is not in this DNS: fine, all servers agree
    assert checks[(SECOND, HOST)]["status"] == "OK" and "not in DNS" in str(checks[(SECOND, HOST)]["summary"])


def test_brownout_refused_and_hung_servers_are_critical(lab: None) -> None:
    code, checks = check(HEALTHY, BROWNOUT, REFUSED, HUNG, DOWN)
    assert code == 2
    assert checks[(HEALTHY, CANARY)]["status"] == "OK"
    brown = checks[(BROWNOUT, CANARY)]
    assert brown["status"] == "CRITICAL" and "brown-out" in str(brown["summary"])
    assert f"{HEALTHY}:{PORT}" in str(brown["summary"])
    assert checks[(REFUSED, CANARY)]["status"] == "CRITICAL" and "REFUSED" in str(checks[(REFUSED, CANARY)]["summary"])
    for silent in (HUNG, DOWN):
        assert checks[(silent, CANARY)]["status"] == "CRITICAL"
        assert "does not answer" in str(checks[(silent, CANARY)]["summary"])


def test_a_canary_no_server_resolves_is_a_warning(lab: None) -> None:
    code, checks = check(HEALTHY, SECOND, extra=("--name", "missing.corp.test"))
    assert code == 1
    assert checks[(HEALTHY, "missing.corp.test")]["status"] == "WARNING"
    assert "no server resolves" in str(checks[(HEALTHY, "missing.corp.test")]["summary"])


def test_bad_input_is_one_line_exit_3() -> None:
    for args in (
        ["--dns", "dns.example.com"],
        ["--dns", "127.0.0.1", "--dns", "127.0.0.1"],
        ["--dns", "127.0.0.1", "--name", "bad name!"],
        ["--dns", "127.0.0.1", "--host-name", ""],
    ):
        result = run_cli("dns", "check", *args)
        assert result.code == 3, (args, result.out, result.err)
        assert result.err.count("\n") == 1 and result.err.startswith("opsbook: error:"), result.err
