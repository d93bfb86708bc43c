"""``winrm check``: WinRM HTTPS listeners from the outside, without credentials.

Per host, one TLS connection (two when the chain does not verify: the second, non-verifying
handshake still fetches the certificate so the report says why), then an unauthenticated
WS-Man Identify on the same connection; when TLS 1.2+ was negotiated, one more short
handshake offering only TLS 1.0/1.1 tells whether the legacy protocols are still enabled.
Each finding is its own :class:`CheckResult`; a host that cannot be reached yields one
CRITICAL result, not a pile of dependent ones. Every step is bounded by the timeout.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..model import CheckResult, Metric, Report, Status
from ..probes import HostPort, PortState, parse_host_port, run_bounded
from ..probes.tls import TlsProbe, client_context, legacy_protocol, tls_probe
from . import wsman
from .certinfo import ANY_EKU, SERVER_AUTH, CertInfo, name_matches, parse_certificate

COMMAND = "winrm check"
DEFAULT_PORT = 5986
OLD_TLS = {"SSLv3": Status.CRITICAL, "TLSv1": Status.WARNING, "TLSv1.1": Status.WARNING}
WEAK_HASHES = {"md2": Status.CRITICAL, "md5": Status.CRITICAL, "sha1": Status.WARNING}
#: The checks that need a TLS handshake (omitted when there is none).
DEPENDENT_CHECKS = (
    "winrm.tls.version", "winrm.cert.chain", "winrm.cert.name", "winrm.cert.issuer", "winrm.cert.expiry",
    "winrm.cert.eku", "winrm.cert.key", "winrm.cert.signature", "winrm.wsman",
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


def read_hosts_file(path: str | Path) -> list[str]:
    """Hosts from a file: one a line, blank lines and ``#`` comments ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read --hosts-file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    hosts = []
    for line in text.splitlines():
        value = line.split("#", 1)[0].strip()
        if value:
            hosts.append(value)
    return hosts


def parse_targets(hosts: Iterable[str], port: int, resolve: dict[str, str]) -> list[HostPort]:
    """``HOST[:PORT]`` strings to unique :class:`HostPort` (``--resolve`` addresses applied)."""
    seen: dict[str, HostPort] = {}
    for text in hosts:
        hp = parse_host_port(text, port)
        address = resolve.get(hp.host.lower())
        if address:
            hp = HostPort(hp.host, hp.port, address)
        seen.setdefault(str(hp).lower(), hp)
    return list(seen.values())


# ------------------------------------------------------------------ per host


def _result(hp: HostPort, cid: str, name: str, status: Status, summary: str, **kw: object) -> CheckResult:
    return CheckResult(id=cid, target=str(hp), name=name, status=status, summary=summary, **kw)  # type: ignore[arg-type]


def _tcp_result(hp: HostPort, probe: TlsProbe, timeout: float) -> CheckResult:
    details: dict[str, object] = {"address": hp.connect_host, "state": str(probe.tcp_state)}
    if probe.tcp_state is PortState.OPEN:
        ms = probe.connect_s * 1000
        return _result(hp, "winrm.tcp", "TCP reachability", Status.OK, f"port {hp.port} open ({ms:.0f} ms)",
                       details=details, metrics={"connect_time": Metric(round(probe.connect_s, 6), "s")})
    details["not_checked"] = list(DEPENDENT_CHECKS)
    details["error"] = probe.tcp_error
    if probe.tcp_state is PortState.CLOSED:
        why = "connection refused" if "refused" in probe.tcp_error.lower() else f"unreachable ({probe.tcp_error})"
        summary = f"{why}: no HTTPS listener on port {hp.port}, or blocked"
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
        "version": probe.version, "cipher": probe.cipher, "sni": probe.server_name,
    }
    if info is not None:
        details["thumbprint"] = info.thumbprint
        details["certificate"] = info.to_dict()
    thumb = f", certificate {info.thumbprint}" if info else ""
    return _result(hp, "winrm.tls", "TLS handshake", Status.OK,
                   f"{probe.version} handshake ({probe.cipher}){thumb}", details=details)


def _version_result(hp: HostPort, probe: TlsProbe, legacy: str | None) -> CheckResult:
    version = probe.version or "unknown"
    status = OLD_TLS.get(version, Status.OK)
    summary = f"{version} negotiated"
    fix = "disable TLS 1.0/1.1 (SCHANNEL protocols) on the server"
    if status is not Status.OK:
        summary += f": obsolete, {fix}"
    elif legacy:
        status = OLD_TLS.get(legacy, Status.WARNING)
        summary += f", but {legacy} is still accepted: {fix}"
    return _result(hp, "winrm.tls.version", "TLS protocol version", status, summary,
                   details={"version": version, "legacy_accepted": legacy})


