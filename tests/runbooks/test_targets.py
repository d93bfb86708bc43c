from __future__ import annotations

import pytest

from opsbook.runbooks.errors import InputError
from opsbook.runbooks.probes import HostPort, parse_host_port, parse_resolve


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("srv1.corp.test", HostPort("srv1.corp.test", 5986)),
        ("srv1.corp.test:443", HostPort("srv1.corp.test", 443)),
        ("10.0.0.1:53", HostPort("10.0.0.1", 53)),
        ("[::1]:5353", HostPort("::1", 5353)),
        ("[::1]", HostPort("::1", 5986)),
        ("fe80::1", HostPort("fe80::1", 5986)),
    ],
)
def test_parse_host_port(text: str, expected: HostPort) -> None:
    assert parse_host_port(text, 5986) == expected


@pytest.mark.parametrize("bad", ["", "host:0", "host:70000", "host:x", "[::1", "[nothex]:1", "a b", "http://x"])
def test_parse_host_port_rejects(bad: str) -> None:
    with pytest.raises(InputError):
        parse_host_port(bad, 1)


def test_parse_resolve_like_curl() -> None:
    assert parse_resolve(["DC1.corp.test:127.0.0.2", "h:5986:127.0.0.3", "v6:[::1]"]) == {
        "dc1.corp.test": "127.0.0.2",
        "h": "127.0.0.3",
        "v6": "::1",
    }
    with pytest.raises(InputError, match="not an IP address"):
        parse_resolve(["host:notanip"])
    with pytest.raises(InputError):
        parse_resolve(["justhost"])
