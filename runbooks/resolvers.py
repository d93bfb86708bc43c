"""Each DNS resolver of a host asked on its own: does it answer, and with the data the others have?

The resolver library fails over silently: a server that is down costs every lookup a
timeout first, and a server in "brown-out" (it answers, but without data, or SERVFAIL)
gives intermittent "name not found" errors that nobody can reproduce. Asking every server
on its own, for the same names, shows both. This is the failure the AD runbook looks for
on domain controllers, checked for any host.

For each name, the servers are compared: a server that has no data (NXDOMAIN, NODATA,
SERVFAIL, REFUSED) for a name another server resolves is CRITICAL; one that does not
answer is CRITICAL. A name no server resolves is a WARNING when it must resolve (a canary),
and OK for the host's own name (many hosts are not in DNS).
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import CheckResult, Metric, Report, Status
from .probes.concurrency import run_bounded
from .probes.dns import DnsAnswer, DnsOutcome, dns_query, server_label
from .probes.targets import HostPort

RDTYPES = ("A", "AAAA")


@dataclass(frozen=True)
class NameToCheck:
    """A name, and whether it must resolve (a canary) or may be unknown to DNS (the host's own)."""

    name: str
    must_resolve: bool = True


@dataclass(frozen=True)
class _Asked:
    server: HostPort
    name: NameToCheck
    answers: tuple[DnsAnswer, ...]

    @property
    def label(self) -> str:
        return server_label(self.server.host, self.server.port)

    @property
    def has_data(self) -> bool:
        return any(a.outcome is DnsOutcome.DATA for a in self.answers)

    @property
    def silent(self) -> DnsAnswer | None:
        """The first question it did not answer at all (timeout, connection error)."""
        return next((a for a in self.answers if not a.outcome.answered), None)

    @property
    def failed(self) -> DnsAnswer | None:
        """The first SERVFAIL or REFUSED."""
        return next((a for a in self.answers if a.outcome in (DnsOutcome.SERVFAIL, DnsOutcome.REFUSED)), None)

    @property
    def records(self) -> list[str]:
        return [r for a in self.answers for r in a.records]

    @property
    def latency_s(self) -> float:
        return max(a.latency_s for a in self.answers)


def _ask(item: tuple[HostPort, NameToCheck, float]) -> _Asked:
    server, name, timeout = item
    answers = tuple(dns_query(server.host, name.name, rdtype, port=server.port, timeout=timeout) for rdtype in RDTYPES)
    return _Asked(server, name, answers)


def _judge(asked: _Asked, others: list[_Asked]) -> tuple[Status, str]:
    name = asked.name.name
    silent = asked.silent
    if silent is not None:
        return Status.CRITICAL, (
            f"does not answer for {name} ({silent.rdtype}: {silent.error or silent.outcome}): "
            "every lookup through it waits for the timeout before the next server is tried"
        )
    resolving = [o.label for o in others if o.has_data]
    if asked.has_data:
        return Status.OK, f"{name}: {', '.join(asked.records[:4])} in {asked.latency_s * 1000:.0f} ms"
    failed = asked.failed
    said = (
        f"{failed.rcode or failed.outcome}"
        if failed is not None
        else "/".join(sorted({str(a.outcome).upper() for a in asked.answers}))
    )
    if resolving:
        return Status.CRITICAL, (
            f"brown-out: answers {said} for {name} while {', '.join(resolving)} "
            "resolve it: lookups through this server fail intermittently"
        )
    if failed is not None:
        return Status.CRITICAL, f"answers {said} for {name}: it cannot resolve names"
    if asked.name.must_resolve:
        return Status.WARNING, f"no server resolves {name} ({said} here too): is the name right?"
    agree = ", like every other server" if others else ""
    return Status.OK, f"answers {said} for {name}{agree} (the name is not in DNS)"


def check_resolvers(
    servers: list[HostPort], names: list[NameToCheck], *, timeout: float = 2.0, concurrency: int = 32
) -> Report:
    """Ask every server, on its own, for A and AAAA of every name; compare the answers."""
    report = Report(command="dns check")
    work = [(s, n, timeout) for n in names for s in servers]
    results = run_bounded(_ask, work, concurrency=concurrency)
    for name in names:
        asked_for = [r for r in results if r.name == name]
        for asked in asked_for:
            others = [o for o in asked_for if o is not asked]
            status, summary = _judge(asked, others)
            report.add(
                CheckResult(
                    "dns.resolver",
                    asked.label,
                    f"resolver {asked.label}: {name.name}",
                    status,
                    summary,
                    details={
                        "name": name.name,
                        "answers": {a.rdtype: str(a.outcome) for a in asked.answers},
                        "records": asked.records,
                    },
                    metrics={"latency_s": Metric(round(asked.latency_s, 4), "s", min=0)},
                )
            )
    return report
