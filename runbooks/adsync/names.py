"""The names adsync is given: the AD domain, domain controllers, an AD site (checked, in A-label form)."""

from __future__ import annotations

import ipaddress
import re

from ..errors import InputError
from ..probes.targets import a_label

DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
    r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$"
)


def parse_domain(text: str) -> str:
    """The AD domain's DNS name, lower-case A-labels (InputError for anything else)."""
    value = (text or "").strip().rstrip(".")
    if not value:
        raise InputError("--domain is empty: give the AD domain's DNS name, e.g. corp.example.com")
    value = a_label(value, "--domain", text).lower()
    if not DOMAIN_RE.match(value):
        raise InputError(f"invalid --domain {text!r}: expected a DNS domain such as corp.example.com")
    return value


def parse_dcs(entries: list[str] | None) -> list[str]:
    """Domain controllers given by name or address, each once, in order."""
    out: list[str] = []
    for text in entries or []:
        value = text.strip().rstrip(".").lower()
        if value.startswith("[") and value.endswith("]"):
            value = value[1:-1]
        try:
            ipaddress.ip_address(value)
        except ValueError:
            value = a_label(value, "--dc", text) if value else value
            if not DOMAIN_RE.match(value):
                raise InputError(f"invalid --dc {text!r}: expected a host name or an IP address") from None
        if value not in out:
            out.append(value)
    return out


def parse_site(text: str) -> str:
    """An AD site name (one DNS label), in A-label form."""
    value = text.strip()
    if not value or "." in value or not DOMAIN_RE.match(a_label(value, "--site", text)):
        raise InputError(f"invalid --site {text!r}: give the AD site name, e.g. Default-First-Site-Name")
    return a_label(value, "--site", text)
