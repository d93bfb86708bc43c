"""``winrm audit`` findings: an :class:`~.inventory.Inventory` turned into check results.

The listeners (HTTP still on, HTTPS present and enabled), the bound certificate (in the store,
private key, renewed but not rebound: :func:`replacement` picks the certificate the binding
script would), the listener Hostname, the HTTP.sys binding, the service's authentication
settings and the certificate the listener actually presents.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from ..model import CheckResult, Metric, Status
from ..probes import HostPort
from .certinfo import CertInfo
from .inventory import Inventory, Listener, StoreCert, normalise_thumbprint

DEPENDENT_CHECKS = (
    "winrm.audit.http",
    "winrm.audit.listener",
    "winrm.audit.listener.thumbprint",
    "winrm.audit.renewal",
    "winrm.audit.hostname",
    "winrm.audit.binding",
    "winrm.audit.presented",
)


#: The presented certificate: a CertInfo, None (no handshake), or a string (why not probed).
Presented = CertInfo | str | None


def _date_text(when: dt.datetime | None) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if when else "unknown"


def replacement(
    inv: Inventory,
    bound: StoreCert | None,
    hostname: str,
    now: dt.datetime,
    template: str | None = None,
) -> StoreCert | None:
    """The certificate the listener should use instead, chosen as the binding script does.

    Same FQDN (the listener Hostname, else a name of the bound certificate), a chain to the
    same trusted root as the bound certificate (the binding script's ``-RootCA`` test: a
    renewal may come from another issuing CA of that root; only when the bound certificate's
    chain builds to no root is the issuer compared instead), Server Authentication, private
    key, valid now, and a later NotAfter than the bound one; the latest NotAfter wins (ties:
    NotBefore, thumbprint). The certificate template must be *template* (name or OID) when
    given, else the bound certificate's (when known): a newer Computer-template certificate
    (Client + Server Authentication, CN = FQDN) is not a renewal of the WinRM one.
    """
    names = [hostname] if hostname else list(bound.names if bound else ())
    candidates = []
    for cert in inv.certificates:
        if bound is not None and cert.thumbprint == bound.thumbprint:
            continue
        if bound is not None and not _same_root(cert, bound):
            continue
        if template is not None:
            if not cert.from_template(template):
                continue
        elif bound is not None and bound.template_label and not cert.same_template(bound):
            continue
        if not (cert.has_private_key and cert.server_auth() and cert.valid_at(now)):
            continue
        if not any(cert.covers(n) for n in names):
            continue
        if (
            bound is not None
            and bound.not_after is not None
            and cert.not_after is not None
            and cert.not_after <= bound.not_after
        ):
            continue
        candidates.append(cert)
    if not candidates:
        return None
    far = dt.datetime.min.replace(tzinfo=dt.UTC)
    candidates.sort(key=lambda c: (c.not_after or far, c.not_before or far), reverse=True)
    best = candidates[0]
    ties = [c for c in candidates if (c.not_after, c.not_before) == (best.not_after, best.not_before)]
    return min(ties, key=lambda c: c.thumbprint)


def _same_root(cert: StoreCert, bound: StoreCert) -> bool:
    """Does *cert* chain to the bound certificate's root (issuer compared when that root is unknown)?"""
    if bound.root_thumbprint:
        return cert.root_thumbprint == bound.root_thumbprint
    return cert.issuer == bound.issuer


