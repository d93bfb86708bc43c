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
from dataclasses import dataclass
from typing import Any

from ..model import CheckResult, Metric, MetricValue, Status, worst
from ..probes.dns import DnsAnswer, DnsOutcome

#: An answer slower than this is "slow": Windows asks the next server after ~1 s.
SLOW_S = 0.5
#: How long the Windows DNS client waits for one server before it asks the next one.
WINDOWS_FAILOVER_WAIT_S = 1.0

Question = tuple[str, str]  # (qname, rdtype)


def base_questions(domain: str) -> list[Question]:
    """The questions asked of every server: A of the domain and the DC locator SRV records."""
    return [
        (domain, "A"),
        (f"_ldap._tcp.dc._msdcs.{domain}", "SRV"),
        (f"_kerberos._tcp.{domain}", "SRV"),
        (f"_gc._tcp.{domain}", "SRV"),
    ]


def dc_locator_question(domain: str) -> Question:
    """The SRV question whose answer lists the domain controllers."""
    return (f"_ldap._tcp.dc._msdcs.{domain}", "SRV")


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


def assess_server(
    position: int,
    server: str,
    answers: Sequence[DnsAnswer],
    others_with_data: Mapping[Question, list[str]],
) -> CheckResult:
    """One server's answers: OK with data; CRITICAL for a brown-out or missing records.

    *others_with_data* maps each question to the servers that answered it with data.
    """
    by_status: dict[Status, list[str]] = {}
    brownout: list[str] = []
    missing: list[str] = []
    failing: list[str] = []
    unreachable: list[str] = []
    slow: list[str] = []
    healthy_elsewhere: set[str] = set()
    for answer in answers:
        question = (answer.qname, answer.rdtype)
        label = answer.question
        if answer.outcome is DnsOutcome.DATA:
            if answer.latency_s > SLOW_S:
                slow.append(label)
                by_status.setdefault(Status.WARNING, []).append(label)
            continue
        if answer.outcome.negative:
            elsewhere = [s for s in others_with_data.get(question, []) if s != server]
            if elsewhere:
                brownout.append(f"{label} ({answer.outcome.name})")
                healthy_elsewhere.update(elsewhere)
            else:
                missing.append(f"{label} ({answer.outcome.name})")
            by_status.setdefault(Status.CRITICAL, []).append(label)
        elif answer.outcome in (DnsOutcome.SERVFAIL, DnsOutcome.REFUSED):
            failing.append(f"{label} ({answer.outcome.name})")
            by_status.setdefault(Status.WARNING, []).append(label)
        else:
            unreachable.append(f"{label} ({_describe(answer)})")
            by_status.setdefault(Status.WARNING, []).append(label)
    status = worst(by_status)
    role = "primary" if position == 1 else f"DNS server #{position}"
    parts: list[str] = []
    if brownout:
        parts.append(
            f"BROWN-OUT: {role} answers without data for {_join(brownout)} while "
            f"{_join(sorted(healthy_elsewhere))} answer(s) with data"
        )
    if missing:
        parts.append(f"no data for {_join(missing)} (no other server has it either)")
    if failing:
        parts.append(f"fails {_join(failing)}")
    if unreachable and len(unreachable) == len(answers):
        parts.append(f"does not answer at all ({_describe(answers[0])})")
    elif unreachable:
        parts.append(f"no answer for {_join(unreachable)}")
    if slow:
        parts.append(f"slow (> {SLOW_S * 1000:.0f} ms) for {_join(slow)}")
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
        "brownout": bool(brownout),
        "answers": [_answer_detail(a) for a in answers],
    }
    return CheckResult(
        "adsync.dns.records", server, f"DNS answers of {role}", status,
        f"{server}: " + "; ".join(parts), details=details, metrics=metrics,
        duration_s=round(max((a.latency_s for a in answers), default=0.0), 4),
    )


def assess_tcp(server: str, answer: DnsAnswer) -> CheckResult:
    """Whether the server answers over TCP 53 (needed when an answer does not fit in UDP)."""
    details = _answer_detail(answer)
    metrics: dict[str, MetricValue] = {"latency": Metric(round(answer.latency_s, 4), "s", min=0)}
    if answer.outcome.answered:
        return CheckResult(
            "adsync.dns.tcp", server, "DNS over TCP", Status.OK,
            f"{server} answers over TCP ({answer.outcome.name} for {answer.question})",
            details=details, metrics=metrics, duration_s=round(answer.latency_s, 4),
        )
    return CheckResult(
        "adsync.dns.tcp", server, "DNS over TCP", Status.WARNING,
        f"{server} does not answer over TCP ({_describe(answer)}): answers too large for UDP "
        "(domains with many DCs) cannot be fetched",
        details=details, metrics=metrics, duration_s=round(answer.latency_s, 4),
    )


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


