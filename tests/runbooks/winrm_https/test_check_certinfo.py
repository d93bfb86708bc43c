"""Certificate parsing and RFC 6125 name matching for ``winrm check``."""

from __future__ import annotations

import pytest

from opsbook.runbooks.winrm_https.certinfo import (
    SERVER_AUTH,
    name_matches,
    parse_certificate,
    thumbprint,
    wildcard_match,
)
from tests.tlspeers import TestCA, make_leaf, self_signed


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("srv1.corp.test", "srv1.corp.test", True),
        ("SRV1.Corp.Test", "srv1.corp.test", True),
        ("srv1.corp.test.", "srv1.corp.test", True),
        ("*.corp.test", "srv1.corp.test", True),
        ("*.corp.test", "SRV1.CORP.TEST", True),
        ("*.corp.test", "corp.test", False),  # the wildcard needs one label
        ("*.corp.test", "a.b.corp.test", False),  # and only one
        ("*.test", "corp.test", False),  # not over a bare suffix
        ("w*.corp.test", "www.corp.test", False),  # partial wildcards: refused
        ("srv*.corp.test", "srv1.corp.test", False),
        ("a.*.corp.test", "a.b.corp.test", False),  # not in another label
        ("*.*.corp.test", "a.b.corp.test", False),
        ("*.corp.test", "xn--bcher-kva.corp.test", True),  # a whole-label * covers an A-label (as OpenSSL)
        ("xn--*.corp.test", "xn--bcher-kva.corp.test", False),  # never a wildcard inside an A-label
        ("srv1.corp.test", "srv2.corp.test", False),
        ("", "srv1.corp.test", False),
    ],
)
def test_wildcard_match_follows_rfc6125(pattern: str, host: str, expected: bool) -> None:
    assert wildcard_match(pattern, host) is expected


def test_parse_certificate_reads_every_field() -> None:
    ca = TestCA("Corp Issuing CA 01")
    leaf = ca.issue("srv1.corp.test", names=["srv1.corp.test", "*.web.corp.test", "127.0.0.7"], days=90)
    info = parse_certificate(leaf.cert_der)
    assert info.thumbprint == leaf.thumbprint == thumbprint(leaf.cert_der)
    assert info.thumbprint.isupper() and len(info.thumbprint) == 40
    assert info.subject_cn == "srv1.corp.test"
    assert info.issuer_cn == "Corp Issuing CA 01"
    assert info.dns_names == ("srv1.corp.test", "*.web.corp.test")
    assert info.ip_addresses == ("127.0.0.7",)
    assert info.eku == (SERVER_AUTH,)
    assert info.eku_names == ["Server Authentication"]
    assert (info.key_type, info.key_size) == ("RSA", 2048)
    assert info.signature_hash == "sha256"
    assert 89 < info.days_left() <= 90
    assert not info.self_issued
    as_dict = info.to_dict()
    assert as_dict["thumbprint"] == leaf.thumbprint
    assert as_dict["eku"] == ["Server Authentication"]


def test_weak_certificates_are_described() -> None:
    ca = TestCA()
    sha1 = parse_certificate(make_leaf("sha1", ca, "a.corp.test").cert_der)
    assert sha1.signature_hash == "sha1"
    weak = parse_certificate(make_leaf("weak_key", ca, "a.corp.test").cert_der)
    assert weak.key_size == 1024
    client = parse_certificate(make_leaf("client_eku", ca, "a.corp.test").cert_der)
    assert client.eku_names == ["Client Authentication"]
    no_eku = parse_certificate(ca.issue("a.corp.test", eku=None).cert_der)
    assert no_eku.eku is None
    ec_leaf = parse_certificate(ca.issue("a.corp.test", key_type="ec").cert_der)
    assert ec_leaf.key_type == "EC secp256r1"
    assert parse_certificate(self_signed("a.corp.test").cert_der).self_issued


def test_name_matching_uses_sans_then_cn_only_without_sans() -> None:
    ca = TestCA()
    wildcard = parse_certificate(ca.issue("*.corp.test").cert_der)
    assert name_matches(wildcard, "srv9.corp.test") == (True, "SAN *.corp.test")
    assert name_matches(wildcard, "srv9.other.test")[0] is False
    # A SAN list that lacks the host: the CN is NOT used as a fallback.
    cn_only_match = parse_certificate(ca.issue("srv1.corp.test", names=["alias.corp.test"]).cert_der)
    assert name_matches(cn_only_match, "srv1.corp.test")[0] is False
    # No SAN at all: the CN counts (legacy certificates).
    no_san = parse_certificate(ca.issue("srv1.corp.test", names=[]).cert_der)
    assert name_matches(no_san, "srv1.corp.test") == (True, "CN srv1.corp.test (no SAN)")
    # IP targets match IP SANs only, never a DNS SAN or CN spelled like an address.
    ip_cert = parse_certificate(ca.issue("127.0.0.9", names=["127.0.0.9"]).cert_der)
    assert name_matches(ip_cert, "127.0.0.9") == (True, "IP SAN 127.0.0.9")
    ip_as_cn = parse_certificate(ca.issue("127.0.0.9", names=[]).cert_der)
    assert name_matches(ip_as_cn, "127.0.0.9")[0] is False


def test_parse_certificate_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_certificate(b"not a certificate")
