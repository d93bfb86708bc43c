"""``opsbook run SUITE.yaml``: run a YAML suite of checks and report them together."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import terminal
from ..options import FormatOption, TextfileOption, examples
from ..outputformat import OutputFormat

HELP = (
    "Run a YAML suite of checks (winrm check, adsync check, docker-root status) concurrently "
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


def run(  # noqa: PLR0917 - Typer maps every parameter
    suite: Annotated[Path, typer.Argument(help="The suite file (YAML, version 1).", show_default=False)],
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
            help="Suite entries run at once (default: the suite's defaults.concurrency, else 8).",
        ),
    ] = None,
) -> None:
    """Run a suite."""
    from runbooks.errors import InputError
    from runbooks.model import Report
    from runbooks.suite import Job, load_suite, run_jobs

    from ..suite_binding import bind_suite

    report = Report(command="run")
    loaded = load_suite(suite)
    bound, resolver = bind_suite(loaded)
    if validate:
        files = len(loaded.files)
        skipped = [f"{b.entry.name} ({b.skip})" for b in bound if b.skip]
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
    if outcome.skipped:
        report.extra["skipped"] = outcome.skipped
        if terminal.stderr_is_tty() or OutputFormat(fmt) is OutputFormat.table:  # people read these
            for item in outcome.skipped:
                terminal.info(f"skipped {item['name']}: {item['reason']}")
    try:
        code = terminal.emit_report(report, fmt, textfile=textfile, junit_file=junit_file)
    except OSError as exc:  # --textfile / --junit-file in a missing or read-only folder
        where = str(exc.filename or "")
        target = next((str(p) for p in (textfile, junit_file) if p and Path(where).parent == Path(p).parent), where)
        raise InputError(f"cannot write {target or 'the output file'}: {exc.strerror or exc}") from None
    raise typer.Exit(code)
