"""The default DNS server list: resolv.conf nameservers, in order."""

from __future__ import annotations

from pathlib import Path

from runbooks.probes.dns import server_label, system_nameservers


def test_resolv_conf_order_ipv6_zone_and_junk(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch corp.test\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\n"
                    "nameserver not-an-ip\nnameserver 10.0.0.1\nnameserver 10.0.0.2\n")
    assert system_nameservers(str(conf)) == ["10.0.0.2", "fe80::1", "10.0.0.1"]
    assert system_nameservers(str(tmp_path / "missing")) == []


def test_server_label() -> None:
    assert server_label("10.0.0.1", 53) == "10.0.0.1"
    assert server_label("10.0.0.1", 5353) == "10.0.0.1:5353"
    assert server_label("::1", 5353) == "[::1]:5353"
