"""TLS handshakes that never hang: SNI, verifying and non-verifying, with a hard deadline.

A server that accepts TCP and then never answers the ClientHello costs at most *timeout*
seconds: the handshake runs on a non-blocking socket against a deadline, so even a server
trickling one byte at a time cannot stretch it.

Both handshakes accept TLS 1.0 and up and weak keys/signatures (OpenSSL security level 0):
the caller judges the protocol version, key size and signature hash itself and reports them
as separate findings, rather than failing the whole handshake on them. The verifying
handshake only adds the chain check against the CA file (or the system store). When that
check fails on validity dates alone (OpenSSL checks them last), the retry verifies again with
the dates ignored, so a caller can report an expired certificate once, as expired, rather
than also as an untrusted chain.
Name resolution is bounded by the timeout too (the system resolver has no timeout of its own).
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import math
import select
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .concurrency import FD_BUDGET
from .tcp import PortState, state_of_errno, tcp_connect

#: OpenSSL verify codes worth naming in a report (X509_V_ERR_*).
VERIFY_REASONS = {
    9: "not yet valid",
    10: "expired",
    18: "self-signed certificate",
    19: "the chain ends in a root CA that is not trusted (wrong CA)",
    20: "issuer not trusted (wrong CA, or the server does not send the intermediate)",
    21: "issuer not trusted (wrong CA, or the server does not send the intermediate)",
    2: "issuer certificate not found: the trust store holds an intermediate CA but not the root it chains to "
    "(put the root CA in --ca-file)",
    26: "certificate not valid for server authentication (EKU)",
    23: "revoked",
    66: "key too weak",
    68: "signature digest too weak",
}


@dataclass
class TlsProbe:
    """What one TLS probe saw.

    ``tcp_state`` tells whether the TCP connect worked; ``handshake`` whether any TLS
    handshake completed; ``verified`` whether the chain verified (``None``: not tried).
    ``after`` is what the *then* callback returned on the open connection.
    """

    host: str
    port: int
    server_name: str | None
    tcp_state: PortState = PortState.ERROR
    tcp_error: str = ""
    tcp_errno: int | None = None
    connect_s: float = 0.0
    handshake: bool = False
    handshake_error: str = ""
    handshake_timed_out: bool = False
    verified: bool | None = None
    verify_code: int | None = None
    verify_message: str = ""
    #: After a failure on dates (verify codes 9/10): did the chain verify with the dates ignored?
    verified_except_dates: bool | None = None
    #: The verified chain, leaf first, as DER (when a verifying handshake completed).
    chain_der: tuple[bytes, ...] = ()
    version: str | None = None
    cipher: str | None = None
    cert_der: bytes | None = None
    after: Any = None
    after_error: str = ""
    duration_s: float = 0.0

    @property
    def verify_reason(self) -> str:
        """A short reason for a failed verification ('expired', 'self-signed', ...)."""
        if self.verify_code in VERIFY_REASONS:
            return VERIFY_REASONS[self.verify_code]
        return self.verify_message or "verification failed"


def _base_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    return ctx


_CONTEXT_LOCK = threading.Lock()


#: X509_V_FLAG_NO_CHECK_TIME (OpenSSL 1.1+; Python's ssl.VerifyFlags does not name it).
NO_CHECK_TIME = 0x200000
#: The OpenSSL verify codes for a certificate outside its validity dates.
DATE_CODES = (9, 10)


def client_context(ca_file: str | None = None, *, verify: bool = True, ignore_dates: bool = False) -> ssl.SSLContext:
    """A cached client context: verifying against *ca_file* (or the system store), or not.

    *ignore_dates* verifies the chain without checking validity dates (to tell "expired" from
    "untrusted").

    Built once even when a whole fleet of probe threads asks at the same moment (loading the
    system store costs tens of milliseconds of CPU; 200 threads loading it at once cost seconds).
    Raises :class:`InputError` when *ca_file* cannot be read as PEM certificates.
    """
    with _CONTEXT_LOCK:
        return _client_context(ca_file, verify, ignore_dates and verify)


@functools.lru_cache(maxsize=32)
def _client_context(ca_file: str | None, verify: bool, ignore_dates: bool = False) -> ssl.SSLContext:
    ctx = _base_context()
    if not verify:
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx.verify_mode = ssl.CERT_REQUIRED
    if ignore_dates:
        ctx.verify_flags |= NO_CHECK_TIME
    if ca_file:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise InputError(f"cannot load --ca-file {ca_file}: {exc}") from None
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    return ctx


#: The legacy protocols, oldest first, as ``SSLSocket.version()`` names them.
LEGACY_PROTOCOLS = ("TLSv1", "TLSv1.1")
_LEGACY_VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1}


def legacy_context(version: str | None = None) -> ssl.SSLContext:
    """A non-verifying context that offers only *version* (``TLSv1``/``TLSv1.1``), or both when None."""
    with _CONTEXT_LOCK:
        return _legacy_context(version)


@functools.lru_cache(maxsize=4)
def _legacy_context(version: str | None) -> ssl.SSLContext:
    ctx = _base_context()
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if version is not None:
            ctx.minimum_version = _LEGACY_VERSIONS[version]
            ctx.maximum_version = _LEGACY_VERSIONS[version]
        else:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx


def legacy_protocols(
    host: str,
    port: int,
    *,
    timeout: float = 5.0,
    address: str | None = None,
    server_name: str | None = None,
    skip: tuple[str, ...] = (),
) -> list[str]:
    """The legacy protocols (``TLSv1``, ``TLSv1.1``, oldest first) the server accepts.

    One ClientHello offers both: a server that refuses them (the common case) answers with an
    alert at once, and that is one connection. A server picks the newest version both sides
    offer, so an answer in TLS 1.0 means 1.1 is off; an answer in TLS 1.1 could hide that 1.0
    is still on, so TLS 1.0 is then offered alone. A protocol in *skip* is not offered. Each
    step is bounded by *timeout*; a server that cannot be reached or does not answer accepts
    nothing here.
    """
    offer = [v for v in LEGACY_PROTOCOLS if v not in skip]
    if not offer:
        return []

    def accepts(version: str | None) -> str | None:
        """The version the server answers a hello offering *version* (None: both) in, or None."""
        probe = TlsProbe(host=host, port=port, server_name=_sni(server_name if server_name is not None else host))
        tls = _attempt(probe, address or host, legacy_context(version), timeout)
        if tls is None:
            return None
        tls.close()
        return probe.version

    if len(offer) == 1:
        return offer if accepts(offer[0]) == offer[0] else []
    newest = accepts(None)
    if newest == "TLSv1":
        return ["TLSv1"]
    if newest != "TLSv1.1":
        return []
    return ["TLSv1", "TLSv1.1"] if accepts("TLSv1") == "TLSv1" else ["TLSv1.1"]


def legacy_protocol(
    host: str, port: int, *, timeout: float = 5.0, address: str | None = None, server_name: str | None = None
) -> str | None:
    """The oldest legacy protocol (``TLSv1``/``TLSv1.1``) the server accepts, or None (see :func:`legacy_protocols`)."""
    found = legacy_protocols(host, port, timeout=timeout, address=address, server_name=server_name)
    return found[0] if found else None


def handshake(sock: ssl.SSLSocket, deadline: float) -> None:
    """Complete the handshake on a non-blocking *sock* by *deadline* (monotonic) or raise TimeoutError."""
    sock.setblocking(False)
    while True:
        try:
            sock.do_handshake()
            return
        except ssl.SSLWantReadError:
            want_read = True
        except ssl.SSLWantWriteError:
            want_read = False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("TLS handshake timed out")
        poller = select.poll()  # poll, not select: descriptors above 1023 in big fleets
        poller.register(sock, select.POLLIN if want_read else select.POLLOUT)
        if not poller.poll(max(1, math.ceil(remaining * 1000))):
            raise TimeoutError("TLS handshake timed out")


def resolve(host: str, timeout: float) -> list[str]:
    """The addresses of *host*, within *timeout* (the system resolver has no timeout of its own).

    An IP address is returned as is. Raises ``socket.gaierror`` or ``TimeoutError``.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [host]
    box: list[object] = []
    done = threading.Event()

    def work() -> None:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            box.append(list(dict.fromkeys(str(info[4][0]) for info in infos)))
        except OSError as exc:
            box.append(exc)
        except UnicodeError:  # an empty or over-long label: the idna codec refuses it before any lookup
            box.append(socket.gaierror(socket.EAI_NONAME, "invalid host name (empty or too long label)"))
        done.set()

    threading.Thread(target=work, daemon=True, name=f"resolve-{host}").start()
    if not done.wait(timeout):
        raise TimeoutError(f"cannot resolve {host}: no answer within {timeout:g}s")
    result = box[0]
    if isinstance(result, OSError):
        raise result
    return result  # type: ignore[return-value]


