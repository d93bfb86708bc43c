"""Machine-readable renderings of a report: json, nagios, junit, prometheus.

Pure functions from a :class:`~runbooks.model.Report` to text; printing belongs to
:mod:`cli.terminal`.
"""

from __future__ import annotations

import enum
import json
import math
import re
import time
from typing import Any
from xml.etree import ElementTree as ET

from opsbook.runbooks import __version__
from opsbook.runbooks.model import CheckResult, Metric, Report, Skipped, Status, metric_value

from .outputformat import OutputFormat


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def check_to_dict(check: CheckResult) -> dict[str, Any]:
    """The contract's JSON object for one check."""
    out: dict[str, Any] = {
        "id": check.id,
        "target": check.target,
        "name": check.name,
        "status": check.status.value,
        "summary": check.summary,
        "details": _jsonable(check.details),
        "metrics": {k: _jsonable(metric_value(v)) for k, v in check.metrics.items()},
        "duration_s": round(check.duration_s, 3),
    }
    if check.source:
        out["source"] = check.source
    return out


#: The JSON report's own version (docs/report.schema.json): MAJOR.MINOR; a minor version
#: only adds fields, a major version removes or changes them.
FORMAT_VERSION = "1.0"


def report_to_dict(report: Report) -> dict[str, Any]:
    """The JSON document for a report (docs/report.schema.json)."""
    doc: dict[str, Any] = {
        "tool": "opsbook",
        "version": __version__,
        "format_version": FORMAT_VERSION,
        "command": report.command,
        "status": report.status.value,
        "duration_s": round(report.duration_s, 3),
        "checks": [check_to_dict(c) for c in report.checks],
    }
    if report.mutating:
        doc["changed"] = report.changed
        doc["dry_run"] = report.dry_run
        doc["steps"] = [
            {"name": s.name, "status": s.status.value, "summary": s.summary, "details": _jsonable(s.details)}
            for s in report.steps
        ]
    if report.suite is not None:
        doc["suite"] = report.suite
    if report.skipped:
        doc["skipped"] = [{"name": s.name, "reason": s.reason} for s in report.skipped]
    for key, value in report.sections.items():
        doc.setdefault(key, _jsonable(value))
    return doc


def render_json(report: Report) -> str:
    """Pretty, stable JSON followed by a newline."""
    return json.dumps(report_to_dict(report), indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- nagios


def _one_line(text: str) -> str:
    # '|' starts perfdata in plugin output; newlines would split the status line.
    return " ".join(text.replace("|", "/").split())


def _perf_label(text: str) -> str:
    label = _one_line(text).replace("=", "_").replace("'", "''")
    return f"'{label}'"


def _perf_number(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return f"{value:.6f}".rstrip("0").rstrip(".") or "0"
    return str(value)


def _perfdata(report: Report) -> list[str]:
    out: list[str] = []
    many_targets = len({c.target for c in report.checks}) > 1
    for check in report.checks:
        for key, metric in check.metrics.items():
            value = metric_value(metric)
            if value is None or isinstance(value, str):
                continue
            parts = [check.source, check.target if many_targets else "", check.id, key]
            label = _perf_label(" ".join(p for p in parts if p))
            m = metric if isinstance(metric, Metric) else Metric(value)
            fields = [
                f"{_perf_number(m.value)}{m.uom}",
                _perf_number(m.warn) + (":" if m.low and m.warn is not None else ""),
                _perf_number(m.crit) + (":" if m.low and m.crit is not None else ""),
                _perf_number(m.min),
                _perf_number(m.max),
            ]
            while len(fields) > 1 and fields[-1] == "":
                fields.pop()
            out.append(f"{label}={';'.join(fields)}")
    return out


def skipped_entries(report: Report) -> list[Skipped]:
    """Suite entries that did not run here (``opsbook run``: ``when``/``optional``), with the reason."""
    return report.skipped


def nagios_summary(report: Report) -> str:
    """The human part of the status line: one check's summary, or counts (and skipped suite entries)."""
    skipped = len(skipped_entries(report))
    more = f", {skipped} skipped" if skipped else ""
    if len(report.checks) == 1 and not skipped:
        return _one_line(report.checks[0].summary)
    if not report.checks:
        if skipped:
            return f"no checks ran{more}"
        return _one_line(report.steps[-1].summary) if report.steps else "no checks"
    counts = report.counts()
    parts = [f"{counts[s]} {s.value.lower()}" for s in (Status.CRITICAL, Status.UNKNOWN, Status.WARNING) if counts[s]]
    noun = "check" if len(report.checks) == 1 else "checks"
    text = f"{len(report.checks)} {noun}: " + (", ".join(parts) if parts else "all ok")
    return text + more


def _suite_perfdata(report: Report) -> list[str]:
    """Counts for a suite run (``opsbook run``): what a monitoring graph wants first."""
    if report.suite is None:
        return []
    counts = report.counts()
    total = len(report.checks)
    out = [f"'checks'={total};;;0"]
    out += [f"'{s.value.lower()}'={counts[s]};;;0;{total}" for s in (Status.CRITICAL, Status.WARNING, Status.UNKNOWN)]
    out.append(f"'skipped'={len(skipped_entries(report))};;;0")
    return out


def render_nagios(report: Report) -> str:
    """monitoring-plugins output: status line with perfdata, then one line per non-OK check."""
    line = f"OPSBOOK {report.status.value} - {nagios_summary(report)}"
    perf = _suite_perfdata(report) + _perfdata(report)
    if perf:
        line += " | " + " ".join(perf)
    lines = [line]
    ranked = sorted(
        (c for c in report.checks if c.status is not Status.OK),
        key=lambda c: -c.status.severity,
    )
    for check in ranked:
        where = f"{check.source}: " if check.source and check.source != check.target else ""
        lines.append(_one_line(f"{check.status.value}: {where}{check.target}: {check.name}: {check.summary}"))
    for item in skipped_entries(report):
        lines.append(_one_line(f"SKIPPED: {item.name}: {item.reason}"))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- junit

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _XML_INVALID.sub("\ufffd", text)


def render_junit(report: Report) -> str:
    """JUnit XML: one testcase per check; WARNING/CRITICAL failures, UNKNOWN errors."""
    counts = report.counts()
    skipped = skipped_entries(report)
    suites = ET.Element("testsuites", name="opsbook")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=_xml_text(f"opsbook {report.command}"),
        tests=str(len(report.checks) + len(skipped)),
        failures=str(counts[Status.WARNING] + counts[Status.CRITICAL]),
        errors=str(counts[Status.UNKNOWN]),
        skipped=str(len(skipped)),
        time=f"{report.duration_s:.3f}",
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(report.started_at)),
    )
    for check in report.checks:
        classname = f"{check.source}.{check.target}" if check.source else check.target
        case = ET.SubElement(
            suite,
            "testcase",
            classname=_xml_text(classname),
            name=_xml_text(check.name),
            time=f"{check.duration_s:.3f}",
        )
        detail = json.dumps(_jsonable(check.details), ensure_ascii=False, indent=1) if check.details else ""
        if check.status in (Status.WARNING, Status.CRITICAL):
            failure = ET.SubElement(case, "failure", type=check.status.value, message=_xml_text(check.summary))
            failure.text = _xml_text(f"{check.id}: {check.summary}\n{detail}".rstrip())
        elif check.status is Status.UNKNOWN:
            error = ET.SubElement(case, "error", type=check.status.value, message=_xml_text(check.summary))
            error.text = _xml_text(f"{check.id}: {check.summary}\n{detail}".rstrip())
        else:
            out = ET.SubElement(case, "system-out")
            out.text = _xml_text(check.summary)
    for item in skipped:  # suite entries that did not run here: <skipped>, as CI shows them
        case = ET.SubElement(suite, "testcase", classname=_xml_text(item.name), name="suite entry", time="0.000")
        ET.SubElement(case, "skipped", message=_xml_text(item.reason))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


