"""Judge the answers of each DNS server on its own, compare them, and predict Windows' failover.

The Windows DNS client asks the configured servers in order and moves to the next one
only when the previous one does not answer. Microsoft KB2834226: "Any Name Error
response by any of the DNS servers will cause the process to stop … Client tries new
servers only if the previous are unreachable". A server that answers with no data (a
brown-out: NODATA, or NXDOMAIN) therefore hides every healthy server behind it, and AD
Connect reports "The specified domain either does not exist or could not be contacted".

Everything here is pure: it takes :class:`~runbooks.probes.dns.DnsAnswer` objects (asked
by :mod:`runbooks.adsync.check`) and returns check results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model import CheckResult, Metric, MetricValue, Status, worst
from ..probes.dns import DnsAnswer, DnsOutcome

#: An answer slower than this is "slow": Windows asks the next server after ~1 s.
SLOW_S = 0.5
#: How long the Windows DNS client waits for one server before it asks the next one.
WINDOWS_FAILOVER_WAIT_S = 1.0
#: After a failure Windows moves the answering server to the front, and resets the order this often (KB320760).
WINDOWS_RESET_MIN = 15

Question = tuple[str, str]  # (qname, rdtype)


def base_questions(domain: str) -> list[Question]:
    """The questions asked of every server: A of the domain and the DC locator SRV records."""
    return [
        (domain, "A"),
        (f"_ldap._tcp.dc._msdcs.{domain}", "SRV"),
        (f"_kerberos._tcp.{domain}", "SRV"),
        (f"_gc._tcp.{domain}", "SRV"),
    ]


def dc_locator_question(domain: str, site: str | None = None) -> Question:
    """The SRV question whose answer lists the domain controllers (of one AD site, when given)."""
    if site:
        return (f"_ldap._tcp.{site}._sites.dc._msdcs.{domain}", "SRV")
    return (f"_ldap._tcp.dc._msdcs.{domain}", "SRV")


#: Why a global catalog SRV record missing on every server is only a WARNING.
GC_HINT = (
    "global catalogs register _gc._tcp under the FOREST ROOT domain, so a child domain has none of its own — "
    "check with --domain <forest root>; in a single-domain forest it means no DC is a global catalog"
)


def is_gc_question(question: Question) -> bool:
    """The ``_gc._tcp.<domain>`` SRV question (registered only under the forest root)."""
    return question[1] == "SRV" and question[0].startswith("_gc._tcp.")


def _q(question: Question) -> str:
    return f"{question[1]} {question[0]}"


def _answer_detail(answer: DnsAnswer) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "question": answer.question,
        "outcome": answer.outcome.value,
        "latency_ms": round(answer.latency_s * 1000, 1),
        "transport": answer.transport,
    }
    if answer.rcode:
        detail["rcode"] = answer.rcode
    if answer.records:
        detail["records"] = list(answer.records)
    if answer.truncated:
        detail["truncated"] = True
    if answer.error:
        detail["error"] = answer.error
    return detail


def _describe(answer: DnsAnswer) -> str:
    if answer.outcome is DnsOutcome.TIMEOUT:
        return "timed out"
    if answer.outcome is DnsOutcome.ERROR:
        return answer.error or "error"
    return answer.outcome.name


def _join(items: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


@dataclass
class _GroupedAnswers:
    """One server's answers sorted by what is wrong with them (labels for the summary)."""

    by_status: dict[Status, list[str]] = field(default_factory=dict)
    brownout: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    missing_gc: list[str] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)
    healthy_elsewhere: set[str] = field(default_factory=set)
    covered: bool = True  # every brown-out of this server is answered with data by the primary