def _connect(probe: TlsProbe, address: str, timeout: float) -> socket.socket | None:
    start = time.perf_counter()
    try:
        try:
            addresses = resolve(address, timeout)
        except TimeoutError as exc:
            probe.tcp_state, probe.tcp_error = PortState.ERROR, str(exc)
            return None
        except socket.gaierror as exc:
            probe.tcp_state, probe.tcp_error = PortState.ERROR, f"cannot resolve {address}: {exc.strerror}"
            return None
        deadline = time.monotonic() + timeout
        last: OSError = TimeoutError()
        for addr in addresses:  # like tcp_connect: the next address when one refuses
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                sock = tcp_connect(addr, probe.port, remaining)
            except TimeoutError as exc:
                last = exc
                break
            except OSError as exc:
                last = exc
                continue
            sock.settimeout(timeout)
            probe.tcp_state = PortState.OPEN
            return sock
        if isinstance(last, TimeoutError):
            probe.tcp_state, probe.tcp_error = PortState.FILTERED, f"no answer within {timeout:g}s"
        else:
            probe.tcp_state = state_of_errno(last.errno)
            probe.tcp_error = last.strerror or str(last)
            probe.tcp_errno = last.errno
        return None
    finally:
        probe.connect_s = round(time.perf_counter() - start, 6)


