"""The result model shared by every runbook: statuses, check results, reports."""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class Status(enum.Enum):
    """A check outcome, following the monitoring-plugins convention."""

    OK = "OK"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"
    UNKNOWN = "UNKNOWN"

    @property
    def exit_code(self) -> int:
        """The process exit code for this status (0, 1, 2, 3)."""
        return _EXIT_CODES[self]

    @property
    def severity(self) -> int:
        """Rank used to pick the worst status: CRITICAL > UNKNOWN > WARNING > OK."""
        return _SEVERITY[self]

    def __str__(self) -> str:
        return self.value


_EXIT_CODES = {Status.OK: 0, Status.WARNING: 1, Status.CRITICAL: 2, Status.UNKNOWN: 3}
_SEVERITY = {Status.OK: 0, Status.WARNING: 1, Status.UNKNOWN: 2, Status.CRITICAL: 3}


def worst(statuses: Iterable[Status], default: Status = Status.OK) -> Status:
    """Return the most severe status of *statuses*, or *default* when there are none."""
    result = default
    first = True
    for status in statuses:
        if first or status.severity > result.severity:
            result = status
            first = False
    return result


@dataclass(frozen=True)
class Metric:
    """A numeric measurement with optional Nagios-style thresholds and unit.

    ``uom`` is a monitoring-plugins unit of measure: ``""``, ``s``, ``ms``, ``%``,
    ``B``/``KB``/``MB``/``GB``/``TB`` or ``c`` (a counter).
    """

    value: float
    uom: str = ""
    warn: float | None = None
    crit: float | None = None
    min: float | None = None
    max: float | None = None
    #: Lower is worse (days left, free space): thresholds render as Nagios ranges ``warn:``.
    low: bool = False


MetricValue = Metric | float | int


def metric_value(metric: MetricValue) -> float | int:
    """The bare number of a metric, whether given as :class:`Metric` or a number."""
    return metric.value if isinstance(metric, Metric) else metric


@dataclass
class CheckResult:
    """One check of one target.

    ``id`` is a stable dotted identifier (``winrm.cert.expiry``); ``(id, target)`` is
    unique within a report. ``details`` must be JSON-serialisable and never hold secrets.
    """

    id: str
    target: str
    name: str
    status: Status
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, MetricValue] = field(default_factory=dict)
    duration_s: float = 0.0
    #: Name of the suite entry that produced this check (set by ``opsbook run``).
    source: str = ""


@dataclass
class Step:
    """One step of a mutating command (planned, done, failed or skipped)."""

    name: str
    status: Status
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """A suite entry that did not run here (``when`` does not hold, ``optional`` without a value), and why."""

    name: str
    reason: str


@dataclass
class Report:
    """Everything a command has to say: its checks and, when it mutates, its steps.

    ``mutating`` reports carry ``changed``, ``dry_run`` and ``steps`` in JSON output.
    ``suite`` and ``skipped`` belong to ``opsbook run``. ``sections`` are command-specific
    parts of the JSON document (a move's ``plan`` and ``times``, adsync's summary): written
    as they are, read by no renderer.
    """

    command: str
    checks: list[CheckResult] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    mutating: bool = False
    changed: bool = False
    dry_run: bool = False
    #: ``opsbook run``: the suite file, and the entries that did not run here.
    suite: str | None = None
    skipped: list[Skipped] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    duration_s: float = 0.0
    #: Overrides the computed status (a refused plan is CRITICAL even with OK checks).
    status_override: Status | None = None

    @property
    def status(self) -> Status:
        """Worst status of the checks and steps (or the override when set)."""
        if self.status_override is not None:
            return self.status_override
        return worst([c.status for c in self.checks] + [s.status for s in self.steps])

    @property
    def exit_code(self) -> int:
        """Exit code following the top-level status."""
        return self.status.exit_code

    def add(self, check: CheckResult) -> CheckResult:
        """Append *check* and return it."""
        self.checks.append(check)
        return check

    def finish(self) -> Report:
        """Record the wall-clock duration since the report was created."""
        self.duration_s = round(time.time() - self.started_at, 3)
        return self

    def counts(self) -> Mapping[Status, int]:
        """How many checks have each status."""
        out = dict.fromkeys(Status, 0)
        for check in self.checks:
            out[check.status] += 1
        return out


class Timer:
    """Context manager measuring a duration in seconds (``with Timer() as t: ...; t.s``)."""

    def __init__(self) -> None:
        self.start = 0.0
        self.s = 0.0

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = round(time.perf_counter() - self.start, 6)

    @property
    def elapsed(self) -> float:
        """Seconds since the timer started (while it runs)."""
        return time.perf_counter() - self.start