def _group_server_answers(
    position: int,
    server: str,
    answers: Sequence[DnsAnswer],
    others_with_data: Mapping[Question, list[str]],
    primary: str,
) -> _GroupedAnswers:
    """Group one server's answers: slow data, brown-outs, missing records, refusals, no answer."""
    grouped = _GroupedAnswers()
    by_status = grouped.by_status
    for answer in answers:
        question = (answer.qname, answer.rdtype)
        label = answer.question
        if answer.outcome is DnsOutcome.DATA:
            if answer.latency_s > SLOW_S:
                grouped.slow.append(label)
                by_status.setdefault(Status.WARNING, []).append(label)
            continue
        if answer.outcome.negative:
            elsewhere = [s for s in others_with_data.get(question, []) if s != server]
            if elsewhere:
                grouped.brownout.append(f"{label} ({answer.outcome.name})")
                grouped.healthy_elsewhere.update(elsewhere)
                behind_primary = position > 1 and primary in elsewhere
                grouped.covered = grouped.covered and behind_primary
                by_status.setdefault(Status.WARNING if behind_primary else Status.CRITICAL, []).append(label)
            elif is_gc_question(question):
                grouped.missing_gc.append(f"{label} ({answer.outcome.name})")
                by_status.setdefault(Status.WARNING, []).append(label)
            else:
                grouped.missing.append(f"{label} ({answer.outcome.name})")
                by_status.setdefault(Status.CRITICAL, []).append(label)
        elif refuses(answer):
            grouped.failing.append(f"{label} ({answer.rcode or answer.outcome.name})")
            by_status.setdefault(Status.WARNING, []).append(label)
        else:
            grouped.unreachable.append(f"{label} ({_describe(answer)})")
            by_status.setdefault(Status.WARNING, []).append(label)
    return grouped


def _brownout_part(position: int, role: str, primary: str, grouped: _GroupedAnswers) -> str:
    """The BROWN-OUT sentence: which answers lack data, who has it, and what Windows does about it."""
    if position == 1:
        consequence = "Windows will not fail over past it"
    elif grouped.covered:
        consequence = (
            f"Windows resolves these through the primary {primary} and asks this server only when "
            "the primary does not answer; then these lookups fail"
        )
    else:
        consequence = "Windows asks it only when the servers before it do not answer, and then these lookups fail"
    return (
        f"BROWN-OUT: {role} answers without data for {_join(grouped.brownout)} while "
        f"{_join(sorted(grouped.healthy_elsewhere))} answer(s) with data — {consequence}"
    )


def _unreachable_part(unreachable: list[str], answers: Sequence[DnsAnswer]) -> str | None:
    """The sentence about questions without an answer (None: every question got one)."""
    if unreachable and len(unreachable) == len(answers) and any(a.truncated for a in answers):
        return (
            f"answers over UDP only with truncated replies, and no answer comes over TCP "
            f"({_describe(next(a for a in answers if a.truncated))})"
        )
    if unreachable and len(unreachable) == len(answers):
        return f"does not answer at all ({_describe(answers[0])})"
    if unreachable:
        return f"no answer for {_join(unreachable)}"
    return None


def _server_summary_parts(
    position: int, role: str, primary: str, grouped: _GroupedAnswers, answers: Sequence[DnsAnswer]
) -> list[str]:
    """The summary's sentences, most severe kind first; empty when every answer is fine."""
    parts: list[str] = []
    if grouped.brownout:
        parts.append(_brownout_part(position, role, primary, grouped))
    if grouped.missing:
        parts.append(f"no data for {_join(grouped.missing)} (no other server answered it with data)")
    if grouped.missing_gc:
        parts.append(f"no data for {_join(grouped.missing_gc)} (no server has it: {GC_HINT})")
    if grouped.failing:
        parts.append(f"fails {_join(grouped.failing)}")
    unreachable = _unreachable_part(grouped.unreachable, answers)
    if unreachable is not None:
        parts.append(unreachable)
    if grouped.slow:
        parts.append(f"slow (> {SLOW_S * 1000:.0f} ms) for {_join(grouped.slow)}")
    return parts


