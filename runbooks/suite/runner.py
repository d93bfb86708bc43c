"""Running a suite's entries concurrently; one broken entry never hides the others."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import OpsbookError
from ..model import CheckResult, Report, Skipped, Status
from ..probes import run_bounded
from ..secrets import Scrubber
from .model import Entry, When


@dataclass
class Job:
    """An entry ready to run: *call* returns the check command's report."""

    entry: Entry
    call: Callable[[], Report]
    deadline: float
    #: Why the entry does not run here (its ``when`` failed, or an optional reference is unset).
    skip: str = ""


@dataclass
class SuiteOutcome:
    """Every check result of a run, in entry order, and the entries skipped by ``when``."""

    checks: list[CheckResult] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: Entries given up at their deadline: their threads may still be running (and the
    #: thread pools inside them keep a normal interpreter exit waiting).
    abandoned: list[str] = field(default_factory=list)


def when_holds(when: When | None, environ: dict[str, str] | None = None) -> tuple[bool, str]:
    """Whether an entry's ``when`` conditions all hold, and the reason when not."""
    if when is None:
        return True, ""
    env = os.environ if environ is None else environ
    for path in when.path_exists:
        if not os.path.exists(path):
            return False, f"{path} does not exist"
    if when.any_path_exists and not any(os.path.exists(p) for p in when.any_path_exists):
        return False, f"none of {', '.join(when.any_path_exists)} exists"
    for name in when.env_set:
        if not env.get(name):
            return False, f"{name} is not set"
    return True, ""


class DeadlineExceeded(Exception):
    """An entry ran longer than its deadline."""


def call_with_deadline(call: Callable[[], Report], deadline: float) -> Report:
    """Run *call* in a daemon thread and give up waiting after *deadline* seconds.

    The thread cannot be killed; it is a daemon, so it never keeps the process alive,
    and its late result is discarded.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["report"] = call()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="opsbook-suite-entry", daemon=True)
    thread.start()
    thread.join(deadline)
    if thread.is_alive():
        raise DeadlineExceeded(f"did not finish within its deadline of {deadline:g}s")
    if "error" in box:
        raise box["error"]
    report: Report = box["report"]
    return report


def failure_result(entry: Entry, exc: BaseException, scrub: Scrubber, duration_s: float = 0.0) -> CheckResult:
    """The UNKNOWN result that stands for an entry that could not report."""
    if isinstance(exc, DeadlineExceeded):
        summary = f"{entry.command} {exc}"
    elif isinstance(exc, OpsbookError):  # bad input found at run time: the message says it all
        summary = str(exc) if str(exc).startswith(entry.command) else f"{entry.command}: {exc}"
    else:
        summary = f"{entry.command} crashed: {exc.__class__.__name__}: {exc}"
    return CheckResult(
        id="suite.entry",
        target=entry.name,
        name="suite entry",
        status=Status.UNKNOWN,
        summary=scrub(" ".join(summary.split())),
        details={"runbook": entry.runbook, "error": exc.__class__.__name__},
        duration_s=round(duration_s, 3),
        source=entry.name,
    )


def _scrub_value(value: Any, scrub: Scrubber) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {_scrub_value(k, scrub): _scrub_value(v, scrub) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v, scrub) for v in value]
    return value


def scrub_result(check: CheckResult, scrub: Scrubber) -> CheckResult:
    """Mask environment values in a check's text (a secret may be echoed back, e.g. an expected issuer).

    The command does not know which of its options came from ``${...}``; the suite does.
    Summary, name, target and details are scrubbed in place (metrics are numbers).
    """
    if not scrub:
        return check
    check.summary = scrub(check.summary)
    check.name = scrub(check.name)
    check.target = scrub(check.target)
    check.details = _scrub_value(check.details, scrub)
    return check


def run_jobs(jobs: list[Job], concurrency: int, scrub: Scrubber | None = None) -> SuiteOutcome:
    """Run *jobs* at most *concurrency* at a time; results keep the suite's order.

    Jobs with a ``skip`` reason, or whose entry's ``when`` does not hold, are skipped
    (listed in the outcome with the reason). An entry
    that raises, overruns its deadline or reports nothing becomes one UNKNOWN result
    with the reason; every result is tagged with its entry's name (``source``), and every
    value read from the environment is masked (``***``) in the results' text.
    """
    scrubber = scrub if scrub is not None else Scrubber()
    outcome = SuiteOutcome()
    runnable: list[Job] = []
    for job in jobs:
        ok, reason = (False, job.skip) if job.skip else when_holds(job.entry.when)
        if ok:
            runnable.append(job)
        else:
            outcome.skipped.append(Skipped(job.entry.name, scrubber(reason)))

    def execute(job: Job) -> list[CheckResult]:
        started = time.perf_counter()
        try:
            report = call_with_deadline(job.call, job.deadline)
        except (Exception, SystemExit) as exc:  # sys.exit() in a check is a crash too
            if isinstance(exc, DeadlineExceeded):
                outcome.abandoned.append(job.entry.name)
            return [failure_result(job.entry, exc, scrubber, time.perf_counter() - started)]
        if not report.checks:
            empty = RuntimeError("the check reported no results")
            return [failure_result(job.entry, empty, scrubber, time.perf_counter() - started)]
        for check in report.checks:
            check.source = job.entry.name
            scrub_result(check, scrubber)
        return list(report.checks)

    def crashed(job: Job, exc: BaseException) -> list[CheckResult]:
        return [failure_result(job.entry, exc, scrubber)]

    for results in run_bounded(execute, runnable, concurrency=concurrency, on_error=crashed):
        outcome.checks.extend(results)
    return outcome
