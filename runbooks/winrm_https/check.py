"""``winrm check``: WinRM HTTPS listeners from the outside, without credentials.

Per host, one TLS connection (two when the chain does not verify: the second, non-verifying
handshake still fetches the certificate so the report says why), then an unauthenticated
WS-Man Identify on the same connection; then one short handshake per legacy protocol older
than the negotiated one (TLS 1.0 alone, TLS 1.1 alone) tells which are still enabled.
Each finding is its own :class:`CheckResult`; a host that cannot be reached yields one
CRITICAL result, not a pile of dependent ones. Every step is bounded by the timeout.
"""

from __future__ import annotations

import datetime as dt
import errno
import ipaddress
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..model import CheckResult, Metric, Report, Status
from ..probes import HostPort, PortState, parse_host_port, run_bounded
from ..probes.tls import DATE_CODES, TlsProbe, client_context, legacy_protocols, tls_probe
from . import wsman
from .certinfo import ANY_EKU, SERVER_AUTH, CertInfo, name_matches, parse_certificate

COMMAND = "winrm check"
DEFAULT_PORT = 5986
OLD_TLS = {"SSLv3": Status.CRITICAL, "TLSv1": Status.WARNING, "TLSv1.1": Status.WARNING}
#: What a reader calls the old protocols (``SSLSocket.version()`` says ``TLSv1`` for TLS 1.0).
PROTOCOL_NAMES = {"SSLv3": "SSL 3.0", "TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1"}
#: The handshake runs at OpenSSL security level 0 to see everything; Python's default context (pywinrm,
#: Ansible, opsbook's own audit) runs at level 2 and refuses SHA-1/MD5 signatures and RSA keys below 2048 bits.
WEAK_HASHES = {"md2": Status.CRITICAL, "md5": Status.CRITICAL, "sha1": Status.CRITICAL}
CLIENTS_REFUSE = (
    "clients refuse this certificate: Python's default TLS context (pywinrm, Ansible, opsbook winrm "
    "audit) runs at OpenSSL security level 2"
)
#: How to turn off Basic (the password goes to the server as is) and CredSSP (reusable credentials delegated).
AUTH_FIX = (
    'disable it (winrm set winrm/config/service/auth @{Basic="false"}; CredSSP: Disable-WSManCredSSP -Role Server)'
)
#: The checks that need a TLS handshake (omitted when there is none).
DEPENDENT_CHECKS = (
    "winrm.tls.version",
    "winrm.cert.chain",
    "winrm.cert.name",
    "winrm.cert.issuer",
    "winrm.cert.expiry",
    "winrm.cert.eku",
    "winrm.cert.key",
    "winrm.cert.signature",
    "winrm.wsman",
)


@dataclass(frozen=True)
class CheckOptions:
    """How to judge a listener (the command's options, converted)."""

    ca_file: str | None = None
    issuer: str | None = None
    warn_days: int = 30
    crit_days: int = 7
    timeout: float = 5.0

    def validate(self) -> None:
        """Refuse inconsistent options with :class:`InputError`; load the CA file once."""
        if self.crit_days < 0 or self.warn_days < 0:
            raise InputError("--warn-days and --crit-days must be >= 0")
        if self.crit_days > self.warn_days:
            raise InputError(f"--crit-days ({self.crit_days}) must not exceed --warn-days ({self.warn_days})")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise InputError("--timeout must be a positive number of seconds")
        if self.ca_file is not None:
            path = Path(self.ca_file)
            if not path.is_file():
                raise InputError(f"--ca-file {self.ca_file}: no such file")
            client_context(str(path), verify=True)  # raises InputError when unreadable