def assess_server(
    position: int,
    server: str,
    answers: Sequence[DnsAnswer],
    others_with_data: Mapping[Question, list[str]],
    primary: str = "",
) -> CheckResult:
    """One server's answers: OK with data; CRITICAL for a brown-out or missing records.

    *others_with_data* maps each question to the servers that answered it with data. A
    brown-out on a server behind a *primary* that answers the same question with data is a
    WARNING: Windows resolves through the primary and asks this one only when the primary
    does not answer.
    """
    grouped = _group_server_answers(position, server, answers, others_with_data, primary)
    status = worst(grouped.by_status)
    role = "primary" if position == 1 else f"DNS server #{position}"
    parts = _server_summary_parts(position, role, primary, grouped, answers)
    latencies = [a.latency_s for a in answers if a.outcome.answered]
    if not parts:
        slowest = max(latencies) * 1000 if latencies else 0.0
        parts.append(f"answers all {len(answers)} questions with data (slowest {slowest:.0f} ms)")
    metrics: dict[str, Any] = {
        "answers_with_data": sum(1 for a in answers if a.outcome is DnsOutcome.DATA),
        "questions": len(answers),
    }
    if latencies:
        metrics["latency_max"] = Metric(round(max(latencies), 4), "s", warn=SLOW_S, min=0)
    details = {
        "server": server,
        "position": position,
        "brownout": bool(grouped.brownout),
        "answers": [_answer_detail(a) for a in answers],
    }
    return CheckResult(
        "adsync.dns.records",
        server,
        f"DNS answers of {role}",
        status,
        f"{server}: " + "; ".join(parts),
        details=details,
        metrics=metrics,
        duration_s=round(max((a.latency_s for a in answers), default=0.0), 4),
    )


def assess_tcp(server: str, answer: DnsAnswer) -> CheckResult:
    """Whether the server answers over TCP 53 (needed when an answer does not fit in UDP)."""
    details = _answer_detail(answer)
    metrics: dict[str, MetricValue] = {"latency": Metric(round(answer.latency_s, 4), "s", min=0)}
    if answer.outcome.answered or refuses(answer):
        return CheckResult(
            "adsync.dns.tcp",
            server,
            "DNS over TCP",
            Status.OK,
            f"{server} answers over TCP ({_rcode(answer) if refuses(answer) else answer.outcome.name} "
            f"for {answer.question})",
            details=details,
            metrics=metrics,
            duration_s=round(answer.latency_s, 4),
        )
    return CheckResult(
        "adsync.dns.tcp",
        server,
        "DNS over TCP",
        Status.WARNING,
        f"{server} does not answer over TCP ({_describe(answer)}): answers too large for UDP "
        "(domains with many DCs) cannot be fetched",
        details=details,
        metrics=metrics,
        duration_s=round(answer.latency_s, 4),
    )


def refuses(answer: DnsAnswer) -> bool:
    """The server answered, but with an error rcode (SERVFAIL, REFUSED, NOTIMP, FORMERR...), not with data."""
    return answer.outcome in (DnsOutcome.SERVFAIL, DnsOutcome.REFUSED) or (
        answer.outcome is DnsOutcome.ERROR and bool(answer.rcode)
    )


def _rcode(answer: DnsAnswer) -> str:
    return answer.rcode or answer.outcome.name


@dataclass(frozen=True)
class Prediction:
    """What the Windows DNS client will do for one question, asking the servers in order."""

    question: Question
    verdict: str  # "resolved", "fails", "uncertain", "unreachable"
    server: str = ""  # the server whose answer Windows takes (or the one that stops it)
    outcome: DnsOutcome | None = None
    skipped: tuple[str, ...] = ()  # servers that did not answer before it (each costs ~1 s)
    uncertain_at: tuple[str, ...] = ()  # servers that said SERVFAIL/REFUSED before it
    data_elsewhere: tuple[str, ...] = ()  # servers Windows never asks that have data
    uncertain_rcodes: tuple[str, ...] = ()  # what each of ``uncertain_at`` said (SERVFAIL, REFUSED, ...)


