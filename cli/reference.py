"""The CLI reference, generated from the Click commands themselves (so it cannot drift).

``python -m opsbook.cli.reference`` writes ``docs/cli.md`` (Markdown) and
``docs/opsbook.1`` (a man page, installed with the package); ``--check`` exits 1 when the
files in the repository differ from what the commands say (the tests run it).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsbook import __version__

from .clickcompat import Context

EXIT_CODES = (
    (0, "OK", "every check passed; a mutating command did what it planned (or had nothing to do)"),
    (1, "WARNING", "something needs attention soon (a certificate expiring, a canary name no server has)"),
    (2, "CRITICAL", "a check failed, an action failed (and was rolled back), or a dry-run plan is blocked"),
    (
        3,
        "UNKNOWN",
        "bad usage or input, a refused unsafe request, an internal error, or a check whose "
        "result is UNKNOWN (it could not tell: an engine that does not answer, a missing "
        "permission)",
    ),
)


@dataclass
class CommandDoc:
    """One command as the reference shows it."""

    path: str
    help: str
    usage: str
    params: list[tuple[str, str]]
    epilog: str
    subcommands: list[str]


def _walk(command: Any, path: str, ctx: Any | None) -> list[CommandDoc]:
    sub_ctx = Context(command, info_name=path.rsplit(maxsplit=1)[-1], parent=ctx)
    formatter = sub_ctx.make_formatter()
    command.format_usage(sub_ctx, formatter)
    usage = formatter.getvalue().strip().replace("Usage: ", "", 1)
    params = []
    for param in command.get_params(sub_ctx):
        record = param.get_help_record(sub_ctx)
        if record:
            params.append((record[0], record[1]))
    subcommands = []
    docs = []
    if hasattr(command, "list_commands"):  # a group
        subcommands = command.list_commands(sub_ctx)
    doc = CommandDoc(path, (command.help or "").strip(), usage, params, (command.epilog or "").strip(), subcommands)
    docs.append(doc)
    for name in subcommands:
        docs.extend(_walk(command.get_command(sub_ctx, name), f"{path} {name}", sub_ctx))
    return docs


def commands() -> list[CommandDoc]:
    """Every command of ``opsbook``, depth first, each with its options and examples."""
    import typer

    from .app import app

    return _walk(typer.main.get_command(app), "opsbook", None)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _epilog(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.strip() != "\b").strip()


def markdown() -> str:
    """docs/cli.md."""
    out = [
        "# opsbook command-line reference",
        "",
        f"Generated from the commands of opsbook {__version__} by `python -m opsbook.cli.reference`;",
        "a test fails when this file and the commands disagree. `opsbook COMMAND --help` shows the same.",
        "",
        "## Exit codes",
        "",
        "| code | status | meaning |",
        "|---|---|---|",
        *[f"| {code} | {status} | {meaning} |" for code, status, meaning in EXIT_CODES],
        "",
        "The JSON report (`-f json`) is described by [report.schema.json](report.schema.json).",
        "",
    ]
    for doc in commands():
        level = "#" * min(2 + doc.path.count(" "), 4)
        out += [f"{level} `{doc.path}`", "", doc.help, "", "```", doc.usage, "```", ""]
        if doc.params:
            out += ["| option | description |", "|---|---|"]
            out += [f"| `{opt}` | {_cell(text)} |" for opt, text in doc.params]
            out.append("")
        if doc.subcommands:
            out += ["Commands: " + ", ".join(f"`{doc.path} {name}`" for name in doc.subcommands), ""]
        if doc.epilog:
            out += ["```text", _epilog(doc.epilog), "```", ""]
    return "\n".join(out).rstrip() + "\n"


def _roff(text: str) -> str:
    lines = []
    for raw in text.splitlines():
        escaped = raw.replace("\\", "\\e").replace("-", "\\-")
        lines.append("\\&" + escaped if escaped.startswith((".", "'")) else escaped)
    return "\n".join(lines)


def manpage() -> str:
    """docs/opsbook.1 (roff)."""
    out = [
        f'.TH OPSBOOK 1 "" "opsbook {__version__}" "User Commands"',
        ".SH NAME",
        "opsbook \\- safe, scriptable sysadmin runbooks",
        ".SH SYNOPSIS",
        ".B opsbook",
        "[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
    ]
    docs = commands()
    out += [".SH DESCRIPTION", _roff(docs[0].help)]
    out.append(".SH COMMANDS")
    for doc in docs[1:]:
        out += [".SS " + _roff(doc.path), _roff(doc.help), ".PP", ".nf", _roff(doc.usage), ".fi"]
        for opt, text in doc.params:
            out += [".TP", f"\\fB{_roff(opt)}\\fR", _roff(text)]
        if doc.epilog:
            out += [".PP", ".nf", _roff(_epilog(doc.epilog)), ".fi"]
    out.append(".SH OPTIONS")
    for opt, text in docs[0].params:
        out += [".TP", f"\\fB{_roff(opt)}\\fR", _roff(text)]
    out.append(".SH EXIT STATUS")
    for code, status, meaning in EXIT_CODES:
        out += [".TP", f"\\fB{code}\\fR", _roff(f"{status}: {meaning}")]
    out += [
        ".SH SEE ALSO",
        "docs/cli.md and docs/report.schema.json in the opsbook sources; "
        "\\fBopsbook runbooks show\\fR \\fINAME\\fR for each runbook.",
    ]
    return "\n".join(out) + "\n"


OUTPUTS = {"cli.md": markdown, "opsbook.1": manpage}


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) docs/cli.md and docs/opsbook.1 under the given folder."""
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    rest = [a for a in args if a != "--check"]
    folder = Path(rest[0] if rest else "docs")
    stale = []
    for name, make in OUTPUTS.items():
        text = make()
        path = folder / name
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)}: run 'make docs'", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