def wire_name(host: str) -> str:
    """The ASCII form of *host* used on the wire: DNS lookup, SNI, ``Host:`` and certificate names.

    An internationalised name becomes its A-labels (``münchen.corp.test`` ->
    ``xn--mnchen-3ya.corp.test``, IDNA 2008/UTS 46 when the ``idna`` package is there), as the
    certificate's SAN carries it; an IP address is returned without brackets. A name no DNS
    lookup could take (an empty or over-long label, a stray byte-order mark) is an
    :class:`InputError`.
    """
    bare = host.strip("[]")
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        return bare
    dot = "." if host.endswith(".") and host != "." else ""
    name = host[:-1] if dot else host
    try:
        if name.isascii():
            name.encode("idna")  # checks every label is 1-63 characters
            ascii_name = name
        else:
            try:
                import idna  # requests' dependency: IDNA 2008 with the UTS 46 mapping, like browsers
            except ImportError:  # pragma: no cover - installed with pywinrm/requests
                ascii_name = name.encode("idna").decode("ascii")
            else:
                ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except UnicodeError as exc:  # idna.IDNAError is one
        reason = str(exc).removeprefix("encoding with 'idna' codec failed ").strip("()")
        reason = reason.removeprefix("UnicodeError: ") or "not a DNS name"
        raise InputError(f"invalid host name {wsman.clean(host, 80)!r}: {reason}") from None
    if len(ascii_name) > 253:
        raise InputError(f"invalid host name {wsman.clean(host, 80)!r}: longer than 253 characters")
    bad = next((ch for ch in ascii_name if not (ch.isalnum() or ch in "-_.")), None)
    if bad is not None:
        raise InputError(f"invalid host name {wsman.clean(host, 80)!r}: {bad!r} is not allowed in a DNS name")
    return ascii_name + dot