def predict_windows(question: Question, ordered: Sequence[DnsAnswer]) -> Prediction:
    """Apply the documented client rules (KB2834226) to the answers in server order.

    Data ends the lookup ("resolved"). A negative answer (NODATA, NXDOMAIN) ends it too
    ("fails"): Windows does not ask the next server. A server that does not answer is
    skipped after ~1 s. SERVFAIL/REFUSED may or may not end it (not documented reliably):
    the verdict is "uncertain" only when the outcome depends on it — a later server with
    data. When every path ends without data (a later server is also empty, or there is
    none), the lookup "fails" whatever Windows does with the SERVFAIL.
    """
    skipped: list[str] = []
    uncertain: list[DnsAnswer] = []

    def made(verdict: str, answer: DnsAnswer | None, **kw: Any) -> Prediction:
        return Prediction(
            question,
            verdict,
            answer.server if answer is not None else "",
            answer.outcome if answer else None,
            tuple(skipped),
            tuple(a.server for a in uncertain),
            uncertain_rcodes=tuple(_rcode(a) for a in uncertain),
            **kw,
        )

    for index, answer in enumerate(ordered):
        if answer.outcome is DnsOutcome.DATA:
            return made("uncertain" if uncertain else "resolved", answer)
        if answer.outcome.negative:
            later = tuple(a.server for a in ordered[index + 1 :] if a.outcome is DnsOutcome.DATA)
            return made("fails", answer, data_elsewhere=later)
        if refuses(answer):
            uncertain.append(answer)
        else:
            skipped.append(answer.server)
    if uncertain:
        last = uncertain[-1]
        return Prediction(
            question,
            "fails",
            last.server,
            None,
            tuple(skipped),
            tuple(a.server for a in uncertain),
            uncertain_rcodes=tuple(_rcode(a) for a in uncertain),
        )
    return Prediction(question, "unreachable", "", None, tuple(skipped))


def _prediction_detail(p: Prediction) -> dict[str, Any]:
    detail: dict[str, Any] = {"question": _q(p.question), "verdict": p.verdict}
    if p.server:
        detail["server"] = p.server
    if p.outcome is not None:
        detail["outcome"] = p.outcome.value
    if p.skipped:
        detail["unanswered_before"] = list(p.skipped)
    if p.uncertain_at:
        detail["servfail_or_refused_before"] = list(p.uncertain_at)
    if p.data_elsewhere:
        detail["never_asked_with_data"] = list(p.data_elsewhere)
    return detail


def _rcodes(rcodes: Sequence[str]) -> str:
    return "/".join(dict.fromkeys(rcodes)) or "SERVFAIL/REFUSED"


_Finding = tuple[Status, str]


def _question_names(ps: list[Prediction]) -> str:
    """The questions of these predictions, for a summary (at most three named)."""
    return _join([_q(p.question) for p in ps], 3)


def _who(server: str, primary: str) -> str:
    """A server as the failover summary names it: the primary, or a DNS server."""
    return f"primary {server}" if server == primary else f"DNS server {server}"


def _servfail_before(p: Prediction, primary: str) -> str:
    """The SERVFAIL/REFUSED in front of a failing answer: it fails whether or not Windows moves past it."""
    if not p.uncertain_at:
        return ""
    return (
        f" (before it, {_who(p.uncertain_at[0], primary)} answers {_rcodes(p.uncertain_rcodes)}: the lookup fails "
        "whether or not Windows moves past that)"
    )


def _brownout_finding(predictions: list[Prediction], primary: str) -> _Finding | None:
    """CRITICAL: a server answers without data while a server Windows never asks has the data."""
    browned = [p for p in predictions if p.verdict == "fails" and p.data_elsewhere]
    if not browned:
        return None
    first = browned[0]
    return (
        Status.CRITICAL,
        (
            f"{_who(first.server, primary)} answers {first.outcome.name if first.outcome else 'no data'} for "
            f"{_question_names(browned)}: "
            f"Windows will not fail over to {first.data_elsewhere[0]} — the domain will look unreachable to AD Connect"
            f" (KB2834226){_servfail_before(first, primary)}"
        ),
    )


def _other_answers(missing: list[Prediction], table: Mapping[Question, Sequence[DnsAnswer]]) -> dict[str, str]:
    """What the servers not named yet said (rcode or "no answer") to questions no server answers with data."""
    others: dict[str, str] = {}
    for p in missing:
        for a in table[p.question]:
            if a.server in (p.server, *p.uncertain_at):
                continue  # the server that stops the lookup, and those _servfail_before() names
            if a.outcome is not DnsOutcome.DATA and not a.outcome.negative:
                answered = a.outcome.answered or refuses(a)
                others.setdefault(a.server, _rcode(a) if answered else "no answer")
    return others