def findings(
    hp: HostPort,
    inv: Inventory,
    presented: Presented,
    *,
    port: int,
    warn_days: int = 30,
    now: dt.datetime | None = None,
    template: str | None = None,
) -> list[CheckResult]:
    """Every finding for one host from its inventory (and the certificate it presents).

    *template*: the certificate template a replacement must come from (default: the bound one's).
    """
    now = now or dt.datetime.now(dt.UTC)
    target = str(hp)
    out: list[CheckResult] = []

    def add(cid: str, name: str, status: Status, summary: str, tgt: str = target, **kw: Any) -> None:
        out.append(CheckResult(id=cid, target=tgt, name=name, status=status, summary=summary, **kw))

    http = [lst for lst in inv.listeners if lst.transport == "HTTP" and lst.enabled]
    if http:
        where = ", ".join(lst.label for lst in http)
        add(
            "winrm.audit.http",
            "HTTP listener",
            Status.WARNING,
            f"HTTP listener still enabled ({where}): remove it once HTTPS works "
            "(Remove-Item WSMan:\\localhost\\Listener\\<name> -Recurse)",
            details={"listeners": [lst.to_dict() for lst in http]},
        )
    else:
        add("winrm.audit.http", "HTTP listener", Status.OK, "no HTTP listener enabled")

    if inv.service_auth:
        on = [k for k, v in inv.service_auth.items() if v]
        weak = [k for k in ("Basic", "CredSSP") if any(a.lower() == k.lower() for a in on)]
        adetails = {"service_auth": dict(inv.service_auth)}
        if weak:
            from .check import AUTH_FIX

            add(
                "winrm.audit.auth",
                "service authentication",
                Status.WARNING,
                f"{' and '.join(weak)} authentication enabled on the WinRM service, {AUTH_FIX}",
                details=adetails,
            )
        else:
            add(
                "winrm.audit.auth",
                "service authentication",
                Status.OK,
                f"enabled: {', '.join(on) or 'none'} (no Basic, no CredSSP)",
                details=adetails,
            )

    https = [lst for lst in inv.listeners if lst.transport == "HTTPS" and lst.port == port]
    if not https:
        seen = ", ".join(lst.label for lst in inv.listeners) or "none"
        add(
            "winrm.audit.listener",
            "HTTPS listener",
            Status.CRITICAL,
            f"no HTTPS listener on port {port} (listeners: {seen})",
            details={"listeners": [lst.to_dict() for lst in inv.listeners], "not_checked": list(DEPENDENT_CHECKS[2:])},
        )
        return out
    for index, listener in enumerate(https):
        tgt = target if index == 0 else f"{target} ({listener.address})"
        out += _listener_findings(
            hp,
            tgt,
            inv,
            listener,
            presented,
            port=port,
            warn_days=warn_days,
            now=now,
            add_first=index == 0,
            template=template,
        )
    return out


def _check(tgt: str, cid: str, name: str, status: Status, summary: str, **kw: Any) -> CheckResult:
    """One listener finding on target *tgt*."""
    return CheckResult(id=cid, target=tgt, name=name, status=status, summary=summary, **kw)


def _listener_check(tgt: str, listener: Listener, port: int) -> CheckResult:
    """The HTTPS listener itself: enabled (OK) or disabled (CRITICAL), with its Hostname and certificate."""
    ldetails = listener.to_dict()
    state = "enabled" if listener.enabled else "DISABLED"
    return _check(
        tgt,
        "winrm.audit.listener",
        "HTTPS listener",
        Status.OK if listener.enabled else Status.CRITICAL,
        f"HTTPS listener {listener.address}:{port} {state}, Hostname {listener.hostname or '(empty)'}, "
        f"certificate {listener.thumbprint or '(none)'}" + (f", source {listener.source}" if listener.source else ""),
        details=ldetails,
    )


