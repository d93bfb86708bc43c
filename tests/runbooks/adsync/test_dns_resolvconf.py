"""The default DNS server list: resolv.conf nameservers, in order."""

from __future__ import annotations

from pathlib import Path

from opsbook.runbooks.probes.dns import server_label, system_nameservers


def test_resolv_conf_order_ipv6_zone_and_junk(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# comment\nsearch corp.test\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\n"
        "nameserver not-an-ip\nnameserver 10.0.0.1\nnameserver 10.0.0.2\n"
    )
    assert system_nameservers(str(conf)) == ["10.0.0.2", "fe80::1", "10.0.0.1"]
    assert system_nameservers(str(tmp_path / "missing")) == []


def test_server_label() -> None:
    assert server_label("10.0.0.1", 53) == "10.0.0.1"
    assert server_label("10.0.0.1", 5353) == "10.0.0.1:5353"
    assert server_label("::1", 5353) == "[::1]:5353"


def test_loopback_stub_from_resolv_conf_warns() -> None:
    from opsbook.runbooks.adsync.dns_health import assess_dns_source
    from opsbook.runbooks.model import Status

    check = assess_dns_source(["127.0.0.53", "10.0.0.1"], ["127.0.0.53", "10.0.0.1"])
    assert check is not None and check.status is Status.WARNING
    assert "127.0.0.53 is a local resolver" in check.summary and "--dns" in check.summary
    assert assess_dns_source(["10.0.0.1", "[::2]:5353"], ["10.0.0.1", "::2"]) is None


def test_collect_adds_the_source_warning_only_without_dns() -> None:
    from opsbook.runbooks.adsync.check import AdsyncOptions, collect
    from opsbook.runbooks.probes.targets import HostPort
    from tests.e2e.dnsmasq_peer import ZoneServer, ad_records

    with ZoneServer("127.0.10.44", ad_records("corp.test", {"dc1.corp.test": "127.0.0.1"})) as dns:
        base = {
            "domain": "corp.test",
            "dns_servers": [HostPort(dns.address, dns.port)],
            "dcs": ["127.0.0.1"],
            "ports": [],
            "timeout": 0.5,
        }
        from_conf = collect(AdsyncOptions(**base, dns_from_resolv_conf=True))  # type: ignore[arg-type]
        given = collect(AdsyncOptions(**base))  # type: ignore[arg-type]
    assert from_conf[0].id == "adsync.dns.source" and dns.label in from_conf[0].summary
    assert all(c.id != "adsync.dns.source" for c in given)