def _attempt(probe: TlsProbe, address: str, ctx: ssl.SSLContext, timeout: float) -> ssl.SSLSocket | None:
    """Connect and handshake once; fill *probe*; return the open TLS socket or None."""
    raw = _connect(probe, address, timeout)
    if raw is None:
        return None
    try:
        tls = ctx.wrap_socket(raw, server_hostname=probe.server_name, do_handshake_on_connect=False)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raw.close()
        probe.handshake_error = str(exc)
        return None
    try:
        handshake(tls, time.monotonic() + timeout)
    except TimeoutError:
        tls.close()
        probe.handshake_timed_out = True
        probe.handshake_error = f"TCP open but no TLS handshake within {timeout:g}s"
        return None
    except ssl.SSLCertVerificationError as exc:
        tls.close()
        probe.verified = False
        probe.verify_code = exc.verify_code
        probe.verify_message = exc.verify_message or str(exc)
        return None
    except (ssl.SSLError, OSError) as exc:
        tls.close()
        probe.handshake_error = _ssl_error_text(exc)
        return None
    tls.settimeout(timeout)
    probe.handshake = True
    probe.version = tls.version()
    cipher = tls.cipher()
    probe.cipher = cipher[0] if cipher else None
    probe.cert_der = tls.getpeercert(binary_form=True)
    if ctx.verify_mode is ssl.CERT_REQUIRED:
        probe.chain_der = _verified_chain(tls)
    return tls