def _missing_findings(
    predictions: list[Prediction], table: Mapping[Question, Sequence[DnsAnswer]], primary: str
) -> list[_Finding]:
    """Questions that fail with no server having data: a WARNING for the GC records, CRITICAL for the others."""
    findings: list[_Finding] = []
    missing = [p for p in predictions if p.verdict == "fails" and not p.data_elsewhere and p.outcome is not None]
    gc_missing = [p for p in missing if is_gc_question(p.question)]
    missing = [p for p in missing if not is_gc_question(p.question)]
    if gc_missing:
        findings.append((Status.WARNING, f"no DNS server answers {_question_names(gc_missing)} with data: {GC_HINT}"))
    if missing:
        first = missing[0]
        others = _other_answers(missing, table)
        scope = (
            "no other DNS server answered with data (" + _join([f"{k}: {v}" for k, v in others.items()]) + ")"
            if others
            else "no other DNS server has the data either"
        )
        findings.append(
            (
                Status.CRITICAL,
                (
                    f"{_who(first.server, primary)} answers {first.outcome.name if first.outcome else 'no data'} for "
                    f"{_question_names(missing)}: Windows stops there, and {scope}{_servfail_before(first, primary)}"
                ),
            )
        )
    return findings


def _unanswered_findings(predictions: list[Prediction]) -> list[_Finding]:
    """CRITICAL: questions no server answers at all, and those only answered with SERVFAIL/REFUSED."""
    findings: list[_Finding] = []
    dead = [p for p in predictions if p.verdict == "unreachable"]
    if dead:
        findings.append((Status.CRITICAL, f"no DNS server answers {_question_names(dead)}"))
    broken = [p for p in predictions if p.verdict == "fails" and p.outcome is None]
    if broken:
        rcodes = _rcodes([o for p in broken for o in p.uncertain_rcodes])
        findings.append((Status.CRITICAL, f"no DNS server answers {_question_names(broken)} with data ({rcodes})"))
    return findings


def _uncertain_finding(unsure: list[Prediction], primary: str) -> _Finding | None:
    """WARNING: a SERVFAIL/REFUSED stands before a server with data, and Windows may or may not move on."""
    if not unsure:
        return None
    first = unsure[0]
    where = first.uncertain_at[0]
    after = f" to {first.server}" if first.server and first.server != where else ""
    return (
        Status.WARNING,
        (
            f"{_who(where, primary)} answers {_rcodes(first.uncertain_rcodes)} for {_question_names(unsure)}: "
            f"failover uncertain — Windows may or may not move on{after}"
        ),
    )


def _delayed_finding(predictions: list[Prediction], primary: str) -> _Finding | None:
    """WARNING: lookups resolve only after Windows waited for servers that do not answer."""
    delayed = [p for p in predictions if p.verdict == "resolved" and p.skipped]
    if not delayed:
        return None
    first = delayed[0]
    return (
        Status.WARNING,
        (
            f"{_who(first.skipped[0], primary)} does not answer: Windows resolves {_question_names(delayed)} through "
            f"{first.server} after waiting ~{WINDOWS_FAILOVER_WAIT_S * len(first.skipped):.0f} s; it then puts "
            f"{first.server} first, and resets the order every {WINDOWS_RESET_MIN} minutes (KB320760), so a lookup "
            "waits again after each reset"
        ),
    )


def assess_failover(domain: str, servers: Sequence[str], table: Mapping[Question, Sequence[DnsAnswer]]) -> CheckResult:
    """Predict, per question, what Windows does with these servers in this order."""
    predictions = [predict_windows(q, answers) for q, answers in table.items()]
    primary = servers[0] if servers else "?"
    unsure = [p for p in predictions if p.verdict == "uncertain"]
    found = [
        _brownout_finding(predictions, primary),
        *_missing_findings(predictions, table, primary),
        *_unanswered_findings(predictions),
        _uncertain_finding(unsure, primary),
        _delayed_finding(predictions, primary),
    ]
    findings = [f for f in found if f is not None]
    status = worst(s for s, _ in findings)
    if findings:
        order = sorted(findings, key=lambda f: -f[0].severity)
        summary = "; ".join(text for _, text in order)
    else:
        summary = f"Windows resolves all {len(predictions)} questions through the primary {primary} without failover"
    details = {
        "domain": domain,
        "servers_in_order": list(servers),
        "rule": "KB2834226: the client moves to the next DNS server only when the previous one does not answer",
        "predictions": [_prediction_detail(p) for p in predictions],
    }
    metrics: dict[str, MetricValue] = {
        "lookups_failing": sum(1 for p in predictions if p.verdict in ("fails", "unreachable")),
        "lookups_uncertain": len(unsure),
    }
    return CheckResult(
        "adsync.dns.failover",
        domain,
        "Windows DNS failover prediction",
        status,
        summary,
        details=details,
        metrics=metrics,
    )