def _chain_result(
    hp: HostPort, probe: TlsProbe, info: CertInfo, ca_file: str | None, now: dt.datetime
) -> CheckResult:
    store = f"--ca-file {ca_file}" if ca_file else "the system store"
    details: dict[str, object] = {"trust_store": store, "thumbprint": info.thumbprint, "issuer": info.issuer}
    if probe.verified:
        return _result(hp, "winrm.cert.chain", "certificate chain", Status.OK,
                       f"chain verified against {store} (issuer {wsman.clean(info.issuer_cn or info.issuer)})",
                       details=details)
    reason = probe.verify_reason
    if info.self_issued and probe.verify_code in (18, 19, 20, 21):
        reason = "self-signed certificate"
    elif probe.verify_code in (9, 10):  # OpenSSL checks validity dates only once the chain is trusted
        leaf_bad = info.not_after < now if probe.verify_code == 10 else info.not_before > now
        what = "the certificate" if leaf_bad else "a CA certificate in the chain"
        reason = f"trusted issuer, but {what} is {reason} (see certificate expiry)"
    elif probe.verify_code == 26 and info.eku is not None and SERVER_AUTH not in info.eku:
        reason = "trusted issuer, but the certificate lacks the Server Authentication EKU"
    details.update({"verify_code": probe.verify_code, "verify_message": probe.verify_message})
    return _result(hp, "winrm.cert.chain", "certificate chain", Status.CRITICAL,
                   f"chain verification against {store} failed: {reason} "
                   f"(issuer {wsman.clean(info.issuer_cn or info.issuer)})",
                   details=details)


def _name_result(hp: HostPort, info: CertInfo) -> CheckResult:
    ok, how = name_matches(info, hp.host)
    details = {"host": hp.host, "dns_names": list(info.dns_names), "ip_addresses": list(info.ip_addresses),
               "subject_cn": info.subject_cn}
    if ok:
        return _result(hp, "winrm.cert.name", "certificate name", Status.OK, f"{hp.host} matches {how}",
                       details=details)
    names = wsman.clean(", ".join([*info.dns_names, *info.ip_addresses]) or f"CN {info.subject_cn}", 200)
    return _result(hp, "winrm.cert.name", "certificate name", Status.CRITICAL,
                   f"name mismatch: certificate is for {names}, not {hp.host}", details=details)


def _issuer_result(hp: HostPort, info: CertInfo, issuer: str | None) -> CheckResult:
    cn = wsman.clean(info.issuer_cn or "")
    details = {"issuer": info.issuer, "issuer_cn": info.issuer_cn, "expected_prefix": issuer}
    if not issuer:
        return _result(hp, "winrm.cert.issuer", "certificate issuer", Status.OK,
                       f"issued by {cn or info.issuer} (no --issuer to compare)", details=details)
    if cn.lower().startswith(issuer.lower()):
        return _result(hp, "winrm.cert.issuer", "certificate issuer", Status.OK,
                       f"issued by {cn}", details=details)
    return _result(hp, "winrm.cert.issuer", "certificate issuer", Status.CRITICAL,
                   f"issued by {cn or info.issuer!r}, expected an issuer CN starting with {issuer!r}",
                   details=details)


def _expiry_result(hp: HostPort, info: CertInfo, opts: CheckOptions, now: dt.datetime) -> CheckResult:
    left = info.days_left(now)
    days = math.floor(left) if left >= 0 else -math.floor(-left)  # whole days, either side of NotAfter
    date = info.not_after.date().isoformat()
    metric = Metric(days, "", warn=opts.warn_days, crit=opts.crit_days, low=True)
    details = {"not_before": info.not_before.isoformat(), "not_after": info.not_after.isoformat(),
               "thumbprint": info.thumbprint}
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
    return _result(hp, "winrm.cert.expiry", "certificate expiry", status, summary, details=details,
                   metrics={"days_left": metric})