# --------------------------------------------------------------------------- prometheus

_METRIC_NAME_BAD = re.compile(r"[^a-zA-Z0-9_]")


def _label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_label_value(v)}"' for k, v in pairs.items()) + "}"


def _prom_number(value: float | int) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(value)


def render_prometheus(report: Report, now: float | None = None) -> str:
    """Prometheus text exposition format (for node_exporter's textfile collector)."""
    status_lines: list[str] = []
    duration_lines: list[str] = []
    metric_lines: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for check in report.checks:
        base = {"command": report.command, "check": check.id, "name": check.name, "target": check.target}
        if check.source:
            base["suite_check"] = check.source
        key = tuple(base.values())
        if key in seen:  # identical series would make the whole file unparsable
            continue
        seen.add(key)
        labels = _labels(base)
        status_lines.append(f"opsbook_check_status{labels} {check.status.exit_code}")
        duration_lines.append(f"opsbook_check_duration_seconds{labels} {_prom_number(check.duration_s)}")
        for name, metric in check.metrics.items():
            value = metric_value(metric)
            if isinstance(value, str) or value is None:
                continue
            metric_labels = _labels({**base, "metric": _METRIC_NAME_BAD.sub("_", name)})
            metric_lines.append(f"opsbook_check_metric{metric_labels} {_prom_number(value)}")
    ts = time.time() if now is None else now
    cmd = _labels({"command": report.command})
    skipped_lines = [
        f"opsbook_suite_entry_skipped{_labels({'command': report.command, 'suite_check': item.name})} 1"
        for item in skipped_entries(report)
    ]
    if skipped_lines:
        metric_lines_tail = [
            "# HELP opsbook_suite_entry_skipped Suite entries that did not run here (when/optional): 1.",
            "# TYPE opsbook_suite_entry_skipped gauge",
            *skipped_lines,
        ]
    else:
        metric_lines_tail = []
    out = [
        "# HELP opsbook_check_status Check status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        "# TYPE opsbook_check_status gauge",
        *status_lines,
        "# HELP opsbook_check_duration_seconds Time the check took.",
        "# TYPE opsbook_check_duration_seconds gauge",
        *duration_lines,
    ]
    if metric_lines:
        out += [
            "# HELP opsbook_check_metric Measurements reported by the checks.",
            "# TYPE opsbook_check_metric gauge",
            *metric_lines,
        ]
    out += metric_lines_tail
    out += [
        "# HELP opsbook_status Worst status of the run: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        "# TYPE opsbook_status gauge",
        f"opsbook_status{cmd} {report.status.exit_code}",
        "# HELP opsbook_run_duration_seconds Wall time of the whole run.",
        "# TYPE opsbook_run_duration_seconds gauge",
        f"opsbook_run_duration_seconds{cmd} {_prom_number(report.duration_s)}",
        "# HELP opsbook_last_run_timestamp_seconds When the run finished (Unix time).",
        "# TYPE opsbook_last_run_timestamp_seconds gauge",
        f"opsbook_last_run_timestamp_seconds{cmd} {_prom_number(round(ts, 3))}",
    ]
    return "\n".join(out) + "\n"


RENDERERS = {
    OutputFormat.json: render_json,
    OutputFormat.nagios: render_nagios,
    OutputFormat.junit: render_junit,
    OutputFormat.prometheus: render_prometheus,
}
