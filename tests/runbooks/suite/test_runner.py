"""Running entries: concurrency, crash isolation, deadlines, when, source tags."""

from __future__ import annotations

import threading
import time

from opsbook.runbooks.errors import InputError
from opsbook.runbooks.model import CheckResult, Report, Status
from opsbook.runbooks.suite import Entry, Job, Scrubber, When, run_jobs
from opsbook.runbooks.suite.yamlsafe import Mark

HERE = Mark("s.yaml", 1, 1)


def entry(name: str, when: When | None = None) -> Entry:
    return Entry(name=name, runbook="winrm", mark=HERE, when=when)


def report(*statuses: Status, delay: float = 0.0) -> Report:
    time.sleep(delay)
    out = Report(command="winrm check")
    for i, status in enumerate(statuses):
        out.add(CheckResult(id="winrm.tcp", target=f"h{i}:5986", name="TCP", status=status, summary=status.value))
    return out


def test_results_are_tagged_and_keep_suite_order() -> None:
    jobs = [
        Job(entry("slow"), lambda: report(Status.OK, delay=0.2), 5),
        Job(entry("fast"), lambda: report(Status.WARNING, Status.CRITICAL), 5),
    ]
    outcome = run_jobs(jobs, concurrency=2)
    assert [(c.source, c.status) for c in outcome.checks] == [
        ("slow", Status.OK),
        ("fast", Status.WARNING),
        ("fast", Status.CRITICAL),
    ]


def test_a_crash_is_one_unknown_and_the_others_still_report() -> None:
    def boom() -> Report:
        raise ZeroDivisionError("division by zero")

    def bad_input() -> Report:
        raise InputError("cannot read hosts file /x: ENOENT")

    jobs = [
        Job(entry("ok"), lambda: report(Status.OK), 5),
        Job(entry("crash"), boom, 5),
        Job(entry("bad"), bad_input, 5),
    ]
    checks = run_jobs(jobs, concurrency=3).checks
    assert [c.status for c in checks] == [Status.OK, Status.UNKNOWN, Status.UNKNOWN]
    crash = checks[1]
    assert (crash.id, crash.target, crash.source) == ("suite.entry", "crash", "crash")
    assert crash.summary == "winrm check crashed: ZeroDivisionError: division by zero"
    assert checks[2].summary == "winrm check: cannot read hosts file /x: ENOENT"


def test_deadline_turns_a_hung_entry_into_unknown_without_waiting() -> None:
    release = threading.Event()

    def hang() -> Report:
        release.wait(30)
        return report(Status.OK)

    started = time.perf_counter()
    checks = run_jobs([Job(entry("hung"), hang, 0.3), Job(entry("ok"), lambda: report(Status.OK), 5)], 2).checks
    elapsed = time.perf_counter() - started
    release.set()
    assert elapsed < 2
    assert checks[0].status is Status.UNKNOWN
    assert "did not finish within its deadline of 0.3s" in checks[0].summary
    assert checks[1].status is Status.OK


def test_entries_given_up_at_their_deadline_are_listed() -> None:
    release = threading.Event()
    jobs = [
        Job(entry("hung"), lambda: (release.wait(30), report(Status.OK))[1], 0.2),
        Job(entry("ok"), lambda: report(Status.OK), 5),
    ]
    outcome = run_jobs(jobs, 2)
    release.set()
    assert outcome.abandoned == ["hung"]
    assert run_jobs([Job(entry("ok"), lambda: report(Status.OK), 5)], 1).abandoned == []


def test_concurrency_bounds_parallel_entries() -> None:
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def tracked() -> Report:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return report(Status.OK)

    run_jobs([Job(entry(f"e{i}"), tracked, 5) for i in range(12)], concurrency=3)
    assert state["max"] == 3


def test_when_and_skip_reasons() -> None:
    jobs = [
        Job(entry("no-path", When(path_exists=["/nonexistent/opsbook.sock"])), lambda: report(Status.OK), 5),
        Job(entry("no-env", When(env_set=["OPSBOOK_TEST_SURELY_UNSET"])), lambda: report(Status.OK), 5),
        Job(entry("optional"), lambda: report(Status.OK), 5, skip="environment variable X is not set"),
        Job(entry("runs", When(path_exists=["/"])), lambda: report(Status.OK), 5),
    ]
    outcome = run_jobs(jobs, concurrency=4)
    assert [c.source for c in outcome.checks] == ["runs"]
    assert [(s.name, s.reason) for s in outcome.skipped] == [
        ("no-path", "/nonexistent/opsbook.sock does not exist"),
        ("no-env", "OPSBOOK_TEST_SURELY_UNSET is not set"),
        ("optional", "environment variable X is not set"),
    ]


def test_empty_report_and_secret_in_crash_message_are_handled() -> None:
    scrub = Scrubber()
    scrub.add("s3cr3t-value")

    def leaky() -> Report:
        raise RuntimeError("login failed for password s3cr3t-value")

    checks = run_jobs(
        [Job(entry("empty"), lambda: Report(command="x"), 5), Job(entry("leak"), leaky, 5)], 2, scrub
    ).checks
    assert checks[0].status is Status.UNKNOWN and "reported no results" in checks[0].summary
    assert "s3cr3t-value" not in checks[1].summary and "***" in checks[1].summary


def test_env_values_are_masked_in_the_commands_own_results() -> None:
    # the command cannot know which option came from ${...}; a check that echoes its option
    # back (an expected issuer, a hosts file path) must not print the secret
    scrub = Scrubber()
    scrub.add("Corp-S3cret-CA")

    def echoing() -> Report:
        out = Report(command="winrm check")
        out.add(
            CheckResult(
                id="winrm.cert.issuer",
                target="srv-Corp-S3cret-CA:5986",
                name="issuer Corp-S3cret-CA",
                status=Status.CRITICAL,
                summary="expected an issuer CN starting with 'Corp-S3cret-CA'",
                details={"expected": "Corp-S3cret-CA", "seen": ["x", {"deep": "Corp-S3cret-CA!"}], "n": 3},
                metrics={"days": 4},
            )
        )
        return out

    (check,) = run_jobs([Job(entry("echo"), echoing, 5)], 1, scrub).checks
    assert check.summary == "expected an issuer CN starting with '***'"
    assert (check.target, check.name) == ("srv-***:5986", "issuer ***")
    assert check.details == {"expected": "***", "seen": ["x", {"deep": "***!"}], "n": 3}
    assert check.metrics == {"days": 4}
    assert "Corp-S3cret-CA" not in repr(check)


def test_sys_exit_in_a_check_is_a_crash_not_the_end_of_the_run() -> None:
    import sys

    def exits() -> Report:
        sys.exit(4)

    checks = run_jobs([Job(entry("exits"), exits, 5), Job(entry("ok"), lambda: report(Status.OK), 5)], 2).checks
    assert [c.status for c in checks] == [Status.UNKNOWN, Status.OK]
    assert checks[0].summary == "winrm check crashed: SystemExit: 4"
