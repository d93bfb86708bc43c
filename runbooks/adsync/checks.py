"""Tenant sync data from Microsoft Graph turned into check results, with their thresholds.

``adsync.graph.sync_enabled``, ``adsync.graph.last_sync``, ``adsync.graph.last_password_sync``
(beta API) and ``adsync.graph.provisioning_errors``; the age thresholds (``90m``, ``1h,3h``)
are parsed here too.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from typing import Any

from ..errors import InputError
from ..model import CheckResult, Metric, Status, Timer
from .http import _Context, _graph_get, _GraphError

_PERMISSION_HINT = (
    "grant the app registration the Microsoft Graph APPLICATION permission "
    "Organization.Read.All (or Directory.Read.All) and click 'Grant admin consent'"
)
_USERS_PERMISSION_HINT = (
    "counting provisioning errors needs the APPLICATION permission User.Read.All "
    "(or Directory.Read.All) with admin consent"
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: A timestamp further in the future than this means this host's clock is off.
_CLOCK_SKEW_S = 300.0


def parse_duration(text: str) -> float:
    """Parse one duration such as ``90m``, ``3h``, ``45s``, ``1d`` or ``1h30m`` to seconds.

    A bare number is refused: ``3`` could mean seconds, minutes or hours.
    """
    raw = text.strip()
    if not raw:
        raise InputError("empty duration: use e.g. 90m, 3h, 45s or 1d")
    compact = raw.replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not parts or "".join(n + u for n, u in parts).lower() != compact.lower():
        if re.fullmatch(r"\d+(?:\.\d+)?", compact):
            raise InputError(f"duration {raw!r} has no unit: write e.g. {compact}m or {compact}h (s, m, h, d)")
        raise InputError(f"invalid duration {raw!r}: use e.g. 90m, 3h, 45s, 1d or 1h30m")
    seconds = sum(float(number) * _UNIT_SECONDS[unit.lower()] for number, unit in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise InputError(f"duration {raw!r} must be greater than zero")
    return seconds


def parse_age_thresholds(text: str, default_crit: float = 3 * 3600.0) -> tuple[float, float]:
    """Parse ``WARN`` or ``WARN,CRIT`` durations (``90m``, ``3h``, ``45s``, ``1d``) to seconds.

    With ``WARN`` alone the critical threshold stays at *default_crit* (3 h, Microsoft's own
    look-back), or at WARN when WARN is larger. CRIT below WARN is an :class:`InputError`.
    """
    if not isinstance(text, str):
        raise InputError(f"invalid age threshold {text!r}: use WARN or WARN,CRIT such as 1h,3h")
    pieces = [p.strip() for p in text.split(",")]
    if len(pieces) > 2 or not all(pieces):
        raise InputError(f"invalid age threshold {text!r}: use WARN or WARN,CRIT such as 1h,3h")
    warn = parse_duration(pieces[0])
    crit = parse_duration(pieces[1]) if len(pieces) == 2 else max(default_crit, warn)
    if crit < warn:
        raise InputError(
            f"invalid age threshold {text!r}: the critical age ({format_age(crit)}) "
            f"is below the warning age ({format_age(warn)})"
        )
    return warn, crit


def format_age(seconds: float) -> str:
    """Human form of a duration: ``45s``, ``12m 5s``, ``2h 3m``, ``4d 2h``."""
    s = max(0, round(seconds))
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def _result(ctx_tenant: str, check_id: str, name: str, status: Status, summary: str, **kw: Any) -> CheckResult:
    return CheckResult(id=check_id, target=ctx_tenant, name=name, status=status, summary=summary, **kw)


def _parse_time(value: str) -> datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Graph may send 7 fractional digits; fromisoformat takes at most 6.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _age_check(
    ctx: _Context,
    check_id: str,
    name: str,
    what: str,
    value: Any,
    *,
    thresholds: tuple[float, float],
    sync_enabled: bool | None,
    null_hint: str,
    extra: dict[str, Any],
) -> CheckResult:
    """Judge a last-sync timestamp against (warn, crit) seconds."""
    warn, crit = thresholds
    details: dict[str, Any] = {"warn_s": warn, "crit_s": crit, **extra}
    if value in (None, ""):
        details["value"] = None
        return _result(
            ctx.tenant,
            check_id,
            name,
            Status.UNKNOWN,
            f"{what} is not visible (null although sync is enabled): {null_hint}",
            details=details,
        )
    try:
        when = _parse_time(str(value))
    except ValueError:
        details["value"] = str(value)[:100]
        return _result(
            ctx.tenant, check_id, name, Status.UNKNOWN, f"{what}: cannot parse {str(value)[:40]!r}", details=details
        )
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    details["value"] = stamp
    raw_age = time.time() - when.timestamp()
    age = max(0.0, raw_age)
    details["age_s"] = round(age, 1)
    metric = Metric(round(age, 1), "s", warn=warn, crit=crit, min=0)
    limits = f"warning above {format_age(warn)}, critical above {format_age(crit)}"
    if raw_age < -_CLOCK_SKEW_S:
        return _result(
            ctx.tenant,
            check_id,
            name,
            Status.WARNING,
            f"{what} {stamp} is {format_age(-raw_age)} in the future: check this host's clock (NTP)",
            details=details,
            metrics={"age": metric},
        )
    status = Status.CRITICAL if age > crit else Status.WARNING if age > warn else Status.OK
    summary = f"{what} {format_age(age)} ago ({stamp}); {limits}"
    if status is not Status.OK and sync_enabled is False:
        summary += " — directory sync is disabled for the tenant"
    elif status is not Status.OK:
        summary += " — check the ADSync service and the Synchronization Service Manager on the sync server"
    return _result(ctx.tenant, check_id, name, status, summary, details=details, metrics={"age": metric})


#: onPremisesSyncEnabled -> the status and summary of adsync.graph.sync_enabled.
_SYNC_ENABLED: dict[bool | None, tuple[Status, str]] = {
    True: (
        Status.OK,
        "directory synchronisation is enabled for the tenant (onPremisesSyncEnabled=true)",
    ),
    False: (
        Status.CRITICAL,
        "directory synchronisation is DISABLED for the tenant (onPremisesSyncEnabled=false): nothing from "
        "on-premises AD reaches Entra ID — someone turned sync off (or it is being decommissioned)",
    ),
    None: (
        Status.CRITICAL,
        "directory synchronisation is not enabled for the tenant (onPremisesSyncEnabled is null: "
        "Entra ID has no record of on-premises sync) — wrong tenant, or AD Connect was never set up",
    ),
}


def _organization_checks(ctx: _Context) -> list[CheckResult]:
    opts = ctx.options
    results: list[CheckResult] = []
    v1_path = "/v1.0/organization"
    try:
        with Timer() as timer:
            body = _graph_get(
                ctx,
                v1_path,
                {"$select": "id,createdDateTime,onPremisesSyncEnabled,onPremisesLastSyncDateTime"},
                _PERMISSION_HINT,
            )
    except _GraphError as exc:
        return [
            _result(
                ctx.tenant,
                "adsync.graph.sync_enabled",
                "directory sync enabled",
                Status.UNKNOWN,
                exc.summary,
                details=exc.details,
            )
        ]
    orgs = body.get("value")
    if not isinstance(orgs, list) or not orgs or not isinstance(orgs[0], dict):
        return [
            _result(
                ctx.tenant,
                "adsync.graph.sync_enabled",
                "directory sync enabled",
                Status.UNKNOWN,
                f"GET {v1_path} returned no organization — {_PERMISSION_HINT}",
                details={"path": v1_path},
            )
        ]
    org = orgs[0]
    enabled = org.get("onPremisesSyncEnabled")
    base = {"api": "v1.0", "path": v1_path}
    if org.get("id") and org.get("createdDateTime") is None:
        # With User.Read alone Graph returns the organization with every property except id, displayName
        # and verifiedDomains null: a null sync date then means "not allowed to read", not "never synced".
        return [
            _result(
                ctx.tenant,
                "adsync.graph.sync_enabled",
                "directory sync enabled",
                Status.UNKNOWN,
                "missing permission: Graph returned the organization with only id, displayName and verifiedDomains "
                "(createdDateTime is null too), so the sync dates cannot be read — " + _PERMISSION_HINT,
                details={**base, "createdDateTime": None, "missing_permission": True},
                duration_s=timer.s,
            )
        ]
    known = enabled if isinstance(enabled, bool) else None  # anything but true/false: Graph has no record
    status, summary = _SYNC_ENABLED[known]
    results.append(
        _result(
            ctx.tenant,
            "adsync.graph.sync_enabled",
            "directory sync enabled",
            status,
            summary,
            details={**base, "onPremisesSyncEnabled": known},
            duration_s=timer.s,
        )
    )
    last_sync = org.get("onPremisesLastSyncDateTime")
    if enabled is True or last_sync:
        results.append(
            _age_check(
                ctx,
                "adsync.graph.last_sync",
                "last directory sync",
                "last directory sync",
                last_sync,
                thresholds=opts.max_sync_age,
                sync_enabled=enabled,
                null_hint="the app most likely lacks Organization.Read.All — " + _PERMISSION_HINT,
                extra=base,
            )
        )
    # With sync off and no password sync on record, sync_enabled already says it all.
    password_check = _password_sync_check(ctx, enabled)
    if enabled is True or password_check.details.get("value") is not None:
        results.append(password_check)
    return results


def _password_sync_check(ctx: _Context, enabled: bool | None) -> CheckResult:
    path = "/beta/organization"
    check_id, name = "adsync.graph.last_password_sync", "last password hash sync (beta API)"
    base = {"api": "beta", "path": path, "note": "onPremisesLastPasswordSyncDateTime exists only in Graph beta"}
    try:
        body = _graph_get(ctx, path, {"$select": "id,onPremisesLastPasswordSyncDateTime"}, _PERMISSION_HINT)
    except _GraphError as exc:
        return _result(
            ctx.tenant, check_id, name, Status.UNKNOWN, f"{exc.summary} (beta API)", details={**base, **exc.details}
        )
    orgs = body.get("value")
    org = orgs[0] if isinstance(orgs, list) and orgs and isinstance(orgs[0], dict) else {}
    value = org.get("onPremisesLastPasswordSyncDateTime")
    return _age_check(
        ctx,
        check_id,
        name,
        "last password hash sync (beta API)",
        value,
        thresholds=ctx.options.max_password_sync_age,
        sync_enabled=enabled,
        null_hint="the app most likely lacks Organization.Read.All (" + _PERMISSION_HINT + "); "
        "a tenant that signs in through pass-through authentication or federation without "
        "password hash sync has no such timestamp at all",
        extra=base,
    )


def _provisioning_errors_check(ctx: _Context) -> CheckResult:
    check_id, name = "adsync.graph.provisioning_errors", "users with provisioning errors"
    path = "/v1.0/users"
    params = {
        "$filter": "onPremisesProvisioningErrors/any(e:e/category eq 'PropertyConflict')",
        "$count": "true",
        "$select": "userPrincipalName,onPremisesProvisioningErrors",
        "$top": str(max(1, min(999, ctx.options.provisioning_error_sample))),
    }
    try:
        body = _graph_get(ctx, path, params, _USERS_PERMISSION_HINT, headers={"ConsistencyLevel": "eventual"})
    except _GraphError as exc:
        return _result(ctx.tenant, check_id, name, Status.UNKNOWN, exc.summary, details=exc.details)
    raw_users = body.get("value")
    users: list[Any] = raw_users if isinstance(raw_users, list) else []
    count = body.get("@odata.count")
    if not isinstance(count, int) or isinstance(count, bool):
        count = len(users)
    sample: list[dict[str, Any]] = []
    for user in users[: ctx.options.provisioning_error_sample]:
        if not isinstance(user, dict):
            continue
        errors = user.get("onPremisesProvisioningErrors") or []
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        sample.append(
            {
                "userPrincipalName": str(user.get("userPrincipalName", "")),
                "property": str(first.get("propertyCausingError", "")),
                "category": str(first.get("category", "")),
            }
        )
    details: dict[str, Any] = {"path": path, "count": count, "sample": sample}
    metric = Metric(count, "", warn=0, min=0)
    if count == 0:
        return _result(
            ctx.tenant,
            check_id,
            name,
            Status.OK,
            "no users with provisioning errors",
            details=details,
            metrics={"count": metric},
        )
    names = ", ".join(s["userPrincipalName"] for s in sample[:3] if s["userPrincipalName"])
    return _result(
        ctx.tenant,
        check_id,
        name,
        Status.WARNING,
        f"{count} user(s) with provisioning errors (duplicate attribute conflicts: these objects do not sync)"
        + (f", e.g. {names}" if names else ""),
        details=details,
        metrics={"count": metric},
    )
