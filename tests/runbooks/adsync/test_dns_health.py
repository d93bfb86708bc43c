"""Windows failover prediction and per-server judgement (pure logic, answers built as data)."""

from __future__ import annotations

from opsbook.runbooks.adsync.dns_health import assess_dns, base_questions, predict_windows
from opsbook.runbooks.model import Status
from opsbook.runbooks.probes.dns import DnsAnswer, DnsOutcome

D = "corp.test"
P, S, T = "10.0.0.1", "10.0.0.2", "10.0.0.3"


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
    # Issue #12: Windows resolves through the healthy primary, so the secondary's brown-out is a WARNING.
    secondary = r[("adsync.dns.records", S)]
    assert secondary.status is Status.WARNING
    assert "BROWN-OUT" in secondary.summary and f"through the primary {P}" in secondary.summary
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
    assert "no other DNS server has the data either" in empty[("adsync.dns.failover", D)].summary


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


def test_servfail_or_refused_then_empty_fails_either_way() -> None:
    # Whether or not Windows moves past the SERVFAIL, the next answer is empty: not "uncertain", CRITICAL.
    for first, then in ((DnsOutcome.SERVFAIL, DnsOutcome.NODATA), (DnsOutcome.REFUSED, DnsOutcome.NXDOMAIN)):
        failover = _run({P: first, S: then})[("adsync.dns.failover", D)]
        assert failover.status is Status.CRITICAL, failover.summary
        assert "failover uncertain" not in failover.summary
        assert f"DNS server {S} answers {then.name}" in failover.summary
        assert f"primary {P} answers {first.name}: the lookup fails whether or not" in failover.summary
        assert failover.metrics["lookups_failing"] == 4 and failover.metrics["lookups_uncertain"] == 0


def test_servfail_then_brownout_hides_the_third_server() -> None:
    failover = _run({P: DnsOutcome.SERVFAIL, S: DnsOutcome.NODATA, T: DnsOutcome.DATA})[("adsync.dns.failover", D)]
    assert failover.status is Status.CRITICAL
    assert f"DNS server {S} answers NODATA" in failover.summary
    assert f"Windows will not fail over to {T}" in failover.summary
    prediction = failover.details["predictions"][0]
    assert prediction["verdict"] == "fails" and prediction["never_asked_with_data"] == [T]
    assert prediction["servfail_or_refused_before"] == [P]


def test_uncertain_names_the_real_rcode() -> None:
    failover = _run({P: DnsOutcome.REFUSED, S: DnsOutcome.DATA})[("adsync.dns.failover", D)]
    assert failover.status is Status.WARNING
    assert f"primary {P} answers REFUSED for" in failover.summary and "SERVFAIL" not in failover.summary


def test_empty_primary_with_silent_secondary_does_not_claim_nobody_has_data() -> None:
    r = _run({P: DnsOutcome.NODATA, S: DnsOutcome.TIMEOUT})
    failover = r[("adsync.dns.failover", D)]
    assert failover.status is Status.CRITICAL
    assert f"primary {P} answers NODATA" in failover.summary and "Windows stops there" in failover.summary
    assert f"no other DNS server answered with data ({S}: no answer)" in failover.summary
    assert "has the data either" not in failover.summary
    assert "no other server answered it with data" in r[("adsync.dns.records", P)].summary


def test_brownout_secondary_explains_when_it_bites() -> None:
    r = _run({P: DnsOutcome.DATA, S: DnsOutcome.NODATA})
    assert r[("adsync.dns.failover", D)].status is Status.OK
    secondary = r[("adsync.dns.records", S)]
    assert secondary.status is Status.WARNING
    assert f"through the primary {P} and asks this server only when the primary does not answer" in secondary.summary
    # Behind a primary that does not answer, the same brown-out is what Windows gets: CRITICAL.
    dead = _run({P: DnsOutcome.TIMEOUT, S: DnsOutcome.NODATA, T: DnsOutcome.DATA})[("adsync.dns.records", S)]
    assert dead.status is Status.CRITICAL
    assert "only when the servers before it do not answer" in dead.summary
    primary = _run({P: DnsOutcome.NODATA, S: DnsOutcome.DATA})[("adsync.dns.records", P)]
    assert "Windows will not fail over past it" in primary.summary


def test_child_domain_without_gc_records_warns_not_critical() -> None:
    gc = f"_gc._tcp.{D}"
    answers = _answers({P: DnsOutcome.DATA, S: DnsOutcome.DATA})
    for server in (P, S):
        answers[(server, (gc, "SRV"))] = DnsAnswer(server, gc, "SRV", DnsOutcome.NXDOMAIN, 0.01)
    r = {(c.id, c.target): c for c in assess_dns(D, [P, S], answers, base_questions(D), {})}
    failover = r[("adsync.dns.failover", D)]
    assert failover.status is Status.WARNING, failover.summary
    assert f"SRV {gc}" in failover.summary and "FOREST ROOT" in failover.summary
    assert r[("adsync.dns.records", P)].status is Status.WARNING
    # One server with the GC records and one without is still a brown-out.
    answers[(S, (gc, "SRV"))] = DnsAnswer(S, gc, "SRV", DnsOutcome.DATA, 0.01, records=("0 100 3268 dc1.corp.test.",))
    r = {(c.id, c.target): c for c in assess_dns(D, [P, S], answers, base_questions(D), {})}
    assert r[("adsync.dns.failover", D)].status is Status.CRITICAL
    assert r[("adsync.dns.records", P)].status is Status.CRITICAL


def test_other_error_rcode_is_an_answer_not_a_dead_server() -> None:
    # NOTIMP/FORMERR come back at once: not "does not answer, waits ~1 s" but "failover uncertain".
    answers = _answers({P: DnsOutcome.DATA, S: DnsOutcome.DATA})
    for q in base_questions(D):
        answers[(P, q)] = DnsAnswer(P, q[0], q[1], DnsOutcome.ERROR, 0.01, rcode="NOTIMP", error="rcode NOTIMP")
    r = {(c.id, c.target): c for c in assess_dns(D, [P, S], answers, base_questions(D), {})}
    failover = r[("adsync.dns.failover", D)]
    assert failover.status is Status.WARNING
    assert f"primary {P} answers NOTIMP" in failover.summary and "failover uncertain" in failover.summary
    assert "waits" not in failover.summary
    assert "fails A corp.test (NOTIMP)" in r[("adsync.dns.records", P)].summary
