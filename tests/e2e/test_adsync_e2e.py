"""adsync check against real peers: dnsmasq servers, Python DNS/port peers, an nft-filtered namespace."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsbook.runbooks.probes.dns import DnsOutcome, dns_query
from opsbook.runbooks.probes.tcp import PortState
from opsbook.runbooks.probes.udp import cldap_payload, dns_payload, kerberos_payload, udp_probe
from tests.e2e.dnsmasq_peer import (
    DeadServer,
    ServfailServer,
    UdpResponder,
    brownout_zone,
    dnsmasq,
    domain_controller,
    healthy_zone,
    nxdomain_zone,
    refused_zone,
)
from tests.helpers import run_main
from tests.peers import need_binary, need_root

pytestmark = pytest.mark.e2e

DOMAIN = "corp.test"
DCS = {"dc1.corp.test": "127.0.20.11", "dc2.corp.test": "127.0.20.12"}
HEALTHY, BROWNOUT, REFUSED, SERVFAIL, DEAD = (f"127.0.10.{i}:5353" for i in range(1, 6))
NXDOMAIN, HUNG = "127.0.10.7:5353", "127.0.10.8:5353"


@pytest.fixture(scope="module")
def dns_peers() -> Iterator[None]:
    need_binary("dnsmasq")
    with contextlib.ExitStack() as stack:
        stack.enter_context(dnsmasq("127.0.10.1", 5353, healthy_zone(DOMAIN, DCS)))
        stack.enter_context(dnsmasq("127.0.10.2", 5353, brownout_zone(DOMAIN, list(DCS))))
        stack.enter_context(dnsmasq("127.0.10.3", 5353, refused_zone()))
        stack.enter_context(ServfailServer("127.0.10.4", 5353))
        stack.enter_context(DeadServer("127.0.10.5", 5353))
        stack.enter_context(dnsmasq("127.0.10.7", 5353, nxdomain_zone(DOMAIN)))
        stack.enter_context(dnsmasq("127.0.10.8", 5353, healthy_zone(DOMAIN, DCS), paused=True))
        yield


def _checks(out: str) -> dict[tuple[str, str], dict]:
    doc = json.loads(out)
    return {(c["id"], c["target"]): c for c in doc["checks"]}


def test_dns_query_classifies_each_real_server(dns_peers: None) -> None:
    srv = f"_ldap._tcp.dc._msdcs.{DOMAIN}"
    data = dns_query("127.0.10.1", srv, "SRV", port=5353, timeout=1)
    assert data.outcome is DnsOutcome.DATA
    assert sorted(t for t, _ in data.srv_targets()) == sorted(DCS)
    assert dns_query("127.0.10.1", "nothere.corp.test", "A", port=5353, timeout=1).outcome is DnsOutcome.NXDOMAIN
    assert dns_query("127.0.10.2", srv, "SRV", port=5353, timeout=1).outcome is DnsOutcome.NODATA
    assert dns_query("127.0.10.3", srv, "SRV", port=5353, timeout=1).outcome is DnsOutcome.REFUSED
    assert dns_query("127.0.10.4", srv, "SRV", port=5353, timeout=1).outcome is DnsOutcome.SERVFAIL
    dead = dns_query("127.0.10.5", srv, "SRV", port=5353, timeout=0.3)
    assert dead.outcome is DnsOutcome.TIMEOUT
    assert 0.25 <= dead.latency_s < 1.0
    tcp = dns_query("127.0.10.1", srv, "SRV", port=5353, timeout=1, tcp=True)
    assert (tcp.outcome, tcp.transport) == (DnsOutcome.DATA, "tcp")


def test_brownout_primary_is_critical_and_predicts_no_failover(dns_peers: None, capsys) -> None:
    with domain_controller("127.0.20.11"), domain_controller("127.0.20.12"):
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            DOMAIN,
            "--dns",
            BROWNOUT,
            "--dns",
            HEALTHY,
            "--timeout",
            "1",
            "-f",
            "json",
        )
    assert r.code == 2, r.out + r.err
    checks = _checks(r.out)
    primary = checks[("adsync.dns.records", BROWNOUT)]
    assert primary["status"] == "CRITICAL" and "BROWN-OUT" in primary["summary"]
    assert checks[("adsync.dns.records", HEALTHY)]["status"] == "OK"
    failover = checks[("adsync.dns.failover", DOMAIN)]
    assert failover["status"] == "CRITICAL"
    assert f"primary {BROWNOUT} answers NODATA" in failover["summary"]
    assert f"Windows will not fail over to {HEALTHY}" in failover["summary"]
    # DCs were still discovered from the healthy server, and their ports are open.
    assert checks[("adsync.dc.discovery", DOMAIN)]["metrics"]["dcs"] == 2
    for name in DCS:
        ports = checks[("adsync.dc.ports", name)]
        assert ports["status"] == "OK", ports["summary"]
        assert ports["details"]["rpc_dynamic"]["probed"] == 0
        assert "RPC dynamic range not probed" in ports["summary"]


def test_healthy_primary_and_dead_secondary(dns_peers: None, capsys) -> None:
    with domain_controller("127.0.20.11"), domain_controller("127.0.20.12"):
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            DOMAIN,
            "--dns",
            HEALTHY,
            "--dns",
            DEAD,
            "--timeout",
            "0.5",
            "-f",
            "json",
        )
    checks = _checks(r.out)
    assert checks[("adsync.dns.failover", DOMAIN)]["status"] == "OK"
    assert checks[("adsync.dns.records", DEAD)]["status"] == "WARNING"
    assert checks[("adsync.dns.tcp", DEAD)]["status"] == "WARNING"
    assert r.code == 1, r.out


def test_dead_primary_warns_about_failover_delay(dns_peers: None, capsys) -> None:
    r = run_main(
        capsys,
        "adsync",
        "check",
        "--domain",
        DOMAIN,
        "--dns",
        DEAD,
        "--dns",
        HEALTHY,
        "--dc",
        "127.0.20.11",
        "--ports",
        "389/tcp",
        "--timeout",
        "0.5",
        "-f",
        "json",
    )
    failover = _checks(r.out)[("adsync.dns.failover", DOMAIN)]
    assert failover["status"] == "WARNING"
    assert f"primary {DEAD} does not answer" in failover["summary"]
    assert "after waiting ~1 s" in failover["summary"]
    # KB320760: Windows puts the answering server first and resets the order every 15 minutes.
    assert "every 15 minutes (KB320760)" in failover["summary"]
    assert "every lookup" not in failover["summary"]


def test_servfail_primary_failover_uncertain_and_refused(dns_peers: None, capsys) -> None:
    r = run_main(
        capsys,
        "adsync",
        "check",
        "--domain",
        DOMAIN,
        "--dns",
        SERVFAIL,
        "--dns",
        REFUSED,
        "--dns",
        HEALTHY,
        "--dc",
        "127.0.20.11",
        "--ports",
        "389/tcp",
        "--timeout",
        "0.5",
        "-f",
        "json",
    )
    checks = _checks(r.out)
    failover = checks[("adsync.dns.failover", DOMAIN)]
    assert failover["status"] == "WARNING"
    assert "failover uncertain" in failover["summary"]
    assert checks[("adsync.dns.records", SERVFAIL)]["details"]["answers"][0]["outcome"] == "servfail"
    assert checks[("adsync.dns.records", REFUSED)]["details"]["answers"][0]["outcome"] == "refused"
    # 389/tcp on 127.0.20.11: nothing listens -> closed, CRITICAL, says what it breaks.
    ports = checks[("adsync.dc.ports", "127.0.20.11")]
    assert ports["status"] == "CRITICAL"
    assert ports["details"]["ports"][0]["state"] == "closed"
    assert "import and export" in ports["details"]["ports"][0]["breaks"]


def test_udp_probe_open_closed_with_real_payloads() -> None:
    with UdpResponder("127.0.20.21", 389) as ldap, UdpResponder("127.0.20.21", 88) as kdc:
        assert udp_probe("127.0.20.21", 389, cldap_payload(), 1).state is PortState.OPEN
        assert udp_probe("127.0.20.21", 88, kerberos_payload("corp.test"), 1).state is PortState.OPEN
        assert ldap.received[0] == cldap_payload()
        assert kdc.received[0][0] == 0x6A  # [APPLICATION 10] AS-REQ
    closed = udp_probe("127.0.20.21", 53, dns_payload("corp.test"), 1)
    assert closed.state is PortState.CLOSED
    assert closed.latency_s < 0.5


def _in_namespace(spec: dict, tmp_path: Path) -> dict:
    need_root()
    need_binary("unshare")
    need_binary("nft")
    need_binary("dnsmasq")
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    lab = Path(__file__).with_name("adsync_lab.py")
    proc = subprocess.run(
        ["unshare", "-n", sys.executable, str(lab), str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_filtered_ports_in_a_namespace(tmp_path: Path) -> None:
    dcs = {"dc1.corp.test": "127.0.21.11"}
    spec = {
        "domain": DOMAIN,
        "dcs": dcs,
        "dns": [{"kind": "healthy", "address": "127.0.21.53", "port": 53}],
        "drops": [["127.0.21.11", "tcp", 445], ["127.0.21.11", "udp", 389], ["127.0.21.11", "tcp", 60000]],
        "args": [
            "--domain",
            DOMAIN,
            "--dns",
            "127.0.21.53",
            "--timeout",
            "0.5",
            "--ports",
            "53/udp,88/udp,389/tcp,389/udp,445/tcp,60000-60001/tcp",
        ],
    }
    result = _in_namespace(spec, tmp_path)
    checks = {(c["id"], c["target"]): c for c in result["report"]["checks"]}
    ports = checks[("adsync.dc.ports", "dc1.corp.test")]
    states = {f"{p['port']}/{p['proto']}": p["state"] for p in ports["details"]["ports"]}
    assert states == {
        "53/udp": "open",
        "88/udp": "open",
        "389/tcp": "open",
        "389/udp": "filtered",
        "445/tcp": "filtered",
    }
    assert "Seamless SSO" in next(p for p in ports["details"]["ports"] if p["port"] == 445)["breaks"]
    rpc = ports["details"]["rpc_dynamic"]
    assert (rpc["probed"], rpc["filtered_count"], rpc["closed_count"]) == (2, 1, 1)
    assert ports["status"] == "CRITICAL"
    assert result["code"] == 2
    # Filtered probes wait their timeout all at once: the run takes less than the three filtered
    # ports would one after the other (3 x 0.5 s), whatever the machine's load.
    assert result["wall_s"] < 0.5 * 3


def test_truncated_udp_answer_falls_back_to_tcp() -> None:
    need_binary("dnsmasq")
    many = {f"dc{i:02d}.{DOMAIN}": f"127.0.20.{100 + i}" for i in range(30)}
    with dnsmasq("127.0.10.6", 5353, healthy_zone(DOMAIN, many)):
        answer = dns_query("127.0.10.6", f"_ldap._tcp.dc._msdcs.{DOMAIN}", "SRV", port=5353, timeout=2)
    assert answer.outcome is DnsOutcome.DATA
    assert answer.truncated and answer.transport == "tcp"
    assert len(answer.srv_targets()) == 30


def test_ipv6_dns_server_with_port(capsys) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as dead:
        dead.bind(("::1", 0))
        port = dead.getsockname()[1]
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            DOMAIN,
            "--dns",
            f"[::1]:{port}",
            "--dc",
            "::1",
            "--ports",
            "1/tcp",
            "--timeout",
            "0.3",
            "-f",
            "json",
        )
    checks = _checks(r.out)
    server = checks[("adsync.dns.records", f"[::1]:{port}")]
    assert server["details"]["answers"][0]["outcome"] == "timeout"
    assert checks[("adsync.dc.ports", "::1")]["details"]["ports"][0]["state"] == "closed"


# Each row: DNS servers in the sync server's order; the failover check's status and the words its
# summary must contain (per KB2834226: data or a negative answer ends the lookup, only a server that
# does not answer is skipped, SERVFAIL/REFUSED is "uncertain" only when it decides the outcome); the
# exit code (the worst of every check: a brown-out secondary behind a working primary is a WARNING).
P, S, T = "{P}", "{S}", "{T}"
KIND = {
    HEALTHY: "data",
    BROWNOUT: "nodata",
    NXDOMAIN: "nxdomain",
    REFUSED: "refused",
    SERVFAIL: "servfail",
    HUNG: "hung",
    DEAD: "dead",
}
KB_MATRIX = [
    ((BROWNOUT, HEALTHY), "CRITICAL", [f"primary {P} answers NODATA", f"Windows will not fail over to {S}"], 2),
    ((NXDOMAIN, HEALTHY), "CRITICAL", [f"primary {P} answers NXDOMAIN", f"Windows will not fail over to {S}"], 2),
    ((REFUSED, HEALTHY), "WARNING", [f"primary {P} answers REFUSED", "failover uncertain", f"move on to {S}"], 1),
    ((SERVFAIL, HEALTHY), "WARNING", [f"primary {P} answers SERVFAIL", "failover uncertain"], 1),
    ((HUNG, HEALTHY), "WARNING", [f"primary {P} does not answer", f"through {S}", "after waiting ~1 s"], 1),
    # Issue #12: a brown-out secondary behind a healthy primary is a WARNING (Windows resolves through the primary).
    ((HEALTHY, BROWNOUT), "OK", [f"through the primary {P} without failover"], 1),
    ((HEALTHY, NXDOMAIN), "OK", [f"through the primary {P} without failover"], 1),
    ((HEALTHY, REFUSED), "OK", [f"through the primary {P} without failover"], 1),
    ((HEALTHY, HUNG), "OK", [f"through the primary {P} without failover"], 1),
    ((BROWNOUT, NXDOMAIN), "CRITICAL", [f"primary {P} answers NODATA", "no other DNS server has the data either"], 2),
    ((BROWNOUT, HUNG), "CRITICAL", [f"primary {P} answers NODATA", f"({S}: no answer)"], 2),
    (
        (REFUSED, BROWNOUT),
        "CRITICAL",
        [f"DNS server {S} answers NODATA", f"primary {P} answers REFUSED", "fails whether or not Windows moves past"],
        2,
    ),
    ((SERVFAIL, NXDOMAIN), "CRITICAL", [f"DNS server {S} answers NXDOMAIN", "fails whether or not"], 2),
    ((HUNG, BROWNOUT), "CRITICAL", [f"DNS server {S} answers NODATA", f"({P}: no answer)"], 2),
    ((HUNG, DEAD), "CRITICAL", ["no DNS server answers"], 2),
    ((REFUSED, HUNG), "CRITICAL", ["with data (REFUSED)"], 2),
    (
        (SERVFAIL, BROWNOUT, HEALTHY),
        "CRITICAL",
        [f"DNS server {S} answers NODATA", f"Windows will not fail over to {T}", "fails whether or not"],
        2,
    ),
    (
        (HUNG, BROWNOUT, HEALTHY),
        "CRITICAL",
        [f"DNS server {S} answers NODATA", f"Windows will not fail over to {T}"],
        2,
    ),
    ((REFUSED, HUNG, HEALTHY), "WARNING", [f"primary {P} answers REFUSED", "failover uncertain", f"move on to {T}"], 1),
]


@pytest.mark.parametrize(
    ("servers", "status", "words", "code"), KB_MATRIX, ids=["-".join(KIND[s] for s in row[0]) for row in KB_MATRIX]
)
def test_kb2834226_matrix_with_real_dnsmasq(
    dns_peers: None, capsys, servers: tuple[str, ...], status: str, words: list[str], code: int
) -> None:
    """Every primary/secondary combination of healthy, NODATA, NXDOMAIN, REFUSED, SERVFAIL and hung servers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as dc:  # one open "DC" port: only DNS decides
        dc.bind(("127.0.20.11", 0))
        dc.listen(8)
        args = [a for server in servers for a in ("--dns", server)]
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            DOMAIN,
            *args,
            "--dc",
            "127.0.20.11",
            "--ports",
            f"{dc.getsockname()[1]}/tcp",
            "--timeout",
            "0.5",
            "-f",
            "json",
        )
    checks = _checks(r.out)
    failover = checks[("adsync.dns.failover", DOMAIN)]
    names = dict(zip((P, S, T), servers, strict=False))
    assert failover["status"] == status, failover["summary"]
    for word in words:
        for key, value in names.items():
            word = word.replace(key, value)
        assert word in failover["summary"], failover["summary"]
    if status in ("CRITICAL", "OK"):
        assert "failover uncertain" not in failover["summary"]
    assert r.code == code, [(c["status"], c["summary"]) for c in checks.values() if c["status"] != "OK"]
