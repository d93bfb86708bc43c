"""adsync's names: domain, DCs and site, checked and turned into A-labels in the runbook layer."""

from __future__ import annotations

import pytest

from opsbook.runbooks.adsync.names import parse_dcs, parse_domain, parse_site
from opsbook.runbooks.errors import InputError


def test_domain_is_lowercase_a_labels() -> None:
    assert parse_domain("Corp.Example.COM.") == "corp.example.com"
    assert parse_domain("münchen.corp.test") == "xn--mnchen-3ya.corp.test"
    for bad in ("", "  ", "corp..test", "-corp.test", "a" * 64 + ".test"):
        with pytest.raises(InputError, match="--domain"):
            parse_domain(bad)


def test_dcs_by_name_or_address_once_each() -> None:
    assert parse_dcs(["DC1.corp.test", "dc1.corp.test.", "[::1]", "10.0.0.1"]) == ["dc1.corp.test", "::1", "10.0.0.1"]
    with pytest.raises(InputError, match="invalid --dc"):
        parse_dcs(["dc 1"])


def test_site_is_one_label() -> None:
    assert parse_site(" Default-First-Site-Name ") == "Default-First-Site-Name"
    for bad in ("", "a.b", "bad site"):
        with pytest.raises(InputError, match="--site"):
            parse_site(bad)
