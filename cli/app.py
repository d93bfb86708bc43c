"""The ``opsbook`` Typer application and its entry point with exit-code mapping.

Exit codes follow the monitoring-plugins convention: 0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN. Click's usage errors (its own exit code 2) become 3 with one clean line.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import typer
import typer.core

from opsbook.runbooks import __version__
from opsbook.runbooks.errors import OpsbookError

from . import terminal
from .clickcompat import ClickException, NoArgsIsHelpError, UsageError
from .options import examples

COMMAND_LIST = """\b
All commands:
  opsbook runbooks [show NAME]                  the runbooks as documents
  opsbook docker-root status                    data-root, driver, d_type, image store, space
  opsbook docker-root move TARGET               move the data-root (plan, copy, switch, verify)
  opsbook docker-root rollback                  back to the previous data-root
  opsbook docker-root cleanup                   remove the old data-root after a verified move
  opsbook winrm check HOST[:PORT]...            WinRM HTTPS listeners from the outside
  opsbook winrm audit HOST...                   listeners vs machine certificates, over WinRM
  opsbook winrm script                          PowerShell that binds the auto-enrolled certificate
  opsbook adsync check --domain DOMAIN          DNS per server, DC ports, tenant sync freshness
  opsbook dns check [--name NAME]...            each DNS server asked on its own, answers compared
  opsbook exchange clear-previous-mailbox ID... script clearing previous-mailbox info
  opsbook run SUITE.yaml                        a YAML suite of checks, in any format
  opsbook serve --config FILE                   a Prometheus exporter: /probe?module=M&target=T"""

#: The subcommands, loaded only when used: `opsbook --help` must stay fast (each command
#: module and Typer's conversion of its parameters cost milliseconds we would pay on every call).
#: name -> (module in opsbook.cli.commands, short help shown in `opsbook --help`)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "runbooks": ("runbooks_cmd", "List the runbooks, or show one as a document."),
    "docker-root": ("docker_root",
                    "Move Docker's data-root with zero data loss: status, move, rollback, cleanup."),
    "winrm": ("winrm", "WinRM HTTPS listeners: outside check, authenticated audit, binding script."),
    "adsync": ("adsync",
               "Azure AD Connect / Entra Connect: DNS per server, domain controller ports, tenant sync."),
    "dns": ("dns", "DNS resolvers: each one asked on its own, answers compared (brown-out, down)."),
    "exchange": ("exchange",
                 "Exchange Online: generate reviewed, injection-proof PowerShell for mailbox fixes."),
    "run": ("run",
            "Run a YAML suite of checks (winrm check, adsync check, dns check, docker-root status)..."),
    "serve": ("serve", "Serve the checks to Prometheus as a multi-target exporter, like blackbox_exporter..."),
}
#: Subcommands that are one command, not a group.
SINGLE_COMMANDS = {"run": "run", "serve": "serve"}


def load_command(name: str) -> Any:
    """The Click command for the subcommand *name* (imported and converted on first use)."""
    module = importlib.import_module(f"{__package__}.commands.{SUBCOMMANDS[name][0]}")
    wrapper = typer.Typer(rich_markup_mode=None, add_completion=False)  # completion belongs to `opsbook` itself
    if name in SINGLE_COMMANDS:
        function = getattr(module, SINGLE_COMMANDS[name])
        wrapper.command(name, help=module.HELP, epilog=module.EPILOG, no_args_is_help=True)(function)
        command = typer.main.get_command(wrapper)
    else:
        # As a group even when it has one command (`opsbook adsync check`, not `opsbook adsync`).
        wrapper.add_typer(module.app, name=name)
        command = typer.main.get_command(wrapper).commands[name]  # type: ignore[attr-defined]
    command.name = name
    return command


class LazyGroup(typer.core.TyperGroup):
    """The root group: lists the subcommands from SUBCOMMANDS and imports one only when it runs."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(SUBCOMMANDS) + [n for n in self.commands if n not in SUBCOMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in SUBCOMMANDS:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [(name, self.commands[name].get_short_help_str(80) if name in self.commands else short)
                for name, (_, short) in SUBCOMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    name="opsbook",
    cls=LazyGroup,
    help="Safe, scriptable sysadmin runbooks for Docker, WinRM HTTPS, AD Connect and Exchange Online.",
    epilog=COMMAND_LIST
    + "\n\n"
    + examples(
        "opsbook runbooks show docker-root",
        "opsbook docker-root move /srv/docker --dry-run",
        "opsbook winrm check srv1.corp.example.com --ca-file corp-root.pem",
        "opsbook adsync check --domain corp.example.com --dns 10.0.0.1 --dns 10.0.0.2",
        "opsbook run suite.yaml -f nagios",
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        terminal.out(f"opsbook {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for internal errors.")] = False,
    no_color: Annotated[
        bool, typer.Option("--no-color", help="Never use colour (NO_COLOR is honoured too).")
    ] = False,
) -> None:
    """Safe, scriptable sysadmin runbooks."""
    terminal.configure(no_color=no_color, debug=debug)




def _usage_line(exc: Exception) -> str:
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    hint = ""
    if isinstance(exc, UsageError) and exc.ctx is not None:
        hint = f" (see '{exc.ctx.command_path} --help')"
    return f"{message}{hint}"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code (the console script's entry point)."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    try:
        result = app(args=args, prog_name="opsbook", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        # A group called without a subcommand: show its help, as a usage error.
        if exc.ctx is not None:
            terminal.err(exc.ctx.get_help())
        return 3
    except ClickException as exc:
        terminal.error(_usage_line(exc))
        return 3
    except OpsbookError as exc:
        terminal.error(str(exc))
        return exc.exit_code
    except (typer.Abort, EOFError):
        terminal.error("aborted")
        return 3
    except KeyboardInterrupt:
        terminal.error("interrupted")
        return 3
    except BrokenPipeError:
        return 3
    except Exception as exc:
        if debug:
            import traceback

            traceback.print_exc()
        else:
            terminal.error(
                f"internal error: {exc.__class__.__name__}: {exc} (rerun with --debug for a traceback)"
            )
        return 3
    if isinstance(result, bool) or not isinstance(result, int):
        return 0
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
