"""``opsbook run SUITE.yaml``: run a YAML suite of checks and report them together."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from .. import terminal
from ..options import FormatOption, TextfileOption, examples
from ..outputformat import OutputFormat

HELP = (
    "Run a YAML suite of checks (winrm check, adsync check, dns check, docker-root status) concurrently "
    "and report them together, in any format. The suite is validated completely before "
    "anything runs; ${ENV_VAR} values are read at run time and never printed."
)
EPILOG = examples(
    "opsbook run --validate /etc/opsbook/fleet.yaml",
    "opsbook run runbooks/examples/local.yaml",
    "opsbook run fleet.yaml -f nagios",
    "opsbook run fleet.yaml -f prometheus --textfile /var/lib/node_exporter/textfile_collector/opsbook.prom",
    "opsbook run fleet.yaml --junit-file opsbook-junit.xml",
)


#: Suite problems shown at once (one line each); the rest are counted.
MAX_ERRORS_SHOWN = 20

#: How the process ends at once after a report when entries were abandoned at their deadline
#: (a replaceable seam for in-process tests).
exit_now = os._exit


def run(  # noqa: PLR0917 - Typer maps every parameter
    suite: Annotated[
        Path, typer.Argument(metavar="SUITE.yaml", help="The suite file (YAML, version 1).", show_default=False)
    ],
    validate: Annotated[
        bool,
        typer.Option(
            "--validate", help="Only validate the suite (and its includes, variables and options); run nothing."
        ),
    ] = False,
    fmt: FormatOption = OutputFormat.table,
    textfile: TextfileOption = None,
    junit_file: Annotated[
        Path | None,
        typer.Option("--junit-file", metavar="PATH", dir_okay=False,
                     help="Also write JUnit XML to PATH, atomically (for CI), in addition to --format."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", min=1, max=256,
            help="Suite entries run at once (default: the suite's defaults.concurrency, else 16).",
        ),
    ] = None,
) -> None:
    """Run a suite."""
    from runbooks.errors import InputError
    from runbooks.model import Report
    from runbooks.suite import Job, SuiteErrors, load_suite, run_jobs

    from ..suite_binding import bind_suite

    report = Report(command="run")
    loaded = load_suite(suite)
    try:
        bound, resolver = bind_suite(loaded)
    except SuiteErrors as problems:  # one line each, then UNKNOWN: nothing has run
        for problem in problems.errors[:MAX_ERRORS_SHOWN]:
            terminal.error(str(problem))
        if len(problems.errors) > MAX_ERRORS_SHOWN:
            terminal.error(f"... and {len(problems.errors) - MAX_ERRORS_SHOWN} more problems in {loaded.path}")
        raise typer.Exit(3) from None
    if validate:
        files = len(loaded.files)
        skipped = [f"{b.entry.name} ({resolver.scrub(b.skip)})" for b in bound if b.skip]
        terminal.out(
            f"{loaded.path}: OK, {len(bound)} check{'s' if len(bound) != 1 else ''}"
            f" in {files} file{'s' if files != 1 else ''}"
            + (f"; skipped on this host: {'; '.join(skipped)}" if skipped else "")
            + "\n"
        )
        raise typer.Exit(0)
    jobs = [Job(b.entry, b.call, b.entry.deadline or loaded.deadline, skip=b.skip) for b in bound]
    outcome = run_jobs(jobs, concurrency or loaded.concurrency, resolver.scrub)
    report.checks = outcome.checks
    report.extra["suite"] = loaded.path
    if outcome.skipped:  # every format shows them (table lines, Nagios, JUnit <skipped>, a gauge)
        report.extra["skipped"] = outcome.skipped
        if terminal.stderr_is_tty() and OutputFormat(fmt) is not OutputFormat.table:  # people read these
            for item in outcome.skipped:
                terminal.info(f"skipped {item['name']}: {item['reason']}")
    try:
        code = terminal.emit_report(report, fmt, textfile=textfile, junit_file=junit_file)
    except OSError as exc:  # --textfile / --junit-file in a missing or read-only folder
        where = str(exc.filename or "")
        target = next((str(p) for p in (textfile, junit_file) if p and Path(where).parent == Path(p).parent), where)
        raise InputError(f"cannot write {target or 'the output file'}: {exc.strerror or exc}") from None
    if outcome.abandoned:
        # The report is out; a check given up at its deadline may still hold threads that a
        # normal exit would wait for. Cron, systemd and Icinga want the exit code now.
        sys.stdout.flush()
        sys.stderr.flush()
        exit_now(code)
    raise typer.Exit(code)