def _eku_result(hp: HostPort, info: CertInfo) -> CheckResult:
    details = {"eku": info.eku_names if info.eku is not None else None}
    if info.eku is None:
        return _result(hp, "winrm.cert.eku", "certificate EKU", Status.OK,
                       "no EKU extension (valid for any purpose)", details=details)
    if SERVER_AUTH in info.eku or ANY_EKU in info.eku:
        return _result(hp, "winrm.cert.eku", "certificate EKU", Status.OK,
                       "Server Authentication EKU present", details=details)
    has = ", ".join(info.eku_names) or "none"
    return _result(hp, "winrm.cert.eku", "certificate EKU", Status.CRITICAL,
                   f"no Server Authentication EKU (has: {has}): clients reject it", details=details)


def _key_result(hp: HostPort, info: CertInfo) -> CheckResult:
    details = {"key_type": info.key_type, "key_size": info.key_size}
    label = f"{info.key_type} {info.key_size}" if info.key_size else info.key_type
    weak = info.key_type in ("RSA", "DSA") and (info.key_size or 0) < 2048
    if weak:
        return _result(hp, "winrm.cert.key", "certificate key", Status.WARNING,
                       f"{label}-bit key is too small (use RSA >= 2048)", details=details)
    return _result(hp, "winrm.cert.key", "certificate key", Status.OK, f"{label}-bit key", details=details)


def _signature_result(hp: HostPort, info: CertInfo) -> CheckResult:
    name = (info.signature_hash or "unknown").lower()
    status = WEAK_HASHES.get(name, Status.OK)
    summary = f"signed with {name.upper()}"
    if status is not Status.OK:
        summary += ": weak hash, reissue with SHA-256 (modern clients refuse it)"
    return _result(hp, "winrm.cert.signature", "certificate signature", status, summary,
                   details={"signature_hash": name})


def _wsman_result(hp: HostPort, probe: TlsProbe) -> CheckResult:
    answer: wsman.WsmanAnswer | None = probe.after
    if answer is None:
        answer = wsman.WsmanAnswer(error=probe.after_error or "no answer to POST /wsman")
    details: dict[str, object] = {
        "http_status": answer.status, "server": answer.server, "auth_schemes": answer.auth_schemes,
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
    if answer.basic_offered:
        return _result(hp, cid, name, Status.WARNING,
                       f"{summary}: Basic authentication offered over the network, disable it "
                       "(winrm set winrm/config/service/auth @{Basic=\"false\"})", details=details)
    return _result(hp, cid, name, Status.OK, summary, details=details)


def _host_header(hp: HostPort) -> str:
    host = f"[{hp.host}]" if ":" in hp.host else hp.host
    return f"{host}:{hp.port}"


def check_host(hp: HostPort, opts: CheckOptions, now: dt.datetime | None = None) -> list[CheckResult]:
    """All checks of one listener (one CRITICAL result when it cannot be reached)."""
    start = time.perf_counter()
    probe = tls_probe(
        hp.host, hp.port, timeout=opts.timeout, address=hp.connect_host, ca_file=opts.ca_file,
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
            legacy = None
            if probe.version not in OLD_TLS:  # a modern version was negotiated: are old ones still on?
                legacy = legacy_protocol(hp.host, hp.port, timeout=opts.timeout, address=hp.connect_host)
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
                results.append(_result(hp, "winrm.cert.chain", "certificate chain", Status.CRITICAL,
                                       cert_error or "the server presented no certificate"))
            results.append(_wsman_result(hp, probe))
    elapsed = round(time.perf_counter() - start, 6)
    for result in results:
        result.duration_s = elapsed
    return results


def _crashed(hp: HostPort, exc: BaseException) -> list[CheckResult]:
    return [_result(hp, "winrm.tcp", "TCP reachability", Status.UNKNOWN,
                    f"internal error while checking: {exc.__class__.__name__}: {exc}")]


def run_check(hosts: list[HostPort], opts: CheckOptions, concurrency: int = 64) -> Report:
    """Check every listener concurrently (at most *concurrency* at once); one report."""
    if not hosts:
        raise InputError("no hosts to check: give HOST[:PORT] arguments or --hosts-file")
    if concurrency < 1:
        raise InputError("--concurrency must be >= 1")
    opts.validate()
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
    probe = tls_probe(hp.host, hp.port, timeout=timeout, address=address or hp.connect_host,
                      ca_file=ca_file, verify=ca_file is not None)
    if not probe.cert_der:
        return None
    try:
        return parse_certificate(probe.cert_der)
    except ValueError:
        return None


__all__ = [
    "CheckOptions", "check_host", "parse_targets", "presented_certificate", "read_hosts_file", "run_check",
]