def _is_dc_question(question: Question, advertised: Mapping[str, set[str]] | None) -> bool:
    """The A question of a DC found in an SRV answer."""
    if advertised is None or question[1] != "A":
        return False
    return any(question[0] in names for names in advertised.values())


def assess_dns_source(servers: Sequence[str], addresses: Sequence[str]) -> CheckResult | None:
    """With no ``--dns``: a loopback nameserver in resolv.conf is a local stub (systemd-resolved's
    127.0.0.53, dnsmasq, nscd...) that fails over to its upstreams by itself and hides brown-outs.

    *servers* are the labels, *addresses* the IP addresses, in order. Returns a WARNING, or None.
    """
    import ipaddress

    local = [
        label for label, address in zip(servers, addresses, strict=True) if ipaddress.ip_address(address).is_loopback
    ]
    if not local:
        return None
    return CheckResult(
        "adsync.dns.source",
        "resolv.conf",
        "DNS servers asked",
        Status.WARNING,
        f"no --dns given, so this host's resolv.conf was used, and {_join(local)} is a local resolver "
        "(a stub such as systemd-resolved fails over to its upstream servers by itself and hides brown-outs): "
        "give the sync server's own DNS servers, in its order, with --dns",
        details={"servers_from_resolv_conf": list(servers), "loopback": local},
    )


def assess_dns(
    domain: str,
    servers: Sequence[str],
    answers: Mapping[tuple[str, Question], DnsAnswer],
    questions: Sequence[Question],
    tcp_answers: Mapping[str, DnsAnswer],
    *,
    advertised: Mapping[str, set[str]] | None = None,
) -> list[CheckResult]:
    """All DNS checks: one per server, one TCP check per server, and the failover prediction.

    *advertised* maps each server to the DCs its own SRV answer lists (None: the DCs were
    given, judge every DC question everywhere). A server is judged on a DC's A record only
    when it advertises that DC itself: a stale SRV record on one server says nothing about
    another server that never lists that DC. Windows' prediction looks at the DCs of the
    server it takes the SRV answer from.
    """
    base = [q for q in questions if not _is_dc_question(q, advertised)]
    dc_questions = [q for q in questions if _is_dc_question(q, advertised)]

    def judged(server: str) -> list[Question]:
        if advertised is None:
            return list(questions)
        mine = advertised.get(server, set())
        return [*base, *(q for q in dc_questions if q[0] in mine)]

    with_data: dict[Question, list[str]] = {}
    table: dict[Question, list[DnsAnswer]] = {}
    for question in questions:
        row = [answers[(s, question)] for s in servers if (s, question) in answers]
        with_data[question] = [a.server for a in row if a.outcome is DnsOutcome.DATA]
    for question in base:
        table[question] = [answers[(s, question)] for s in servers if (s, question) in answers]
    windows_dcs: set[str] | None = None
    if advertised is not None:
        # The DCs Windows learns: those of the server it takes the locator SRV answer from.
        locators = [q for q in base if q[1] == "SRV" and q[0].startswith("_ldap._tcp.") and ".dc._msdcs." in q[0]]
        locator = next((q for q in locators if "._sites." in q[0]), locators[0] if locators else None)
        verdict = predict_windows(locator, table.get(locator, [])) if locator else None
        if verdict is not None and verdict.verdict == "resolved":
            windows_dcs = set(advertised.get(verdict.server, set()))
        else:
            windows_dcs = set().union(*advertised.values())
    for question in dc_questions:
        if windows_dcs is None or question[0] in windows_dcs:
            table[question] = [answers[(s, question)] for s in servers if (s, question) in answers]
    results: list[CheckResult] = []
    primary = servers[0] if servers else ""
    for position, server in enumerate(servers, start=1):
        own = [answers[(server, q)] for q in judged(server) if (server, q) in answers]
        results.append(assess_server(position, server, own, with_data, primary))
    for server in servers:
        if server in tcp_answers:
            results.append(assess_tcp(server, tcp_answers[server]))
    results.append(assess_failover(domain, servers, table))
    return results
