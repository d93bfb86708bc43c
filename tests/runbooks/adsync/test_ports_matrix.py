"""Port list parsing, UDP payloads and the per-DC port verdicts."""

from __future__ import annotations

import pytest

from opsbook.runbooks.adsync.ports import DEFAULT_PORTS, PortProbe, PortSpec, assess_dc, parse_ports
from opsbook.runbooks.errors import InputError
from opsbook.runbooks.model import Status
from opsbook.runbooks.probes.tcp import PortState
from opsbook.runbooks.probes.udp import cldap_payload, dns_payload, kerberos_payload


def test_default_ports_are_the_ad_connect_list_without_rpc_range() -> None:
    assert [str(p) for p in DEFAULT_PORTS] == [
        "53/tcp",
        "53/udp",
        "88/tcp",
        "88/udp",
        "135/tcp",
        "389/tcp",
        "389/udp",
        "445/tcp",
        "636/tcp",
        "3268/tcp",
    ]
    assert not any(p.rpc_dynamic for p in DEFAULT_PORTS)


def test_parse_ports_ranges_and_errors() -> None:
    specs = parse_ports("389/udp, 49152-65535/tcp,389/udp")
    assert specs[0] == PortSpec(389, "udp") and len(specs) == 1 + 16384
    assert all(s.rpc_dynamic for s in specs[1:])
    for bad in ("389/sctp", "0/tcp", "70000/tcp", "10-5/tcp", "abc", ",", "1-65535/tcp,1-65535/udp"):
        with pytest.raises(InputError):
            parse_ports(bad)


def _probe(port: int, proto: str, state: PortState) -> PortProbe:
    return PortProbe(PortSpec(port, proto), state, 0.01)


def test_assess_dc_names_what_breaks() -> None:
    check = assess_dc(
        "dc1", "10.0.0.10", [_probe(389, "tcp", PortState.OPEN), _probe(445, "tcp", PortState.CLOSED)], asked_rpc=False
    )
    assert check.status is Status.CRITICAL
    assert "445/tcp closed (SMB)" in check.summary and "Seamless SSO" in check.summary
    assert "RPC dynamic range not probed" in check.summary
    assert check.metrics["open"] == 1 and check.metrics["closed"] == 1


def test_ldaps_only_warns_and_rpc_closed_is_fine() -> None:
    check = assess_dc(
        "dc1",
        "10.0.0.10",
        [_probe(636, "tcp", PortState.FILTERED), _probe(50000, "tcp", PortState.CLOSED)],
        asked_rpc=True,
    )
    assert check.status is Status.WARNING
    assert check.details["rpc_dynamic"]["closed_count"] == 1
    blocked = assess_dc("dc1", "10.0.0.10", [_probe(50000, "tcp", PortState.FILTERED)], asked_rpc=True)
    assert blocked.status is Status.CRITICAL and "RPC dynamic range" in blocked.summary


def test_payloads_are_wellformed() -> None:
    import dns.message

    msg = dns.message.from_wire(dns_payload("corp.test", txid=7))
    assert msg.id == 7 and msg.question[0].name.to_text() == "corp.test."
    ldap = cldap_payload(message_id=3)
    assert ldap[0] == 0x30 and ldap[1] == len(ldap) - 2  # SEQUENCE, definite length
    assert b"\x63" in ldap and b"\x87\x0bobjectClass" in ldap
    krb = kerberos_payload("corp.test", nonce=42)
    assert krb[0] == 0x6A
    assert b"CORP.TEST" in krb and b"krbtgt" in krb
    # Walk the outer DER: [APPLICATION 10] { SEQUENCE { [1] pvno=5, [2] msg-type=10, ... } }
    length = krb[1] if krb[1] < 0x80 else int.from_bytes(krb[2 : 2 + (krb[1] & 0x7F)], "big")
    header = 2 if krb[1] < 0x80 else 2 + (krb[1] & 0x7F)
    assert header + length == len(krb)
    body = krb[header:]
    assert body[0] == 0x30
    inner = body[2:] if body[1] < 0x80 else body[2 + (body[1] & 0x7F) :]
    assert inner[:5] == b"\xa1\x03\x02\x01\x05" and inner[5:10] == b"\xa2\x03\x02\x01\x0a"