def _thumbprint_check(
    tgt: str,
    listener: Listener,
    bound: StoreCert | None,
    better: StoreCert | None,
    fix: str,
) -> CheckResult:
    """The listener's thumbprint is in the store, with its private key."""
    tdetails: dict[str, Any] = {"thumbprint": listener.thumbprint, "replacement": better.to_dict() if better else None}
    if not listener.thumbprint:
        return _check(
            tgt,
            "winrm.audit.listener.thumbprint",
            "listener certificate in store",
            Status.CRITICAL,
            "the HTTPS listener has no CertificateThumbprint" + fix,
            details=tdetails,
        )
    if bound is None:
        return _check(
            tgt,
            "winrm.audit.listener.thumbprint",
            "listener certificate in store",
            Status.CRITICAL,
            f"listener thumbprint {listener.thumbprint} is not in Cert:\\LocalMachine\\My "
            "(deleted or archived after renewal): the listener breaks at the next restart" + fix,
            details=tdetails,
        )
    if not bound.has_private_key:
        tdetails["certificate"] = bound.to_dict()
        return _check(
            tgt,
            "winrm.audit.listener.thumbprint",
            "listener certificate in store",
            Status.CRITICAL,
            f"certificate {bound.thumbprint} is in the store but has no private key" + fix,
            details=tdetails,
        )
    tdetails["certificate"] = bound.to_dict()
    return _check(
        tgt,
        "winrm.audit.listener.thumbprint",
        "listener certificate in store",
        Status.OK,
        f"certificate {bound.thumbprint} ({bound.subject}) is in the store with its private key",
        details=tdetails,
    )


def _renewal_check(
    tgt: str,
    bound: StoreCert | None,
    better: StoreCert | None,
    *,
    wanted: str,
    of_template: str,
    fix: str,
    now: dt.datetime,
    warn_days: int,
) -> CheckResult | None:
    """Renewed but not rebound: the bound certificate's expiry, and whether a renewal waits in the store.

    None when there is no bound certificate with a known expiry.
    """
    if bound is None or bound.not_after is None:
        return None
    days = (bound.not_after - now).total_seconds() / 86400
    left = math.floor(days)
    outage = _date_text(bound.not_after)
    rdetails: dict[str, Any] = {
        "bound": bound.to_dict(),
        "replacement": better.to_dict() if better else None,
        "outage_starts": bound.not_after.isoformat(),
        "template": wanted or None,
    }
    metrics = {"days_left": Metric(left, "", warn=float(warn_days), crit=0.0, low=True)}
    if days <= 0:
        status = Status.CRITICAL
        summary = f"listener serves certificate {bound.thumbprint}, expired since {outage}"
        summary += (
            " although a renewed one is in the store (renewed but not rebound)" + fix
            if better
            else f": no renewed certificate{of_template} in the store, check auto-enrolment (certutil -pulse)"
        )
    elif better is not None:
        status = Status.CRITICAL if days < warn_days else Status.WARNING
        summary = (
            f"renewed but not rebound: listener still uses {bound.thumbprint}; outage starts {outage} "
            f"({left} days) when it expires{fix}"
        )
    elif days < warn_days:
        status = Status.WARNING
        summary = (
            f"listener certificate {bound.thumbprint} expires {outage} ({left} days) and no renewed "
            f"certificate{of_template} is in the store: check auto-enrolment"
        )
    else:
        status = Status.OK
        summary = f"listener certificate valid until {outage} ({left} days); no newer certificate to bind"
    return _check(tgt, "winrm.audit.renewal", "renewal rebound", status, summary, details=rdetails, metrics=metrics)


def _hostname_check(tgt: str, hp: HostPort, listener: Listener, bound: StoreCert | None) -> CheckResult | None:
    """The listener Hostname is on the bound certificate (None: no bound certificate)."""
    if bound is None:
        return None
    names = list(bound.names)
    hdetails = {"hostname": listener.hostname, "certificate_names": names, "host": hp.host}
    if not listener.hostname:
        return _check(
            tgt,
            "winrm.audit.hostname",
            "listener Hostname",
            Status.WARNING,
            "the HTTPS listener has an empty Hostname; set it to the FQDN on the certificate",
            details=hdetails,
        )
    if bound.covers(listener.hostname):
        return _check(
            tgt,
            "winrm.audit.hostname",
            "listener Hostname",
            Status.OK,
            f"Hostname {listener.hostname} matches the certificate",
            details=hdetails,
        )
    return _check(
        tgt,
        "winrm.audit.hostname",
        "listener Hostname",
        Status.WARNING,
        f"Hostname {listener.hostname} is not on the certificate ({', '.join(names) or 'no names'}): "
        "clients using that name fail validation; recreate the listener",
        details=hdetails,
    )