def _verified_chain(tls: ssl.SSLSocket) -> tuple[bytes, ...]:
    """The verified chain, leaf first, as DER (``get_verified_chain`` is public from Python 3.13)."""
    sslobj: Any = getattr(tls, "_sslobj", None)
    getter = getattr(tls, "get_verified_chain", None) or getattr(sslobj, "get_verified_chain", None)
    if getter is None:  # pragma: no cover - every supported Python has one of them
        return ()
    try:
        import _ssl  # ENCODING_DER for the private Certificate objects before 3.13

        chain = getter() or []
        return tuple(c if isinstance(c, bytes) else c.public_bytes(_ssl.ENCODING_DER) for c in chain)
    except (AttributeError, ValueError, ssl.SSLError):  # pragma: no cover
        return ()


def _ssl_error_text(exc: BaseException) -> str:
    """A short, readable reason for a failed TLS operation."""
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or ""
        if reason == "WRONG_VERSION_NUMBER":
            return "the server does not speak TLS here (plain HTTP on this port?)"
        if reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED":
            return "the server requires a TLS client certificate"
        if reason:
            return f"TLS handshake failed: {reason.replace('_', ' ').lower()}"
    if isinstance(exc, ConnectionResetError | BrokenPipeError) or getattr(exc, "errno", None) == errno.ECONNRESET:
        return "connection reset during the TLS handshake"
    if isinstance(exc, ssl.SSLEOFError) or "EOF" in str(exc):
        return "connection closed during the TLS handshake"
    return f"TLS handshake failed: {exc}"


def tls_probe(
    host: str,
    port: int,
    *,
    timeout: float = 5.0,
    address: str | None = None,
    server_name: str | None = None,
    ca_file: str | None = None,
    verify: bool = True,
    then: Callable[[ssl.SSLSocket], Any] | None = None,
) -> TlsProbe:
    """Connect to *address* (default *host*):*port*, handshake with SNI, report what was seen.

    With *verify*, a verifying handshake is tried first (chain against *ca_file* or the
    system store; the host name is NOT checked here — judge it from ``cert_der``); when the
    chain fails, a second, non-verifying handshake still fetches the certificate. *then*
    runs on the open connection (an HTTP probe, say); its result lands in ``after``.
    Every step (connect, handshake, *then*'s socket operations) is bounded by *timeout*.
    """
    with FD_BUDGET.hold():  # one budget for the whole process: concurrent entries share it
        return _tls_probe(host, port, timeout, address, server_name, ca_file, verify, then)


def _tls_probe(  # noqa: PLR0917 - tls_probe's arguments, passed on
    host: str,
    port: int,
    timeout: float,
    address: str | None,
    server_name: str | None,
    ca_file: str | None,
    verify: bool,
    then: Callable[[ssl.SSLSocket], Any] | None,
) -> TlsProbe:
    start = time.perf_counter()
    name = server_name if server_name is not None else host
    probe = TlsProbe(host=host, port=port, server_name=_sni(name))
    where = address or host
    tls = _attempt(probe, where, client_context(ca_file, verify=verify), timeout)
    if tls is not None and verify:
        probe.verified = True
    elif tls is None and probe.verified is False and probe.verify_code in DATE_CODES:
        # Dates are checked last: is everything else about the chain right?
        code, message = probe.verify_code, probe.verify_message
        tls = _attempt(probe, where, client_context(ca_file, verify=True, ignore_dates=True), timeout)
        probe.verified, probe.verify_code, probe.verify_message = False, code, message
        probe.verified_except_dates = tls is not None
    if tls is None and probe.verified is False:
        tls = _attempt(probe, where, client_context(None, verify=False), timeout)
    if tls is not None:
        try:
            if then is not None:
                probe.after = then(tls)
        except (OSError, ValueError) as exc:
            probe.after_error = str(exc) or exc.__class__.__name__
        finally:
            tls.close()
    probe.duration_s = round(time.perf_counter() - start, 6)
    return probe


def _sni(name: str) -> str | None:
    """SNI must be a DNS name: none for an IP address (as browsers do)."""
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return name.rstrip(".") or None
    return None
