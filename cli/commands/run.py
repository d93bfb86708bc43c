"""``opsbook run SUITE.yaml``: run a YAML suite of checks and report them together."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from .. import terminal
from ..options import FormatOption, JunitFileOption, TextfileOption, examples
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
    junit_file: JunitFileOption = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            max=256,
            help="Suite entries run at once (default: the suite's defaults.concurrency, else 16).",
        ),
    ] = None,
) -> None:
    """Run a suite."""
    from opsbook.runbooks.errors import OpsbookError
    from opsbook.runbooks.model import Report
    from opsbook.runbooks.suite import Job, SuiteErrors, load_suite, run_jobs

    from ..suite_binding import bind_suite

    report = Report(command="run")
    loaded = load_suite(suite)
    try:
        bound, resolver = bind_suite(loaded, check_files=validate)
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
    report.suite = loaded.path
    report.skipped = outcome.skipped  # every format shows them (table lines, Nagios, JUnit <skipped>, a gauge)
    if outcome.skipped and terminal.stderr_is_tty() and OutputFormat(fmt) is not OutputFormat.table:
        for item in outcome.skipped:  # people read these
            terminal.info(f"skipped {item.name}: {item.reason}")
    try:  # the report is printed first: a file that cannot be written still leaves the report on stdout
        code = terminal.emit_report(report, fmt, textfile=textfile, junit_file=junit_file)
    except OpsbookError as exc:
        if not outcome.abandoned:
            raise
        terminal.error(str(exc))
        code = exc.exit_code
    if outcome.abandoned:
        # The report is out; a check given up at its deadline may still hold threads that a
        # normal exit would wait for. Cron, systemd and Icinga want the exit code now.
        sys.stdout.flush()
        sys.stderr.flush()
        exit_now(code)
    raise typer.Exit(code)