def read_hosts_file(path: str | Path) -> list[str]:
    """Hosts from a file: one a line, blank lines and ``#`` comments ignored.

    UTF-8 with or without a byte-order mark (Notepad, ``Out-File -Encoding utf8``), LF or
    CRLF. A line that is not a valid ``HOST[:PORT]`` is an :class:`InputError` naming the line.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or (
            "not UTF-8 text (save it as UTF-8)" if isinstance(exc, UnicodeDecodeError) else str(exc)
        )
        raise InputError(f"cannot read --hosts-file {path}: {reason}") from None
    hosts = []
    for number, line in enumerate(text.splitlines(), 1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        try:
            wire_name(parse_host_port(value, DEFAULT_PORT).host)
        except InputError as exc:
            raise InputError(f"--hosts-file {path} line {number}: {exc}") from None
        hosts.append(value)
    return hosts


def parse_targets(hosts: Iterable[str], port: int, resolve: dict[str, str]) -> list[HostPort]:
    """``HOST[:PORT]`` strings to unique :class:`HostPort` (``--resolve`` addresses applied).

    Host names are compared in their ASCII form (case and trailing dot aside), so
    ``münchen.corp.test`` and ``xn--mnchen-3ya.corp.test`` are one target and either
    spelling in ``--resolve`` applies to both.
    """
    by_name = {wire_name(name).lower().rstrip("."): address for name, address in resolve.items()}
    seen: dict[str, HostPort] = {}
    for text in hosts:
        hp = parse_host_port(text, port)
        key = wire_name(hp.host).lower().rstrip(".")
        address = by_name.get(key)
        if address:
            hp = HostPort(hp.host, hp.port, address)
        seen.setdefault(f"{key}|{hp.port}|{hp.address or ''}", hp)
    return list(seen.values())


# ------------------------------------------------------------------ per host


def _result(hp: HostPort, cid: str, name: str, status: Status, summary: str, **kw: object) -> CheckResult:
    return CheckResult(id=cid, target=str(hp), name=name, status=status, summary=summary, **kw)  # type: ignore[arg-type]


def _tcp_result(hp: HostPort, probe: TlsProbe, timeout: float) -> CheckResult:
    details: dict[str, object] = {"address": hp.connect_host, "state": str(probe.tcp_state)}
    if probe.tcp_state is PortState.OPEN:
        ms = probe.connect_s * 1000
        return _result(
            hp,
            "winrm.tcp",
            "TCP reachability",
            Status.OK,
            f"port {hp.port} open ({ms:.0f} ms)",
            details=details,
            metrics={"connect_time": Metric(round(probe.connect_s, 6), "s")},
        )
    details["not_checked"] = list(DEPENDENT_CHECKS)
    details["error"] = probe.tcp_error
    if probe.tcp_errno in (errno.EMFILE, errno.ENFILE):  # our limit, not the host's fault
        return _result(
            hp,
            "winrm.tcp",
            "TCP reachability",
            Status.UNKNOWN,
            f"not checked: {probe.tcp_error} here (raise 'ulimit -n' or lower --concurrency)",
            details=details,
        )
    if probe.tcp_state is PortState.CLOSED:
        why = "connection refused" if "refused" in probe.tcp_error.lower() else f"connection reset ({probe.tcp_error})"
        summary = f"{why}: the host answered and no HTTPS listener is on port {hp.port}"
    elif probe.tcp_state is PortState.FILTERED and probe.tcp_errno is not None:
        summary = f"port {hp.port} filtered: {probe.tcp_error} (a firewall rejects the connection)"
    elif probe.tcp_state is PortState.FILTERED:
        summary = f"no answer within {timeout:g}s: port {hp.port} filtered (firewall) or host down"
    else:
        summary = probe.tcp_error or "connection failed"
    return _result(hp, "winrm.tcp", "TCP reachability", Status.CRITICAL, summary, details=details)


def _tls_result(hp: HostPort, probe: TlsProbe, info: CertInfo | None) -> CheckResult:
    details: dict[str, object]
    if not probe.handshake:
        details = {"error": probe.handshake_error, "not_checked": list(DEPENDENT_CHECKS)}
        summary = probe.handshake_error or "TLS handshake failed"
        if probe.verified is False:  # the verifying handshake rejected the chain, the retry failed too
            details["verify_message"] = probe.verify_message
            summary = f"certificate rejected ({probe.verify_reason}), then: {summary}"
        return _result(hp, "winrm.tls", "TLS handshake", Status.CRITICAL, summary, details=details)
    details = {
        "version": probe.version,
        "cipher": probe.cipher,
        "sni": probe.server_name,
    }
    if info is not None:
        details["thumbprint"] = info.thumbprint
        details["certificate"] = info.to_dict()
    thumb = f", certificate {info.thumbprint}" if info else ""
    return _result(
        hp,
        "winrm.tls",
        "TLS handshake",
        Status.OK,
        f"{probe.version} handshake ({probe.cipher}){thumb}",
        details=details,
    )


def _version_result(hp: HostPort, probe: TlsProbe, legacy: list[str]) -> CheckResult:
    """The negotiated version, and every legacy protocol the server still accepts (each probed alone)."""
    version = probe.version or "unknown"
    status = max(
        [OLD_TLS.get(version, Status.OK), *(OLD_TLS.get(v, Status.WARNING) for v in legacy)], key=lambda s: s.severity
    )
    still = " and ".join(PROTOCOL_NAMES.get(v, v) for v in legacy)
    still = f"{still} {'are' if len(legacy) > 1 else 'is'} still accepted" if legacy else ""
    fix = "disable TLS 1.0/1.1 (SCHANNEL protocols) on the server"
    if version in OLD_TLS:
        also = f"and {still}, " if still else ""
        summary = f"{PROTOCOL_NAMES.get(version, version)} negotiated: obsolete, {also}{fix}"
    elif legacy:
        summary = f"{version} negotiated, but {still}: {fix}"
    else:
        summary = f"{version} negotiated"
    return _result(
        hp,
        "winrm.tls.version",
        "TLS protocol version",
        status,
        summary,
        details={
            "version": version,
            "legacy_accepted": legacy[0] if legacy else None,
            "legacy_protocols": list(legacy),
        },
    )


def _chain_result(hp: HostPort, probe: TlsProbe, info: CertInfo, ca_file: str | None, now: dt.datetime) -> CheckResult:
    store = f"--ca-file {ca_file}" if ca_file else "the system store"
    details: dict[str, object] = {"trust_store": store, "thumbprint": info.thumbprint, "issuer": info.issuer}
    if probe.verified:
        return _result(
            hp,
            "winrm.cert.chain",
            "certificate chain",
            Status.OK,
            f"chain verified against {store} (issuer {wsman.clean(info.issuer_cn or info.issuer)})",
            details=details,
        )
    reason = probe.verify_reason
    if info.self_issued and probe.verify_code in (18, 19, 20, 21):
        reason = "self-signed certificate"
    elif probe.verify_code in DATE_CODES:  # OpenSSL checks validity dates only once the chain is trusted
        leaf_bad = not info.not_before <= now <= info.not_after
        ca_bad = _ca_out_of_dates(probe.chain_der[1:], now)
        if leaf_bad and probe.verified_except_dates and not ca_bad:
            # One root cause, one finding: the leaf's dates, reported by winrm.cert.expiry.
            details["verified_except_dates"] = True
            return _result(
                hp,
                "winrm.cert.chain",
                "certificate chain",
                Status.OK,
                f"chain verified against {store}, validity dates aside (see certificate expiry) "
                f"(issuer {wsman.clean(info.issuer_cn or info.issuer)})",
                details=details,
            )
        what = "a CA certificate in the chain" if ca_bad or not leaf_bad else "the certificate"
        reason = f"trusted issuer, but {what} is {ca_bad or reason}" + ("" if ca_bad else " (see certificate expiry)")
    elif probe.verify_code == 26 and info.eku is not None and SERVER_AUTH not in info.eku:
        reason = "trusted issuer, but the certificate lacks the Server Authentication EKU"
    details.update({"verify_code": probe.verify_code, "verify_message": probe.verify_message})
    return _result(
        hp,
        "winrm.cert.chain",
        "certificate chain",
        Status.CRITICAL,
        f"chain verification against {store} failed: {reason} (issuer {wsman.clean(info.issuer_cn or info.issuer)})",
        details=details,
    )


def _ca_out_of_dates(chain_der: tuple[bytes, ...], now: dt.datetime) -> str:
    """``expired``/``not yet valid`` when a CA certificate of a verified chain is outside its dates, else ''."""
    for der in chain_der:
        try:
            ca = parse_certificate(der)
        except ValueError:
            continue
        if ca.not_after < now:
            return "expired"
        if ca.not_before > now:
            return "not yet valid"
    return ""


def _name_result(hp: HostPort, info: CertInfo) -> CheckResult:
    wire = wire_name(hp.host)
    ok, how = name_matches(info, wire)
    shown = hp.host if wire.lower() == hp.host.lower() else f"{hp.host} ({wire})"
    details = {
        "host": hp.host,
        "dns_names": list(info.dns_names),
        "ip_addresses": list(info.ip_addresses),
        "subject_cn": info.subject_cn,
    }
    if wire != hp.host:
        details["ascii_host"] = wire
    if ok:
        return _result(hp, "winrm.cert.name", "certificate name", Status.OK, f"{shown} matches {how}", details=details)
    names = wsman.clean(", ".join([*info.dns_names, *info.ip_addresses]) or f"CN {info.subject_cn}", 200)
    return _result(
        hp,
        "winrm.cert.name",
        "certificate name",
        Status.CRITICAL,
        f"name mismatch: certificate is for {names}, not {shown}",
        details=details,
    )


def _issuer_result(hp: HostPort, info: CertInfo, issuer: str | None) -> CheckResult:
    cn = wsman.clean(info.issuer_cn or "")
    details = {"issuer": info.issuer, "issuer_cn": info.issuer_cn, "expected_prefix": issuer}
    if not issuer:
        return _result(
            hp,
            "winrm.cert.issuer",
            "certificate issuer",
            Status.OK,
            f"issued by {cn or info.issuer} (no --issuer to compare)",
            details=details,
        )
    if cn.lower().startswith(issuer.lower()):
        return _result(hp, "winrm.cert.issuer", "certificate issuer", Status.OK, f"issued by {cn}", details=details)
    return _result(
        hp,
        "winrm.cert.issuer",
        "certificate issuer",
        Status.CRITICAL,
        f"issued by {cn or info.issuer!r}, expected an issuer CN starting with {issuer!r}",
        details=details,
    )


def _expiry_result(hp: HostPort, info: CertInfo, opts: CheckOptions, now: dt.datetime) -> CheckResult:
    left = info.days_left(now)
    days = math.floor(left) if left >= 0 else -math.floor(-left)  # whole days, either side of NotAfter
    date = info.not_after.date().isoformat()
    metric = Metric(days, "", warn=opts.warn_days, crit=opts.crit_days, low=True)
    details = {
        "not_before": info.not_before.isoformat(),
        "not_after": info.not_after.isoformat(),
        "thumbprint": info.thumbprint,
    }
    if now < info.not_before:
        status, summary = Status.CRITICAL, f"not valid before {info.not_before.isoformat()} (clock or early rollout)"
    elif left < 0:
        status, summary = Status.CRITICAL, f"certificate expired {-days} days ago ({date})"
    elif left < opts.crit_days:
        status, summary = Status.CRITICAL, f"certificate expires in {days} days ({date})"
    elif left < opts.warn_days:
        status, summary = Status.WARNING, f"certificate expires in {days} days ({date})"
    else:
        status, summary = Status.OK, f"certificate valid for {days} more days ({date})"
    return _result(
        hp, "winrm.cert.expiry", "certificate expiry", status, summary, details=details, metrics={"days_left": metric}
    )


def _eku_result(hp: HostPort, info: CertInfo) -> CheckResult:
    details = {"eku": info.eku_names if info.eku is not None else None}
    if info.eku is None:
        return _result(
            hp,
            "winrm.cert.eku",
            "certificate EKU",
            Status.OK,
            "no EKU extension (valid for any purpose)",
            details=details,
        )
    if SERVER_AUTH in info.eku or ANY_EKU in info.eku:
        return _result(
            hp, "winrm.cert.eku", "certificate EKU", Status.OK, "Server Authentication EKU present", details=details
        )
    has = ", ".join(info.eku_names) or "none"
    return _result(
        hp,
        "winrm.cert.eku",
        "certificate EKU",
        Status.CRITICAL,
        f"no Server Authentication EKU (has: {has}): clients reject it",
        details=details,
    )


def _key_result(hp: HostPort, info: CertInfo) -> CheckResult:
    details = {"key_type": info.key_type, "key_size": info.key_size}
    label = f"{info.key_type} {info.key_size}" if info.key_size else info.key_type
    weak = info.key_type in ("RSA", "DSA") and (info.key_size or 0) < 2048
    if weak:
        return _result(
            hp,
            "winrm.cert.key",
            "certificate key",
            Status.CRITICAL,
            f"{label}-bit key is too small — {CLIENTS_REFUSE}, which needs RSA >= 2048; reissue it",
            details=details,
        )
    return _result(hp, "winrm.cert.key", "certificate key", Status.OK, f"{label}-bit key", details=details)


def _signature_result(hp: HostPort, info: CertInfo) -> CheckResult:
    name = (info.signature_hash or "unknown").lower()
    status = WEAK_HASHES.get(name, Status.OK)
    summary = f"signed with {name.upper()}"
    if status is not Status.OK:
        summary += f": weak hash — {CLIENTS_REFUSE}, which refuses {name.upper()} signatures; reissue with SHA-256"
    return _result(
        hp, "winrm.cert.signature", "certificate signature", status, summary, details={"signature_hash": name}
    )


def _wsman_result(hp: HostPort, probe: TlsProbe) -> CheckResult:
    answer: wsman.WsmanAnswer | None = probe.after
    if answer is None:
        answer = wsman.WsmanAnswer(error=probe.after_error or "no answer to POST /wsman")
    details: dict[str, object] = {
        "http_status": answer.status,
        "server": answer.server,
        "auth_schemes": answer.auth_schemes,
    }
    if answer.identify:
        details.update({"product_vendor": answer.product_vendor, "product_version": answer.product_version})
    cid, name = "winrm.wsman", "WS-Management listener"
    if not answer.is_winrm:
        what = answer.error or f"HTTP {answer.status} {answer.reason}".strip()
        if answer.server and not answer.error:
            what += f" from {answer.server}"
        return _result(hp, cid, name, Status.CRITICAL, f"not a WinRM listener: {what}", details=details)
    if answer.identify:
        summary = f"WinRM listener (IdentifyResponse: {answer.product_vendor} {answer.product_version})".strip()
    else:
        summary = f"WinRM listener (401, offers {', '.join(answer.auth_schemes)})"
    weak = [what for what, offered in (("Basic", answer.basic_offered), ("CredSSP", answer.credssp_offered)) if offered]
    if weak:
        return _result(
            hp,
            cid,
            name,
            Status.WARNING,
            f"{summary}: {' and '.join(weak)} authentication offered over the network, {AUTH_FIX}",
            details=details,
        )
    return _result(hp, cid, name, Status.OK, summary, details=details)


def _host_header(hp: HostPort) -> str:
    wire = wire_name(hp.host)
    host = f"[{wire}]" if ":" in wire else wire
    return f"{host}:{hp.port}"


def check_host(hp: HostPort, opts: CheckOptions, now: dt.datetime | None = None) -> list[CheckResult]:
    """All checks of one listener (one CRITICAL result when it cannot be reached)."""
    start = time.perf_counter()
    wire = wire_name(hp.host)
    probe = tls_probe(
        wire,
        hp.port,
        timeout=opts.timeout,
        address=hp.address or wire,
        ca_file=opts.ca_file,
        then=lambda sock: wsman.identify(sock, _host_header(hp), opts.timeout),
    )
    results = [_tcp_result(hp, probe, opts.timeout)]
    if probe.tcp_state is PortState.OPEN:
        info: CertInfo | None = None
        cert_error = ""
        if probe.cert_der:
            try:
                info = parse_certificate(probe.cert_der)
            except ValueError as exc:
                cert_error = f"cannot parse the certificate: {exc}"
        results.append(_tls_result(hp, probe, info))
        if probe.handshake:
            legacy: list[str] = []
            if probe.version not in ("SSLv3", "TLSv1"):  # are older protocols than the negotiated one still on?
                skip = ("TLSv1.1",) if probe.version == "TLSv1.1" else ()
                legacy = legacy_protocols(wire, hp.port, timeout=opts.timeout, address=hp.address or wire, skip=skip)
            results.append(_version_result(hp, probe, legacy))
            if info is not None:
                now = now or dt.datetime.now(dt.UTC)
                results += [
                    _chain_result(hp, probe, info, opts.ca_file, now),
                    _name_result(hp, info),
                    _issuer_result(hp, info, opts.issuer),
                    _expiry_result(hp, info, opts, now),
                    _eku_result(hp, info),
                    _key_result(hp, info),
                    _signature_result(hp, info),
                ]
            else:
                results.append(
                    _result(
                        hp,
                        "winrm.cert.chain",
                        "certificate chain",
                        Status.CRITICAL,
                        cert_error or "the server presented no certificate",
                    )
                )
            results.append(_wsman_result(hp, probe))
    elapsed = round(time.perf_counter() - start, 6)
    for result in results:
        result.duration_s = elapsed
    return results


def _crashed(hp: HostPort, exc: BaseException) -> list[CheckResult]:
    return [
        _result(
            hp,
            "winrm.tcp",
            "TCP reachability",
            Status.UNKNOWN,
            f"internal error while checking: {exc.__class__.__name__}: {exc}",
        )
    ]


#: Descriptors one host may hold at once (its socket, a resolver's socket, slack), and a reserve.
FDS_PER_HOST = 3
FD_RESERVE = 16


def fd_budget(concurrency: int) -> int:
    """The concurrency the open-file limit allows, raising the soft limit towards the hard one first.

    ``--concurrency 1000`` under the usual soft limit of 1024 descriptors would otherwise fail
    hosts with "Too many open files" and blame them for it.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return concurrency
    need = concurrency * FDS_PER_HOST + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return concurrency
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return max(1, min(concurrency, (soft - FD_RESERVE) // FDS_PER_HOST))


def run_check(hosts: list[HostPort], opts: CheckOptions, concurrency: int = 64) -> Report:
    """Check every listener concurrently (at most *concurrency* at once, within the open-file limit)."""
    if not hosts:
        raise InputError("no hosts to check: give HOST[:PORT] arguments or --hosts-file")
    if concurrency < 1:
        raise InputError("--concurrency must be >= 1")
    opts.validate()
    concurrency = fd_budget(min(concurrency, len(hosts)))
    report = Report(command=COMMAND)
    now = dt.datetime.now(dt.UTC)
    for results in run_bounded(lambda hp: check_host(hp, opts, now), hosts, concurrency, on_error=_crashed):
        report.checks.extend(results)
    return report.finish()


def presented_certificate(
    hostport: str | HostPort,
    timeout: float = 5.0,
    ca_file: str | None = None,
    *,
    default_port: int = DEFAULT_PORT,
    address: str | None = None,
) -> CertInfo | None:
    """The certificate a listener presents (``.thumbprint`` as Windows shows it), or None.

    For ``winrm audit``: compare ``presented_certificate(host).thumbprint`` with the
    listener's ``CertificateThumbprint``. The chain is not required to verify (the
    certificate is fetched either way); ``None`` means no TLS handshake completed.
    """
    hp = hostport if isinstance(hostport, HostPort) else parse_host_port(hostport, default_port)
    wire = wire_name(hp.host)
    probe = tls_probe(
        wire,
        hp.port,
        timeout=timeout,
        address=address or hp.address or wire,
        ca_file=ca_file,
        verify=ca_file is not None,
    )
    if not probe.cert_der:
        return None
    try:
        return parse_certificate(probe.cert_der)
    except ValueError:
        return None


__all__ = [
    "CheckOptions",
    "check_host",
    "parse_targets",
    "presented_certificate",
    "read_hosts_file",
    "run_check",
    "wire_name",
]
