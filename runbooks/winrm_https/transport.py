"""``winrm audit`` on the wire: one pywinrm session per host, the script run, errors classified.

Certificate validation is always on (``--ca-file`` or the default trust store); with
``--resolve`` we connect to the address but TLS, SNI, ``Host:`` and the Kerberos SPN use the
name. The password is handed to pywinrm only: every text that came back from a library is
scrubbed of it (:class:`~runbooks.secrets.Scrubber`: any case, IDNA forms) before it is shown.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..model import Status
from ..probes import HostPort
from ..secrets import Scrubber, Secret
from . import audit_script

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .audit import AuditOptions

TRANSPORTS = ("ntlm", "kerberos", "credssp", "certificate")
_EXTRAS = {"kerberos": "pywinrm[kerberos]", "credssp": "pywinrm[credssp]", "ntlm": "requests-ntlm"}


def require_transport(transport: str) -> None:
    """InputError when the library pywinrm needs for *transport* is not installed."""
    import winrm.transport as wt

    have = {"ntlm": wt.HAVE_NTLM, "kerberos": wt.HAVE_KERBEROS, "credssp": wt.HAVE_CREDSSP}.get(transport, True)
    if not have:
        extra = f"pip install 'opsbook[{transport}]'" if transport in ("kerberos", "credssp") else "pip install it"
        raise InputError(f"--transport {transport} needs the {_EXTRAS[transport]} package ({extra})")


class AuditFailure(Exception):
    """Why a host could not be audited: a status and a summary safe to show."""

    def __init__(self, status: Status, summary: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(summary)
        self.status = status
        self.summary = summary
        self.details = details or {}


def endpoint(hp: HostPort) -> str:
    """The WS-Management URL of *hp* (HTTPS only)."""
    host = f"[{hp.connect_host}]" if ":" in hp.connect_host else hp.connect_host
    return f"https://{host}:{hp.port}/wsman"


def _timeouts(timeout: float) -> tuple[int, int]:
    """(read_timeout_sec, operation_timeout_sec) for pywinrm: integers, read > operation >= 1."""
    read = max(2, math.ceil(timeout))
    operation = max(1, min(read - 1, math.floor(read * 2 / 3)))
    return read, operation


def scrub(text: str, secret: Secret | None) -> str:
    """*text* from a library (an exception message) with the secret masked (any case), should it be there."""
    scrubber = Scrubber()
    if secret:
        scrubber.add(secret.reveal())
    return scrubber(text)


def _classify(exc: BaseException, hp: HostPort, opts: AuditOptions) -> AuditFailure:
    """A pywinrm/requests exception as an :class:`AuditFailure` (no secrets in it)."""
    import requests
    from winrm import exceptions as wx

    def _short(error: BaseException) -> str:
        return scrub(_short_text(error), opts.password)

    who = opts.username or "client certificate"
    if isinstance(exc, wx.InvalidCredentialsError):
        return AuditFailure(
            Status.CRITICAL,
            f"login refused (HTTP 401) for {who} with {opts.transport}: wrong password, locked or "
            "expired account, or not a member of Administrators / Remote Management Users",
            {"http_status": 401, "transport": opts.transport},
        )
    if isinstance(exc, requests.exceptions.SSLError):
        client = " or our client certificate was refused" if opts.transport == "certificate" else ""
        return AuditFailure(
            Status.CRITICAL,
            f"TLS certificate of {hp} not trusted or wrong name (use --ca-file for a private CA)"
            f"{client}: {_short(exc)}",
            {"error": "tls"},
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return AuditFailure(Status.CRITICAL, f"no answer from {hp} within {opts.timeout:g}s (filtered or down)")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return AuditFailure(Status.UNKNOWN, f"{hp} stopped answering (read timeout {opts.timeout:g}s)")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return AuditFailure(Status.CRITICAL, f"cannot connect to {hp}: {_short(exc)}")
    if isinstance(exc, wx.WSManFaultError):
        return AuditFailure(
            Status.UNKNOWN,
            scrub(f"WS-Management fault from {hp}: {exc.reason}", opts.password),
            {"wsman_fault_code": exc.wsman_fault_code},
        )
    if isinstance(exc, wx.WinRMTransportError):
        return AuditFailure(Status.UNKNOWN, f"HTTP {exc.code} from {hp}", {"http_status": exc.code})
    if isinstance(exc, wx.WinRMError):
        return AuditFailure(Status.UNKNOWN, scrub(f"WinRM error: {exc}", opts.password))
    return AuditFailure(Status.UNKNOWN, scrub(f"internal error: {exc.__class__.__name__}: {exc}", opts.password))


def _short_text(exc: BaseException) -> str:
    text = str(exc)
    resolve = re.search(r"Failed to resolve '([^']*)' \(\[Errno -?\d+\] ([^)]*)\)", text)
    if resolve:
        return f"cannot resolve {resolve.group(1)}: {resolve.group(2)}"
    for marker in ("certificate verify failed: ", "Failed to establish a new connection: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    text = re.sub(r"\s*\(_ssl\.c:\d+\)", "", text)
    return " ".join(text.split())[:240].rstrip("')\" ")


def run_remote(hp: HostPort, opts: AuditOptions) -> tuple[bytes, bytes, int, float]:
    """Run the audit script on *hp*: (stdout, stderr, exit code, seconds). Raises AuditFailure."""
    from winrm.exceptions import WinRMOperationTimeoutError
    from winrm.protocol import Protocol

    read, operation = _timeouts(opts.timeout)
    password = opts.password.reveal() if opts.password else None
    pinned = _pinned_name(hp)
    start = time.monotonic()
    try:
        proto = Protocol(
            endpoint(hp),
            transport=opts.transport,  # type: ignore[arg-type]
            username=opts.username if opts.transport != "certificate" else None,  # kerberos: the principal
            password=password if opts.transport != "certificate" else None,
            server_cert_validation="validate",
            ca_trust_path=opts.ca_file if opts.ca_file else "legacy_requests",
            cert_pem=opts.cert_pem,
            cert_key_pem=opts.cert_key_pem,
            read_timeout_sec=read,
            operation_timeout_sec=operation,
            proxy=None,
            kerberos_hostname_override=pinned,  # the SPN is HTTP/<name>, not HTTP/<address>
        )
        if pinned:
            _pin_name(proto.transport.build_session(), pinned, hp.port)
    except Exception as exc:
        raise AuditFailure(Status.UNKNOWN, scrub(f"cannot set up WinRM: {exc}", opts.password)) from None
    command, arguments = audit_script.command_line(hp.port)
    shell_id = command_id = None
    try:
        shell_id = proto.open_shell(codepage=65001, noprofile=True)
        command_id = proto.run_command(shell_id, command, arguments)
        stdout: list[bytes] = []
        stderr: list[bytes] = []
        deadline = start + opts.timeout
        while True:
            try:
                out, err, code, done = proto.get_command_output_raw(shell_id, command_id)
            except WinRMOperationTimeoutError:
                out, err, code, done = b"", b"", -1, False
            stdout.append(out)
            stderr.append(err)
            if done:
                break
            if time.monotonic() > deadline:
                raise AuditFailure(Status.UNKNOWN, f"the audit script did not finish within {opts.timeout:g}s")
        return b"".join(stdout), b"".join(stderr), code, time.monotonic() - start
    except AuditFailure:
        raise
    except Exception as exc:
        raise _classify(exc, hp, opts) from None
    finally:
        if shell_id is not None:
            with contextlib.suppress(Exception):
                if command_id is not None:
                    proto.cleanup_command(shell_id, command_id)
            with contextlib.suppress(Exception):
                proto.close_shell(shell_id)
        with contextlib.suppress(Exception):
            proto.transport.close_session()


def _pinned_name(hp: HostPort) -> str | None:
    """With ``--resolve`` (we connect to an address): the name TLS must verify and Kerberos must use."""
    if not hp.address:
        return None
    from .check import wire_name

    return wire_name(hp.host).rstrip(".")


def _pin_name(session: Any, name: str, port: int) -> None:
    """Connect to the URL's address but send SNI, check the certificate and send ``Host:`` for *name*."""
    from requests.adapters import HTTPAdapter

    class PinnedName(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["server_hostname"] = name
            kwargs["assert_hostname"] = name
            super().init_poolmanager(*args, **kwargs)

    session.mount("https://", PinnedName())
    session.headers["Host"] = f"{name}:{port}"


def stderr_text(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    if text.startswith("#< CLIXML"):
        parts = re.findall(r"<S S=\"Error\">(.*?)</S>", text, flags=re.S)
        text = "".join(parts).replace("_x000D__x000A_", " ")
    return " ".join(text.split())[:300]