def _binding_check(tgt: str, inv: Inventory, listener: Listener) -> CheckResult | None:
    """The HTTP.sys binding of a wildcard listener serves the listener's certificate (None: not applicable)."""
    if not (listener.address == "*" and inv.ssl_bindings):
        return None
    bdetails = {"bindings": dict(inv.ssl_bindings), "thumbprint": listener.thumbprint}
    wrong = {k: v for k, v in inv.ssl_bindings.items() if v != listener.thumbprint}
    if wrong:
        what = ", ".join(f"{k} -> {v}" for k, v in wrong.items())
        return _check(
            tgt,
            "winrm.audit.binding",
            "HTTP.sys binding",
            Status.CRITICAL,
            f"HTTP.sys serves another certificate than the listener's {listener.thumbprint}: {what} "
            "(stale netsh http sslcert binding)",
            details=bdetails,
        )
    return _check(
        tgt,
        "winrm.audit.binding",
        "HTTP.sys binding",
        Status.OK,
        f"HTTP.sys binding ({', '.join(inv.ssl_bindings)}) uses the listener's certificate",
        details=bdetails,
    )


def _presented_check(tgt: str, hp: HostPort, listener: Listener, presented: Presented) -> CheckResult:
    """What clients actually get: the certificate presented in the TLS handshake vs the configured one."""
    if isinstance(presented, CertInfo):
        pdetails = {"presented": presented.to_dict(), "listener_thumbprint": listener.thumbprint}
        if normalise_thumbprint(presented.thumbprint) == listener.thumbprint:
            return _check(
                tgt,
                "winrm.audit.presented",
                "presented certificate",
                Status.OK,
                f"the listener presents its configured certificate {presented.thumbprint}",
                details=pdetails,
            )
        return _check(
            tgt,
            "winrm.audit.presented",
            "presented certificate",
            Status.CRITICAL,
            f"the listener presents {presented.thumbprint} ({presented.subject}, valid until "
            f"{_date_text(presented.not_after)}) but is configured with {listener.thumbprint or '(none)'}",
            details=pdetails,
        )
    return _check(
        tgt,
        "winrm.audit.presented",
        "presented certificate",
        Status.UNKNOWN,
        presented or f"no TLS handshake with {hp} to fetch the presented certificate",
    )


def _listener_findings(
    hp: HostPort,
    tgt: str,
    inv: Inventory,
    listener: Listener,
    presented: Presented,
    *,
    port: int,
    warn_days: int,
    now: dt.datetime,
    add_first: bool,
    template: str | None = None,
) -> list[CheckResult]:
    """The findings of one HTTPS listener, in report order (the presented certificate only for the first)."""
    bound = inv.cert(listener.thumbprint) if listener.thumbprint else None
    better = replacement(inv, bound, listener.hostname, now, template)
    wanted = template if template is not None else (bound.template_label if bound is not None else "")
    of_template = f" from template {wanted}" if wanted else ""
    fix = (
        (
            f"; rebind to {better.thumbprint} (valid until {_date_text(better.not_after)}) with the script "
            "from 'opsbook winrm script'"
        )
        if better
        else ""
    )
    found = [
        _listener_check(tgt, listener, port),
        _thumbprint_check(tgt, listener, bound, better, fix),
        _renewal_check(
            tgt, bound, better, wanted=wanted, of_template=of_template, fix=fix, now=now, warn_days=warn_days
        ),
        _hostname_check(tgt, hp, listener, bound),
        _binding_check(tgt, inv, listener),
        _presented_check(tgt, hp, listener, presented) if add_first else None,
    ]
    return [check for check in found if check is not None]
