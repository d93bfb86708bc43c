from __future__ import annotations

import itertools

from opsbook.runbooks.model import CheckResult, Report, Status, Step, worst


def test_exit_codes_follow_monitoring_plugins() -> None:
    assert [s.exit_code for s in (Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN)] == [0, 1, 2, 3]


def test_worst_ranks_critical_over_unknown_over_warning_over_ok() -> None:
    for combo in itertools.permutations(list(Status)):
        assert worst(combo) is Status.CRITICAL
    assert worst([Status.OK, Status.UNKNOWN, Status.WARNING]) is Status.UNKNOWN
    assert worst([Status.OK, Status.WARNING]) is Status.WARNING
    assert worst([]) is Status.OK


def _check(status: Status, target: str = "t") -> CheckResult:
    return CheckResult(id="x.y", target=target, name="n", status=status, summary="s")


def test_report_status_is_worst_of_checks_and_steps() -> None:
    report = Report(command="c", checks=[_check(Status.OK), _check(Status.WARNING, "u")])
    assert report.status is Status.WARNING
    assert report.exit_code == 1
    report.steps.append(Step("copy", Status.CRITICAL, "failed"))
    assert report.status is Status.CRITICAL
    report.status_override = Status.UNKNOWN
    assert report.exit_code == 3


def test_counts_and_finish() -> None:
    report = Report(command="c", checks=[_check(Status.OK), _check(Status.OK, "b"), _check(Status.UNKNOWN, "c")])
    counts = report.counts()
    assert counts[Status.OK] == 2 and counts[Status.UNKNOWN] == 1 and counts[Status.CRITICAL] == 0
    assert report.finish().duration_s >= 0
