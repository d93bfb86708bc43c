"""Issue #12 against real peers: no false alarms, protocol answers instead of open ports, clock skew, LDAP(S).

dnsmasq plays the DNS servers; tests/e2e/ad_peer.py plays the DCs with the real protocol bytes
(DNS, CLDAP, LDAP, LDAPS, Kerberos, NTP); nftables in a namespace of our own plays the firewall
that REJECTs. Loopback and that namespace only.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from opsbook.runbooks.adsync.ports import PortSpec, probe_port
from opsbook.runbooks.probes.tcp import PortState, tcp_probe
from opsbook.runbooks.probes.udp import cldap_payload, udp_probe
from tests.e2e.ad_peer import AdDc, dc_ca
from tests.e2e.dnsmasq_peer import dnsmasq, healthy_zone
from tests.helpers import run_main
from tests.peers import need_binary, need_root
from tests.tlspeers import make_leaf

pytestmark = pytest.mark.e2e

DOMAIN = "corp.test"


def _checks(out: str) -> dict[tuple[str, str], dict]:
    return {(c["id"], c["target"]): c for c in json.loads(out)["checks"]}


def _srv_only(domain: str, dcs: dict[str, str]) -> list[str]:
    """A zone whose locator SRV lists *dcs* (with their A records)."""
    return healthy_zone(domain, dcs)


def test_stale_srv_on_the_secondary_is_not_a_critical_of_the_primary(capsys) -> None:
    """The secondary advertises dc4 (a stale SRV record); the primary never does and answers NXDOMAIN for it."""
    need_binary("dnsmasq")
    primary_dcs = {"dc1.corp.test": "127.0.22.11"}
    stale = {**primary_dcs, "dc4.corp.test": "127.0.22.14"}
    with (
        dnsmasq("127.0.22.1", 5353, healthy_zone(DOMAIN, primary_dcs)),
        dnsmasq("127.0.22.2", 5353, healthy_zone(DOMAIN, stale)),
        AdDc("127.0.22.11", tcp_ports=(389,), udp_ports=()),
    ):
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            DOMAIN,
            "--dns",
            "127.0.22.1:5353",
            "--dns",
            "127.0.22.2:5353",
            "--ports",
            "389/tcp",
            "--timeout",
            "0.5",
            "-f",
            "json",
        )
    checks = _checks(r.out)
    primary = checks[("adsync.dns.records", "127.0.22.1:5353")]
    assert primary["status"] == "OK", primary["summary"]
    failover = checks[("adsync.dns.failover", DOMAIN)]
    assert failover["status"] == "OK", failover["summary"]
    assert "dc4" not in failover["summary"]
    discovery = checks[("adsync.dc.discovery", DOMAIN)]
    assert discovery["status"] == "WARNING"
    assert "127.0.22.2:5353 also lists dc4.corp.test" in discovery["summary"]
    # dc4 itself is probed (it is listed somewhere) and found dead: that is its own finding.
    assert checks[("adsync.dc.ports", "dc4.corp.test")]["status"] == "CRITICAL"
    assert r.code == 2


def test_srv_answers_are_capped(capsys) -> None:
    need_binary("dnsmasq")
    many = {f"dc{i:02d}.{DOMAIN}": f"127.0.23.{10 + i}" for i in range(12)}
    with dnsmasq("127.0.23.1", 5353, healthy_zone(DOMAIN, many)):
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            DOMAIN,
            "--dns",
            "127.0.23.1:5353",
            "--max-dcs",
            "5",
            "--ports",
            "1/tcp",
            "--timeout",
            "0.5",
            "-f",
            "json",
        )
    checks = _checks(r.out)
    discovery = checks[("adsync.dc.discovery", DOMAIN)]
    assert discovery["metrics"]["dcs"] == 5
    assert discovery["details"]["not_probed"]["count"] == 7
    assert "7 more DC(s) in the SRV answers not probed" in discovery["summary"]
    assert len([k for k in checks if k[0] == "adsync.dc.ports"]) == 5
    bad = run_main(capsys, "adsync", "check", "--domain", DOMAIN, "--dns", "127.0.23.1:5353", "--max-dcs", "0")
    assert bad.code == 3 and "--max-dcs" in bad.err and "Traceback" not in bad.err


def test_site_aware_discovery_asks_the_site_srv(capsys) -> None:
    need_binary("dnsmasq")
    zone = healthy_zone(DOMAIN, {"dc1.corp.test": "127.0.24.11"})
    zone.append(f"--srv-host=_ldap._tcp.Paris._sites.dc._msdcs.{DOMAIN},dc7.corp.test,389,0,100")
    zone.append("--host-record=dc7.corp.test,127.0.24.17")
    with dnsmasq("127.0.24.1", 5353, zone):
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            DOMAIN,
            "--dns",
            "127.0.24.1:5353",
            "--site",
            "Paris",
            "--ports",
            "1/tcp",
            "--timeout",
            "0.5",
            "-f",
            "json",
        )
    checks = _checks(r.out)
    discovery = checks[("adsync.dc.discovery", DOMAIN)]
    assert [d["dc"] for d in discovery["details"]["dcs"]] == ["dc7.corp.test"]
    assert discovery["details"]["source"] == f"SRV _ldap._tcp.Paris._sites.dc._msdcs.{DOMAIN}"


def test_junk_udp_replies_are_open_but_not_the_protocol() -> None:
    with AdDc(
        "127.0.25.11",
        tcp_ports=(389,),
        udp_ports=(53, 88, 389),
        modes={"53/udp": "junk", "88/udp": "junk", "389/udp": "junk", "389/tcp": "silent"},
    ):
        probes = {
            p: probe_port("127.0.25.11", PortSpec(*p), DOMAIN, 0.5)
            for p in ((53, "udp"), (88, "udp"), (389, "udp"), (389, "tcp"))
        }
    for key, probe in probes.items():
        assert probe.state is PortState.OPEN, key
        assert probe.answer is not None and not probe.answer.speaks, key
    assert "not a DNS response" in probes[(53, "udp")].answer.note
    assert "not a Kerberos message" in probes[(88, "udp")].answer.note
    assert "not an LDAP message" in probes[(389, "udp")].answer.note
    assert "sends no LDAP answer" in probes[(389, "tcp")].answer.note


def test_junk_ports_are_warnings_not_ok(capsys) -> None:
    with AdDc(
        "127.0.25.12",
        tcp_ports=(389,),
        udp_ports=(88, 389),
        modes={"88/udp": "junk", "389/udp": "junk", "389/tcp": "silent"},
    ):
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            DOMAIN,
            "--dns",
            "127.0.25.99:5353",
            "--dc",
            "127.0.25.12",
            "--ports",
            "88/udp,389/udp,389/tcp",
            "--timeout",
            "0.5",
            "-f",
            "json",
        )
    ports = _checks(r.out)[("adsync.dc.ports", "127.0.25.12")]
    assert ports["status"] == "WARNING", ports["summary"]
    assert "389/udp open, not CLDAP" in ports["summary"]
    assert "88/udp open, not Kerberos" in ports["summary"]
    assert "389/tcp open, not LDAP" in ports["summary"]
    rows = {f"{p['port']}/{p['proto']}": p for p in ports["details"]["ports"]}
    assert rows["389/udp"]["speaks_protocol"] is False and rows["389/udp"]["state"] == "open"
    assert ("adsync.dc.ldap", "127.0.25.12") not in _checks(r.out)


def test_real_protocol_answers_give_ldap_rootdse_and_clock(capsys) -> None:
    with AdDc("127.0.26.11", tcp_ports=(88, 389), udp_ports=(88, 389, 123), name="dc1.corp.test") as dc:
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            DOMAIN,
            "--dns",
            "127.0.26.99:5353",
            "--dc",
            "127.0.26.11",
            "--ports",
            "88/tcp,88/udp,389/tcp,389/udp,123/udp",
            "--timeout",
            "1",
            "-f",
            "json",
        )
    checks = _checks(r.out)
    ports = checks[("adsync.dc.ports", "127.0.26.11")]
    assert ports["status"] == "OK", ports["summary"]
    assert all(p["speaks_protocol"] for p in ports["details"]["ports"])
    ldap = checks[("adsync.dc.ldap", "127.0.26.11")]
    assert ldap["status"] == "OK"
    assert "dnsHostName dc1.corp.test" in ldap["summary"] and "naming context DC=corp,DC=test" in ldap["summary"]
    assert "domain functional level 2016" in ldap["summary"] and "isSynchronized TRUE" in ldap["summary"]
    assert ldap["details"]["rootdse"]["highestCommittedUSN"] == "123456"
    clock = checks[("adsync.dc.clock", "127.0.26.11")]
    assert clock["status"] == "OK"
    assert clock["details"]["source"] == "Kerberos on 88/tcp"
    assert abs(clock["details"]["skew_s"]) < 1.0
    assert {r["source"].split()[0] for r in clock["details"]["readings"]} == {"Kerberos", "NTP", "LDAP", "CLDAP"}
    assert dc.received[389][0] == cldap_payload()  # the CLDAP rootDSE search, asking for currentTime


@pytest.mark.parametrize(
    ("offset", "ports", "status", "source"),
    [
        (600, "389/udp", "CRITICAL", "CLDAP on 389/udp"),
        (-150, "88/udp", "WARNING", "Kerberos on 88/udp"),
        (600, "389/tcp,88/tcp", "CRITICAL", "Kerberos on 88/tcp"),
    ],
)
def test_clock_skew_from_cldap_and_krb_error(capsys, offset: float, ports: str, status: str, source: str) -> None:
    tcp = tuple(int(p.split("/")[0]) for p in ports.split(",") if p.endswith("tcp"))
    udp = tuple(int(p.split("/")[0]) for p in ports.split(",") if p.endswith("udp"))
    with AdDc("127.0.27.11", tcp_ports=tcp, udp_ports=udp, clock_offset_s=offset):
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            DOMAIN,
            "--dns",
            "127.0.27.99:5353",
            "--dc",
            "127.0.27.11",
            "--ports",
            ports,
            "--timeout",
            "1",
            "-f",
            "json",
        )
    clock = _checks(r.out)[("adsync.dc.clock", "127.0.27.11")]
    assert clock["status"] == status, clock["summary"]
    assert clock["details"]["source"] == source
    assert abs(clock["details"]["skew_s"] - offset) < 2
    assert ("ahead of" if offset > 0 else "behind") in clock["summary"]
    if status == "CRITICAL":
        assert "Kerberos fails at 5 minutes" in clock["summary"] and "10.0 min" in clock["summary"]


def test_skew_thresholds_are_configurable(capsys) -> None:
    with AdDc("127.0.27.12", tcp_ports=(), udp_ports=(389,), clock_offset_s=40):
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            DOMAIN,
            "--dns",
            "127.0.27.99:5353",
            "--dc",
            "127.0.27.12",
            "--ports",
            "389/udp",
            "--max-skew",
            "30s,1m",
            "--timeout",
            "1",
            "-f",
            "json",
        )
    assert _checks(r.out)[("adsync.dc.clock", "127.0.27.12")]["status"] == "WARNING"
    bad = run_main(capsys, "adsync", "check", "--domain", DOMAIN, "--dc", "127.0.27.12", "--max-skew", "5m,2m")
    assert bad.code == 3 and "--max-skew" in bad.err and "Traceback" not in bad.err


def test_ldaps_checked_like_a_winrm_listener(capsys, tmp_path: Path) -> None:
    ca = dc_ca()
    ca_file = ca.write(tmp_path)
    good = ca.issue("dc1.corp.test", names=["dc1.corp.test"])
    expired = make_leaf("expired", ca, "dc2.corp.test")
    other = make_leaf("wrong_ca", ca, "wrong.corp.test", names=["wrong.corp.test"])
    resolve = [
        "--resolve",
        "dc1.corp.test:127.0.28.11",
        "--resolve",
        "dc2.corp.test:127.0.28.12",
        "--resolve",
        "dc3.corp.test:127.0.28.13",
    ]
    with (
        AdDc("127.0.28.11", tcp_ports=(636,), udp_ports=(), tls_leaf=good),
        AdDc("127.0.28.12", tcp_ports=(636,), udp_ports=(), tls_leaf=expired),
        AdDc("127.0.28.13", tcp_ports=(636,), udp_ports=(), tls_leaf=other),
    ):
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            DOMAIN,
            "--dns",
            "127.0.28.99:5353",
            *resolve,
            "--dc",
            "dc1.corp.test",
            "--dc",
            "dc2.corp.test",
            "--dc",
            "dc3.corp.test",
            "--ports",
            "636/tcp",
            "--ca-file",
            str(ca_file),
            "--timeout",
            "1",
            "-f",
            "json",
        )
    checks = _checks(r.out)
    ok = checks[("adsync.dc.ldaps", "dc1.corp.test:636")]
    assert ok["status"] == "OK", ok["summary"]
    assert "chain verified" in ok["summary"]
    bad = checks[("adsync.dc.ldaps", "dc2.corp.test:636")]
    assert bad["status"] == "CRITICAL"
    assert "certificate expired 5 days ago" in bad["summary"]
    assert "chain" not in bad["summary"]  # one root cause, one finding
    wrong = checks[("adsync.dc.ldaps", "dc3.corp.test:636")]
    assert wrong["status"] == "CRITICAL"
    assert "chain not trusted" in wrong["summary"] and "name mismatch" in wrong["summary"]
    # The LDAP search ran over TLS on all three: the port speaks LDAPS.
    for name in ("dc1.corp.test", "dc2.corp.test", "dc3.corp.test"):
        row = checks[("adsync.dc.ports", name)]["details"]["ports"][0]
        assert row["protocol"] == "LDAPS" and row["speaks_protocol"] is True


def test_truncated_garbage_then_tcp_reset_says_what_each_transport_did(capsys) -> None:
    """UDP answers with our id and TC set but garbage; TCP 53 is closed (RST)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.29.1", 5353))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(600)
            except TimeoutError:
                continue
            except OSError:
                return
            sock.sendto(data[:2] + b"\x82\x00" + b"\xff" * 30, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        r = run_main(
            capsys,
            "adsync",
            "check",
            "--domain",
            DOMAIN,
            "--dns",
            "127.0.29.1:5353",
            "--dc",
            "127.0.29.11",
            "--ports",
            "1/tcp",
            "--timeout",
            "0.5",
            "-f",
            "json",
        )
    finally:
        stop.set()
        thread.join(2)
        sock.close()
    server = _checks(r.out)[("adsync.dns.records", "127.0.29.1:5353")]
    assert "does not answer at all" not in server["summary"]
    assert "truncated" in server["summary"]
    assert "UDP: truncated reply (TC set); TCP: connection refused" in server["summary"]


# --------------------------------------------------------------------------- namespaces


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


def test_reject_admin_prohibited_and_local_eperm_are_filtered_not_closed(tmp_path: Path) -> None:
    address = "127.0.31.11"
    spec = {
        "domain": DOMAIN,
        "dcs": {"dc1.corp.test": address},
        "dns": [{"kind": "healthy", "address": "127.0.31.53", "port": 53}],
        "rejects": [
            [address, "tcp", 445, "admin-prohibited"],
            [address, "udp", 389, "admin-prohibited"],
            [address, "tcp", 135, "host-unreachable"],
        ],
        "local_drops": [[address, "udp", 88]],
        "args": [
            "--domain",
            DOMAIN,
            "--dns",
            "127.0.31.53",
            "--timeout",
            "1",
            "--ports",
            "88/udp,135/tcp,389/tcp,389/udp,445/tcp,5555/tcp",
        ],
    }
    result = _in_namespace(spec, tmp_path)
    checks = {(c["id"], c["target"]): c for c in result["report"]["checks"]}
    ports = checks[("adsync.dc.ports", "dc1.corp.test")]
    rows = {f"{p['port']}/{p['proto']}": p for p in ports["details"]["ports"]}
    states = {k: v["state"] for k, v in rows.items()}
    # nmap agrees: an ICMP admin-prohibited / host-unreachable and a local EPERM are "filtered";
    # "closed" means the DC itself answered that nothing listens (5555/tcp: RST).
    assert states == {
        "88/udp": "filtered",
        "135/tcp": "filtered",
        "389/tcp": "open",
        "389/udp": "filtered",
        "445/tcp": "filtered",
        "5555/tcp": "closed",
    }, states
    assert "No route to host" in rows["445/tcp"]["error"] or "unreachable" in rows["445/tcp"]["error"].lower()
    assert "not permitted" in rows["88/udp"]["error"]
    # Rejected at once, not after the timeout.
    assert rows["445/tcp"]["latency_ms"] < 500
    assert "445/tcp filtered (SMB:" in ports["summary"]


def test_tcp_probe_closed_is_only_a_reset() -> None:
    with socket.socket() as s:
        s.bind(("127.0.32.1", 0))
        port = s.getsockname()[1]
    assert tcp_probe("127.0.32.1", port, 0.5).state is PortState.CLOSED
    assert udp_probe("127.0.32.1", port, b"x", 0.5).state is PortState.CLOSED
