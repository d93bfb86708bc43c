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

from . import terminal
from .clickcompat import UsageError
from .errors import error_handler
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

COMPLETION_HELP = {
    "install_completion": "Install completion for SHELL if one follows (bash, zsh, fish, powershell), "
    "else for the current shell.",
    "show_completion": "Print the completion script for SHELL if one follows (bash, zsh, fish, "
    "powershell), else for the current shell.",
}

#: The subcommands, loaded only when used: `opsbook --help` must stay fast (each command
#: module and Typer's conversion of its parameters cost milliseconds we would pay on every call).
#: name -> (module in opsbook.cli.commands, short help shown in `opsbook --help`)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "runbooks": ("runbooks_cmd", "List the runbooks, or show one as a document."),
    "docker-root": ("docker_root", "Move Docker's data-root with zero data loss: status, move, rollback, cleanup."),
    "winrm": ("winrm", "WinRM HTTPS listeners: outside check, authenticated audit, binding script."),
    "adsync": ("adsync", "Azure AD Connect / Entra Connect: DNS per server, domain controller ports, tenant sync."),
    "dns": ("dns", "DNS resolvers: each one asked on its own, answers compared (brown-out, down)."),
    "exchange": ("exchange", "Exchange Online: generate reviewed, injection-proof PowerShell for mailbox fixes."),
    "run": ("run", "Run a YAML suite of checks (winrm check, adsync check, dns check, docker-root status)..."),
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
    _add_no_color(command)
    return command


def _no_color(ctx: Any, param: Any, value: bool) -> bool:
    if value and not getattr(ctx, "resilient_parsing", False):  # not while completing
        terminal.configure(no_color=True)
    return value


def _add_no_color(command: Any) -> None:
    """Give *command* and every command under it a ``--no-color`` of its own.

    The root's ``--no-color`` must come before the subcommand; this one is accepted where
    people type it, at the end (``opsbook docker-root status --no-color``). Added here, once,
    as each subcommand is loaded, so no command can forget it.
    """
    if not any("--no-color" in getattr(p, "opts", ()) for p in command.params):
        command.params.append(
            typer.core.TyperOption(
                param_decls=["--no-color"],
                is_flag=True,
                default=False,
                expose_value=False,
                is_eager=True,
                callback=_no_color,
                help="Never use colour (NO_COLOR is honoured too).",
            )
        )
    for sub in getattr(command, "commands", {}).values():
        _add_no_color(sub)


class LazyGroup(typer.core.TyperGroup):
    """The root group: lists the subcommands from SUBCOMMANDS and imports one only when it runs."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(SUBCOMMANDS) + [n for n in self.commands if n not in SUBCOMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in SUBCOMMANDS:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands.get(cmd_name)

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:  # Typer's completion options: a shell may follow them (see main())
            if param.name in COMPLETION_HELP:
                param.help = COMPLETION_HELP[param.name]  # type: ignore[attr-defined]
        return list(params)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [
            (name, self.commands[name].get_short_help_str(80) if name in self.commands else short)
            for name, (_, short) in SUBCOMMANDS.items()
        ]
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
        "opsbook run suite.yaml -f nagios --no-color",
        "opsbook --show-completion fish > ~/.config/fish/completions/opsbook.fish",
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
    no_color: Annotated[bool, typer.Option("--no-color", help="Never use colour (NO_COLOR is honoured too).")] = False,
) -> None:
    """Safe, scriptable sysadmin runbooks."""
    terminal.configure(no_color=no_color, debug=debug)


#: Options of ``opsbook`` itself that can name a shell; Typer's own parse them as plain flags
#: and detect the shell instead, so ``--show-completion zsh`` would print the bash script.
COMPLETION_OPTIONS = ("--show-completion", "--install-completion")
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


def _completion_request(args: list[str]) -> tuple[str, str] | None:
    """(option, shell) when the root options (before any subcommand) name a completion shell.

    ``--show-completion zsh`` and ``--show-completion=zsh``; ``--show-completion`` alone
    (no shell after it) is left to Typer, which detects the current shell.
    """
    for i, arg in enumerate(args):
        if not arg.startswith("-") or arg == "--":
            return None  # the subcommand: what follows is its business
        option, sep, value = arg.partition("=")
        if option not in COMPLETION_OPTIONS:
            continue
        if sep:
            return option, value
        if i + 1 < len(args) and not args[i + 1].startswith("-"):
            return option, args[i + 1]
    return None


def _completion(option: str, shell: str) -> int:
    """Print (or install) the completion script for *shell*, the shell the user named."""
    if shell not in SHELLS:
        raise UsageError(f"unsupported shell {shell!r} for {option}; choose from: {', '.join(SHELLS)}")
    # Typer's own scripts: they call back with _OPSBOOK_COMPLETE=complete_<shell>, which
    # Typer's completion classes answer (registered by add_completion=True).
    from typer._completion_shared import get_completion_script, install

    prog_name, complete_var = "opsbook", "_OPSBOOK_COMPLETE"
    if option == "--show-completion":
        terminal.out(get_completion_script(prog_name=prog_name, complete_var=complete_var, shell=shell) + "\n")
    else:
        _, path = install(shell=shell, prog_name=prog_name, complete_var=complete_var)
        terminal.err(f"{shell} completion installed in {path}; it takes effect in a new shell")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code (the console script's entry point)."""
    args = sys.argv[1:] if argv is None else list(argv)
    term = terminal.Terminal()  # the run's preferences, set by the options (Click context obj)
    with error_handler(term) as outcome:
        request = _completion_request(args)
        if request is not None:
            outcome.code = _completion(*request)
        else:
            result = app(args=args, prog_name="opsbook", standalone_mode=False, obj=term)
            outcome.code = 0 if isinstance(result, bool) or not isinstance(result, int) else result
    return outcome.code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
