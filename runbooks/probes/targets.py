"""Parsing of HOST[:PORT] targets (IPv6 as [addr]:port) and curl-style --resolve."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class HostPort:
    """A host name or address with a port; ``address`` overrides where to connect."""

    host: str
    port: int
    address: str | None = None

    @property
    def connect_host(self) -> str:
        """Where to connect: the --resolve address, or the host itself."""
        return self.address or self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _port(text: str, original: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise InputError(f"invalid port in {original!r}: expected 1-65535")
    return int(text)


def parse_host_port(text: str, default_port: int) -> HostPort:
    """Parse ``host``, ``host:port``, ``1.2.3.4:port``, ``::1`` or ``[::1]:port``."""
    value = text.strip()
    if not value:
        raise InputError("empty host name")
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise InputError(f"invalid address {text!r}: missing ']'")
        host = value[1:end]
        rest = value[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InputError(f"invalid address {text!r}")
        port = _port(rest[1:], text) if rest else default_port
        _check_ip(host, text)
        return HostPort(host, port)
    if value.count(":") > 1:  # bare IPv6 address without a port
        _check_ip(value, text)
        return HostPort(value, default_port)
    host, sep, port_text = value.partition(":")
    port = _port(port_text, text) if sep else default_port
    _check_host(host, text)
    return HostPort(host, port)


def _check_ip(value: str, original: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise InputError(f"invalid IPv6 address in {original!r}") from None


def _check_host(host: str, original: str) -> None:
    if not host or any(c.isspace() or c in "/\\@?#" for c in host) or len(host) > 253:
        raise InputError(f"invalid host name {original!r}")


def is_ip(value: str) -> bool:
    """Whether *value* is an IPv4 or IPv6 address (no brackets, no zone)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def parse_resolve(entries: list[str] | None) -> dict[str, str]:
    """Parse curl-style ``HOST:ADDRESS`` (or ``HOST:PORT:ADDRESS``) into {host: address}."""
    mapping: dict[str, str] = {}
    for entry in entries or []:
        parts = entry.split(":", 1)
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise InputError(f"invalid --resolve {entry!r}: expected HOST:ADDRESS")
        host, address = parts
        # curl's HOST:PORT:ADDRESS form: drop the port (but 2001:db8::1 is an address, not port 2001).
        head, sep, tail = address.partition(":")
        if sep and head.isascii() and head.isdigit() and tail and not is_ip(address.strip("[]")):
            address = tail
        address = address.strip("[]")
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise InputError(f"invalid --resolve {entry!r}: {address!r} is not an IP address") from None
        mapping[host.lower()] = address
    return mapping


def a_label(value: str, option: str, text: str) -> str:
    """*value* in its A-label (``xn--``) form, lower-case, as DNS clients send it (IDNA 2008 + UTS 46).

    ASCII is returned as it is. InputError (exit 3) names *option* and the *text* given.
    """
    if value.isascii():
        return value
    try:
        import idna  # IDNA 2008 + UTS 46 (installed with requests); the stdlib codec is IDNA 2003

        return str(idna.encode(value, uts46=True).decode("ascii")).lower()
    except UnicodeError:  # idna.IDNAError is a UnicodeError
        raise InputError(f"invalid {option} {text!r}: not a valid internationalised domain name") from None


def dns_name(text: str, option: str) -> str:
    """*text* as a DNS name for the wire: A-labels for an internationalised name (IDNA 2008 + UTS 46).

    InputError (exit 3) names *option* when it is empty, has an over-long or empty label,
    or a character no DNS name can hold.
    """
    value = (text or "").strip()
    dot = "." if value.endswith(".") and value != "." else ""
    name = value[:-1] if dot else value
    if not name:
        raise InputError(f"{option} is empty: give a DNS name")
    try:
        ascii_name = a_label(name, option, text)
        ascii_name.encode("idna")  # every label 1-63 characters
    except UnicodeError:
        raise InputError(f"invalid {option} {text!r}: not a valid DNS name") from None
    bad = next((ch for ch in ascii_name if not (ch.isalnum() or ch in "-_.")), None)
    if bad is not None or len(ascii_name) > 253:
        raise InputError(f"invalid {option} {text!r}: not a valid DNS name")
    return ascii_name.lower() + dot
