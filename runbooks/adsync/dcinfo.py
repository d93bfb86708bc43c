"""What the domain controllers said when they answered: clock skew, the rootDSE, LDAPS certificates.

Pure judgement over the :class:`~runbooks.adsync.ports.PortProbe` objects of one DC; the
probes themselves are in :mod:`runbooks.adsync.ports`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..model import CheckResult, Metric, MetricValue, Status, worst
from ..probes.tcp import PortState
from .ports import PortProbe

#: Kerberos refuses tickets at 5 minutes of skew (the domain's MaxClockSkew default).
DEFAULT_SKEW = (120.0, 300.0)
#: Which clock to believe first: the KDC's (milliseconds), NTP, then rootDSE currentTime (whole seconds).
_SOURCE_RANK = {"Kerberos": 0, "NTP": 1, "LDAP": 2, "LDAPS": 3, "CLDAP": 4}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


@dataclass(frozen=True)
class SkewThresholds:
    """WARNING and CRITICAL clock skew, in seconds."""

    warn: float = DEFAULT_SKEW[0]
    crit: float = DEFAULT_SKEW[1]


def _seconds(text: str, option: str) -> float:
    match = _DURATION.match(text)
    if not match:
        raise InputError(f"invalid {option} {text!r}: expected seconds or a duration such as 2m")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def parse_skew(text: str, option: str = "--max-skew") -> SkewThresholds:
    """``2m,5m`` / ``120,300`` / ``90`` (WARNING only, CRITICAL stays 5 minutes)."""
    warn_text, _, crit_text = text.partition(",")
    warn = _seconds(warn_text, option)
    crit = _seconds(crit_text, option) if crit_text.strip() else max(warn, DEFAULT_SKEW[1])
    if warn <= 0 or crit <= 0 or warn > crit:
        raise InputError(f"invalid {option} {text!r}: WARN,CRIT with 0 < WARN <= CRIT")
    return SkewThresholds(warn, crit)


def _human(seconds: float) -> str:
    value = abs(seconds)
    if value >= 90:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s"


def assess_clock(dc: str, probes: Sequence[PortProbe], limits: SkewThresholds) -> CheckResult | None:
    """The DC's clock against this host's, from the best time source that answered (None: none did)."""
    sources = [p for p in probes if p.answer is not None and p.answer.speaks and p.answer.skew_s is not None]
    if not sources:
        return None
    sources.sort(key=lambda p: _SOURCE_RANK.get(p.answer.protocol if p.answer else "", 9))
    best = sources[0]
    assert best.answer is not None
    skew = best.answer.skew_s or 0.0
    # currentTime has whole seconds: judge what the skew is at least.
    judged = max(0.0, abs(skew) - best.answer.resolution_s)
    direction = "ahead of" if skew > 0 else "behind"
    how = f"{best.answer.protocol} on {best.spec}"
    readings = [
        {
            "source": f"{p.answer.protocol} {p.spec}",
            "skew_s": round(p.answer.skew_s or 0.0, 3),
            "server_time": p.answer.server_time.isoformat() if p.answer.server_time else None,
        }
        for p in sources
        if p.answer is not None
    ]
    details: dict[str, Any] = {
        "dc": dc,
        "source": how,
        "skew_s": round(skew, 3),
        "readings": readings,
        "warn_s": limits.warn,
        "crit_s": limits.crit,
        "reference": "this host's clock (keep it synchronised, or the skew is ours)",
    }
    metrics: dict[str, MetricValue] = {
        "clock_skew": Metric(round(abs(skew), 3), "s", warn=limits.warn, crit=limits.crit, min=0)
    }
    if judged >= limits.crit:
        status = Status.CRITICAL
        summary = (
            f"{dc}: clock {_human(skew)} {direction} this host ({how}): Kerberos fails at 5 minutes of "
            "skew (KRB_AP_ERR_SKEW), so AD Connect cannot authenticate"
        )
    elif judged >= limits.warn:
        status = Status.WARNING
        summary = (
            f"{dc}: clock {_human(skew)} {direction} this host ({how}): Kerberos fails at 5 minutes of "
            "skew — check the DC's time source (w32tm /query /status)"
        )
    else:
        status = Status.OK
        summary = f"{dc}: clock within {_human(skew)} of this host ({how})"
    return CheckResult("adsync.dc.clock", dc, "DC clock skew", status, summary, details=details, metrics=metrics)


_FUNCTIONALITY = {
    "0": "2000",
    "1": "2003 interim",
    "2": "2003",
    "3": "2008",
    "4": "2008 R2",
    "5": "2012",
    "6": "2012 R2",
    "7": "2016",
    "10": "2025",
}


def assess_ldap(dc: str, probes: Sequence[PortProbe]) -> CheckResult | None:
    """The anonymous rootDSE read over TCP 389 (None when 389/tcp was not probed or did not speak LDAP)."""
    from ..probes.adproto import summary_attributes

    probe = next((p for p in probes if p.spec.proto == "tcp" and p.spec.port == 389), None)
    if probe is None or probe.answer is None or not probe.answer.speaks:
        return None
    attrs = summary_attributes(probe.answer.attributes)
    if not attrs:
        return CheckResult(
            "adsync.dc.ldap",
            dc,
            "LDAP rootDSE",
            Status.WARNING,
            f"{dc}: LDAP answers on 389/tcp but the rootDSE read returned no attributes "
            f"({probe.answer.note or 'empty result'})",
            details={"dc": dc},
        )
    parts = []
    for key, label in (("dnsHostName", "dnsHostName"), ("defaultNamingContext", "naming context")):
        if key in attrs:
            parts.append(f"{label} {attrs[key]}")
    level = attrs.get("domainFunctionality")
    if level is not None:
        parts.append(f"domain functional level {_FUNCTIONALITY.get(str(level), level)}")
    if "highestCommittedUSN" in attrs:
        parts.append(f"highestCommittedUSN {attrs['highestCommittedUSN']}")
    status = Status.OK
    synced = str(attrs.get("isSynchronized", "")).upper()
    if synced == "FALSE":
        status = Status.WARNING
        parts.insert(0, "isSynchronized FALSE (the DC has not finished its initial replication)")
    elif synced == "TRUE":
        parts.append("isSynchronized TRUE")
    metrics: dict[str, Any] = {}
    usn = attrs.get("highestCommittedUSN")
    if isinstance(usn, str) and usn.isdigit():
        metrics["highest_committed_usn"] = Metric(int(usn), "c")
    return CheckResult(
        "adsync.dc.ldap",
        dc,
        "LDAP rootDSE",
        status,
        f"{dc}: LDAP answers: " + ", ".join(parts),
        details={"dc": dc, "rootdse": attrs},
        metrics=metrics,
    )


def assess_ldaps(
    dc: str,
    probe: PortProbe,
    ca_file: str | None,
    *,
    now: dt.datetime | None = None,
    warn_days: int = 30,
    crit_days: int = 7,
) -> CheckResult | None:
    """LDAPS (636, 3269): chain, name, expiry and EKU of the certificate, like a WinRM listener's."""
    from ..winrm_https.certinfo import ANY_EKU, SERVER_AUTH, name_matches, parse_certificate

    tls = probe.tls
    if tls is None or probe.state is not PortState.OPEN:
        return None
    target = f"{dc}:{probe.spec.port}"
    now = now or dt.datetime.now(dt.UTC)
    store = f"--ca-file {ca_file}" if ca_file else "the system store"
    if not tls.handshake or tls.cert_der is None:
        return CheckResult(
            "adsync.dc.ldaps",
            target,
            "LDAPS certificate",
            Status.CRITICAL,
            f"{target}: no TLS handshake ({tls.handshake_error or 'failed'})",
            details={"dc": dc, "error": tls.handshake_error},
        )
    info = parse_certificate(tls.cert_der)
    findings: list[tuple[Status, str]] = []
    left = info.days_left(now)
    days = math.floor(left) if left >= 0 else -math.floor(-left)
    expired = left < 0 or now < info.not_before
    if left < 0:
        findings.append((Status.CRITICAL, f"certificate expired {-days} days ago ({info.not_after.date()})"))
    elif now < info.not_before:
        findings.append((Status.CRITICAL, f"certificate not valid before {info.not_before.isoformat()}"))
    elif left < crit_days:
        findings.append((Status.CRITICAL, f"certificate expires in {days} days"))
    elif left < warn_days:
        findings.append((Status.WARNING, f"certificate expires in {days} days"))
    if not tls.verified and not (expired and tls.verify_code in (9, 10)):  # one root cause, one finding
        findings.append((Status.CRITICAL, f"chain not trusted by {store}: {tls.verify_reason}"))
    ok, how = name_matches(info, dc)
    if not ok:
        names = ", ".join([*info.dns_names, *info.ip_addresses]) or f"CN {info.subject_cn}"
        findings.append((Status.CRITICAL, f"name mismatch: certificate is for {names}, not {dc}"))
    if info.eku is not None and SERVER_AUTH not in info.eku and ANY_EKU not in info.eku:
        findings.append((Status.CRITICAL, "no Server Authentication EKU"))
    answer = probe.answer
    if answer is not None and not answer.speaks:
        findings.append((Status.WARNING, f"TLS works but no LDAP answer over it ({answer.note})"))
    details: dict[str, Any] = {
        "dc": dc,
        "port": probe.spec.port,
        "version": tls.version,
        "trust_store": store,
        "verified": bool(tls.verified),
        "certificate": info.to_dict(),
    }
    metrics: dict[str, MetricValue] = {"days_left": Metric(days, "", warn=warn_days, crit=crit_days, low=True)}
    status = worst(s for s, _ in findings)
    if findings:
        ordered = sorted(findings, key=lambda f: -f[0].severity)
        summary = f"{target}: " + "; ".join(t for _, t in ordered)
    else:
        summary = (
            f"{target}: {tls.version}, chain verified against {store}, {dc} matches {how}, valid for {days} more days"
        )
    return CheckResult(
        "adsync.dc.ldaps", target, "LDAPS certificate", status, summary, details=details, metrics=metrics
    )