def predict_windows(question: Question, ordered: Sequence[DnsAnswer]) -> Prediction:
    """Apply the documented client rules (KB2834226) to the answers in server order."""
    skipped: list[str] = []
    uncertain: list[str] = []
    for index, answer in enumerate(ordered):
        if answer.outcome is DnsOutcome.DATA:
            verdict = "uncertain" if uncertain else "resolved"
            return Prediction(question, verdict, answer.server, answer.outcome, tuple(skipped), tuple(uncertain))
        if answer.outcome.negative:
            later = tuple(a.server for a in ordered[index + 1 :] if a.outcome is DnsOutcome.DATA)
            verdict = "uncertain" if uncertain else "fails"
            return Prediction(
                question, verdict, answer.server, answer.outcome, tuple(skipped), tuple(uncertain), later
            )
        if answer.outcome in (DnsOutcome.SERVFAIL, DnsOutcome.REFUSED):
            uncertain.append(answer.server)
        else:
            skipped.append(answer.server)
    if uncertain:
        return Prediction(question, "fails", uncertain[-1], None, tuple(skipped), tuple(uncertain))
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


def assess_failover(domain: str, servers: Sequence[str], table: Mapping[Question, Sequence[DnsAnswer]]) -> CheckResult:
    """Predict, per question, what Windows does with these servers in this order."""
    predictions = [predict_windows(q, answers) for q, answers in table.items()]
    primary = servers[0] if servers else "?"
    findings: list[tuple[Status, str]] = []

    def names(ps: list[Prediction]) -> str:
        return _join([_q(p.question) for p in ps], 3)

    browned = [p for p in predictions if p.verdict == "fails" and p.data_elsewhere]
    if browned:
        first = browned[0]
        who = "primary" if first.server == primary else "DNS server"
        findings.append((Status.CRITICAL, (
            f"{who} {first.server} answers {first.outcome.name if first.outcome else 'no data'} for {names(browned)}: "
            f"Windows will not fail over to {first.data_elsewhere[0]} — the domain will look unreachable to AD Connect"
            " (KB2834226)"
        )))
    missing = [p for p in predictions if p.verdict == "fails" and not p.data_elsewhere and p.outcome is not None]
    if missing:
        findings.append((Status.CRITICAL, f"no DNS server has data for {names(missing)}"))
    dead = [p for p in predictions if p.verdict == "unreachable"]
    if dead:
        findings.append((Status.CRITICAL, f"no DNS server answers {names(dead)}"))
    broken = [p for p in predictions if p.verdict == "fails" and p.outcome is None]
    if broken:
        findings.append((Status.CRITICAL, f"no DNS server answers {names(broken)} with data (SERVFAIL/REFUSED)"))
    unsure = [p for p in predictions if p.verdict == "uncertain"]
    if unsure:
        first = unsure[0]
        where = first.uncertain_at[0]
        who = "primary" if where == primary else "DNS server"
        after = f" to {first.server}" if first.server and first.server != where else ""
        findings.append((Status.WARNING, (
            f"{who} {where} answers SERVFAIL/REFUSED for {names(unsure)}: failover uncertain — Windows may or may not"
            f" move on{after}"
        )))
    delayed = [p for p in predictions if p.verdict == "resolved" and p.skipped]
    if delayed:
        first = delayed[0]
        who = "primary" if first.skipped[0] == primary else "DNS server"
        findings.append((Status.WARNING, (
            f"{who} {first.skipped[0]} does not answer: Windows resolves {names(delayed)} through {first.server}, "
            f"but every lookup first waits ~{WINDOWS_FAILOVER_WAIT_S * len(first.skipped):.0f} s"
        )))
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
    return CheckResult("adsync.dns.failover", domain, "Windows DNS failover prediction", status, summary,
                       details=details, metrics=metrics)


def assess_dns(
    domain: str,
    servers: Sequence[str],
    answers: Mapping[tuple[str, Question], DnsAnswer],
    questions: Sequence[Question],
    tcp_answers: Mapping[str, DnsAnswer],
) -> list[CheckResult]:
    """All DNS checks: one per server, one TCP check per server, and the failover prediction."""
    with_data: dict[Question, list[str]] = {}
    table: dict[Question, list[DnsAnswer]] = {}
    for question in questions:
        row = [answers[(s, question)] for s in servers if (s, question) in answers]
        table[question] = row
        with_data[question] = [a.server for a in row if a.outcome is DnsOutcome.DATA]
    results: list[CheckResult] = []
    for position, server in enumerate(servers, start=1):
        own = [answers[(server, q)] for q in questions if (server, q) in answers]
        results.append(assess_server(position, server, own, with_data))
    for server in servers:
        if server in tcp_answers:
            results.append(assess_tcp(server, tcp_answers[server]))
    results.append(assess_failover(domain, servers, table))
    return results
