"""Windows failover prediction and per-server judgement (pure logic, answers built as data)."""

from __future__ import annotations

from runbooks.adsync.dns_health import assess_dns, base_questions, predict_windows
from runbooks.model import Status
from runbooks.probes.dns import DnsAnswer, DnsOutcome

D = "corp.test"
P, S = "10.0.0.1", "10.0.0.2"


def _answers(per_server: dict[str, DnsOutcome], latency: float = 0.01) -> dict:
    out = {}
    for server, outcome in per_server.items():
        for q in base_questions(D):
            records = ("0 100 389 dc1.corp.test.",) if outcome is DnsOutcome.DATA and q[1] == "SRV" else ()
            if outcome is DnsOutcome.DATA and q[1] == "A":
                records = ("10.0.0.10",)
            out[(server, q)] = DnsAnswer(server, q[0], q[1], outcome, latency, records=records)
    return out


def _run(per_server: dict[str, DnsOutcome], latency: float = 0.01) -> dict:
    results = assess_dns(D, list(per_server), _answers(per_server, latency), base_questions(D), {})
    return {(r.id, r.target): r for r in results}


def test_all_healthy_is_ok() -> None:
    r = _run({P: DnsOutcome.DATA, S: DnsOutcome.DATA})
    assert all(c.status is Status.OK for c in r.values())
    assert "without failover" in r[("adsync.dns.failover", D)].summary


def test_nodata_primary_is_a_brownout_and_windows_does_not_fail_over() -> None:
    r = _run({P: DnsOutcome.NODATA, S: DnsOutcome.DATA})
    assert r[("adsync.dns.records", P)].status is Status.CRITICAL
    assert r[("adsync.dns.records", P)].details["brownout"] is True
    failover = r[("adsync.dns.failover", D)]
    assert failover.status is Status.CRITICAL
    assert f"primary {P} answers NODATA" in failover.summary
    assert f"Windows will not fail over to {S}" in failover.summary


def test_nxdomain_secondary_is_a_brownout_but_windows_uses_the_primary() -> None:
    r = _run({P: DnsOutcome.DATA, S: DnsOutcome.NXDOMAIN})
    assert r[("adsync.dns.records", S)].status is Status.CRITICAL
    assert r[("adsync.dns.failover", D)].status is Status.OK


def test_servfail_primary_is_failover_uncertain() -> None:
    r = _run({P: DnsOutcome.SERVFAIL, S: DnsOutcome.DATA})
    failover = r[("adsync.dns.failover", D)]
    assert failover.status is Status.WARNING
    assert "failover uncertain" in failover.summary


def test_timeout_primary_with_working_secondary_warns() -> None:
    r = _run({P: DnsOutcome.TIMEOUT, S: DnsOutcome.DATA})
    failover = r[("adsync.dns.failover", D)]
    assert failover.status is Status.WARNING
    assert f"primary {P} does not answer" in failover.summary


def test_all_dead_and_all_empty_are_critical() -> None:
    assert _run({P: DnsOutcome.TIMEOUT, S: DnsOutcome.ERROR})[("adsync.dns.failover", D)].status is Status.CRITICAL
    empty = _run({P: DnsOutcome.NODATA, S: DnsOutcome.NXDOMAIN})
    assert empty[("adsync.dns.failover", D)].status is Status.CRITICAL
    assert "no DNS server has data" in empty[("adsync.dns.failover", D)].summary


def test_slow_answers_warn_with_latency_metric() -> None:
    r = _run({P: DnsOutcome.DATA}, latency=0.8)
    check = r[("adsync.dns.records", P)]
    assert check.status is Status.WARNING
    assert check.metrics["latency_max"].value == 0.8


def test_predict_windows_order_matters() -> None:
    q = (D, "A")
    good = DnsAnswer(S, D, "A", DnsOutcome.DATA, 0.01, records=("1.2.3.4",))
    dead = DnsAnswer(P, D, "A", DnsOutcome.TIMEOUT, 1.0)
    p = predict_windows(q, [dead, good])
    assert (p.verdict, p.server, p.skipped) == ("resolved", S, (P,))
    empty = DnsAnswer(P, D, "A", DnsOutcome.NODATA, 0.01)
    p = predict_windows(q, [empty, good])
    assert (p.verdict, p.data_elsewhere) == ("fails", (S,))


def test_all_servfail_or_refused_is_critical() -> None:
    r = _run({P: DnsOutcome.SERVFAIL, S: DnsOutcome.REFUSED})
    failover = r[("adsync.dns.failover", D)]
    assert failover.status is Status.CRITICAL
    assert "no DNS server answers" in failover.summary and "SERVFAIL/REFUSED" in failover.summary
