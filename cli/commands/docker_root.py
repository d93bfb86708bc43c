"""``opsbook docker-root``: status, move, rollback and cleanup of Docker's data-root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from opsbook.runbooks.errors import InputError, RefusedError
from opsbook.runbooks.model import Report

from .. import terminal
from ..options import FormatOption, SuiteCommand, TextfileOption, examples
from ..outputformat import OutputFormat

if TYPE_CHECKING:
    from opsbook.runbooks.docker_root.containerd import ContainerdControl
    from opsbook.runbooks.docker_root.control import EngineControl
    from opsbook.runbooks.docker_root.journal import Journal

DEFAULT_STATE_DIR = "/var/lib/opsbook"

app = typer.Typer(
    help="Move Docker's data-root with zero data loss: status, move, rollback, cleanup.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

DaemonJsonOption = Annotated[
    Path | None,
    typer.Option(
        "--daemon-json",
        metavar="PATH",
        dir_okay=False,
        help="daemon.json (default /etc/docker/daemon.json; rootless ~/.config/docker/daemon.json).",
    ),
]
DockerHostOption = Annotated[
    str | None,
    typer.Option("--docker-host", metavar="URL", help="Engine URL (default: DOCKER_HOST, else the local socket)."),
]
StopOption = Annotated[
    str | None,
    typer.Option(
        "--stop-command", metavar="CMD", help="Shell command that stops the engine when systemd does not manage it."
    ),
]
StartOption = Annotated[
    str | None,
    typer.Option(
        "--start-command", metavar="CMD", help="Shell command that starts the engine when systemd does not manage it."
    ),
]
ContainerdConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--containerd-config",
        metavar="PATH",
        dir_okay=False,
        help="containerd's config.toml (default /etc/containerd/config.toml).",
    ),
]
ContainerdStopOption = Annotated[
    str | None,
    typer.Option(
        "--containerd-stop-command",
        metavar="CMD",
        help="Shell command that stops containerd when systemd does not manage it.",
    ),
]
ContainerdStartOption = Annotated[
    str | None,
    typer.Option(
        "--containerd-start-command",
        metavar="CMD",
        help="Shell command that starts containerd when systemd does not manage it.",
    ),
]
StateDirOption = Annotated[
    Path, typer.Option("--state-dir", metavar="PATH", file_okay=False, help="Backups and the move journal.")
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking (automation).")]


def _host(docker_host: str | None) -> str | None:
    from opsbook.runbooks.docker_root.engine import validate_host

    return validate_host(docker_host or os.environ.get("DOCKER_HOST") or None)


def _daemon_json(path: Path | None) -> str:
    from opsbook.runbooks.docker_root.host import default_daemon_json

    return str(path) if path else default_daemon_json()


def _control(docker_host: str | None, stop_command: str | None, start_command: str | None) -> EngineControl:
    from opsbook.runbooks.docker_root.control import EngineControl
    from opsbook.runbooks.docker_root.host import is_systemd_host, unit_exists

    if bool(stop_command) != bool(start_command):
        raise InputError("--stop-command and --start-command go together: give both or neither")
    systemd = is_systemd_host() and not stop_command
    return EngineControl(
        docker_host,
        stop_command or None,
        start_command or None,
        systemd=systemd,
        socket_unit=not systemd or unit_exists("docker.socket"),
    )


def _containerd_control(stop_command: str | None, start_command: str | None) -> ContainerdControl:
    from opsbook.runbooks.docker_root.containerd import ContainerdControl
    from opsbook.runbooks.docker_root.host import is_systemd_host

    if bool(stop_command) != bool(start_command):
        raise InputError("--containerd-stop-command and --containerd-start-command go together: give both or neither")
    return ContainerdControl(
        None, stop_command or None, start_command or None, systemd=is_systemd_host() and not stop_command
    )


def _containerd_config(path: Path | None) -> str:
    from opsbook.runbooks.docker_root.containerd import DEFAULT_CONFIG

    return str(path) if path else DEFAULT_CONFIG


def _absolute(target: str) -> str:
    if not target or not os.path.isabs(target):
        raise InputError(f"TARGET {target!r} is not an absolute path (e.g. /srv/docker)")
    return os.path.normpath(target)


#: How suites and the exporter run this command.
SUITE = SuiteCommand("docker-root", "status")


def build_report(
    *,
    daemon_json: Path | None = None,
    docker_host: str | None = None,
    stop_command: str | None = None,
    start_command: str | None = None,
    state_dir: Path = Path(DEFAULT_STATE_DIR),
    containerd_config: Path | None = None,
) -> Report:
    """The ``docker-root status`` report (also used by ``opsbook run``)."""
    from opsbook.runbooks.docker_root import status

    del stop_command, start_command  # accepted for symmetry with the other docker-root commands
    return status.build(
        _daemon_json(daemon_json),
        _host(docker_host),
        str(state_dir),
        containerd_config=_containerd_config(containerd_config),
    )


@app.command(
    epilog=examples(
        "opsbook docker-root status",
        "opsbook docker-root status -f nagios",
        "opsbook docker-root status --docker-host unix:///run/user/1000/docker.sock -f json",
    )
)
def status(
    *,
    daemon_json: DaemonJsonOption = None,
    docker_host: DockerHostOption = None,
    stop_command: StopOption = None,
    start_command: StartOption = None,
    state_dir: StateDirOption = Path(DEFAULT_STATE_DIR),
    containerd_config: ContainerdConfigOption = None,
    fmt: FormatOption = OutputFormat.table,
    textfile: TextfileOption = None,
) -> None:
    """Current data-root, driver, backing filesystem, d_type, image store (and containerd's root), usage
    and free space."""
    raise typer.Exit(
        terminal.emit_report(
            build_report(
                daemon_json=daemon_json,
                docker_host=docker_host,
                stop_command=stop_command,
                start_command=start_command,
                state_dir=state_dir,
                containerd_config=containerd_config,
            ),
            fmt,
            textfile=textfile,
        )
    )


@app.command(
    epilog=examples(
        "opsbook docker-root move /srv/docker --dry-run",
        "opsbook docker-root move /srv/docker              # shows the plan, asks",
        "opsbook docker-root move /srv/docker --yes -f json",
        "opsbook docker-root move /srv/docker --stop-command 'service docker stop' \\",
        "    --start-command 'service docker start' --yes",
        "opsbook docker-root move /srv/docker --containerd-target /srv/containerd --dry-run",
    )
)
def move(
    target: Annotated[str, typer.Argument(metavar="TARGET", help="New data-root (absolute path, empty or new).")],
    *,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only; change and write nothing.")] = False,
    yes: YesOption = False,
    containerd_root_moved: Annotated[
        bool,
        typer.Option(
            "--containerd-root-moved",
            help="The containerd image store is in use and you move containerd's root yourself "
            "(opsbook then moves only the data-root).",
        ),
    ] = False,
    containerd_target: Annotated[
        str | None,
        typer.Option(
            "--containerd-target",
            metavar="PATH",
            help="New root of the system containerd (default: a 'containerd' folder beside TARGET).",
        ),
    ] = None,
    allow_other_containerd_clients: Annotated[
        bool,
        typer.Option(
            "--allow-other-containerd-clients",
            help="Move containerd's root although namespaces other than Docker's (e.g. k8s.io) use it: "
            "their running tasks are stopped and started again.",
        ),
    ] = False,
    containerd_config: ContainerdConfigOption = None,
    containerd_stop_command: ContainerdStopOption = None,
    containerd_start_command: ContainerdStartOption = None,
    daemon_json: DaemonJsonOption = None,
    docker_host: DockerHostOption = None,
    stop_command: StopOption = None,
    start_command: StartOption = None,
    state_dir: StateDirOption = Path(DEFAULT_STATE_DIR),
    fmt: FormatOption = OutputFormat.table,
    textfile: TextfileOption = None,
) -> None:
    """Move the data-root to TARGET: plan, copy (warm, then final delta), switch, verify.

    With the containerd image store (Docker 29+) the system containerd's root moves too
    (config.toml's root), in the same plan, journal and rollback.

    Old data is never deleted (see 'cleanup'). Any failure after the engine was stopped
    rolls back automatically.
    """
    from opsbook.runbooks.docker_root.move import MoveOptions, apply, make_plan

    # Under --dry-run a relative TARGET is reported as a preflight blocker in the plan (exit 2);
    # otherwise it is refused at once (exit 3).
    target = target if dry_run and target.strip() else _absolute(target)
    host_url = _host(docker_host)
    opts = MoveOptions(
        target=target,
        daemon_json=_daemon_json(daemon_json),
        docker_host=host_url,
        state_dir=str(state_dir),
        control=_control(host_url, stop_command, start_command),
        dry_run=dry_run,
        allow_containerd_store=containerd_root_moved,
        containerd_config=_containerd_config(containerd_config),
        containerd_control=_containerd_control(containerd_stop_command, containerd_start_command),
        containerd_target=_absolute(containerd_target) if containerd_target else None,
        allow_other_clients=allow_other_containerd_clients,
    )
    plan = make_plan(opts)
    if plan.nothing_to_do or dry_run:
        raise typer.Exit(terminal.emit_report(plan.report, fmt, textfile=textfile))
    if plan.blockers:
        terminal.emit_report(plan.report, fmt, textfile=textfile)
        raise RefusedError("move refused: " + "; ".join(b.summary for b in plan.blockers))
    if not yes:
        if not terminal.stdin_is_tty():
            terminal.emit_report(plan.report, fmt, textfile=textfile)
            raise RefusedError("move changes the host: give --yes (or run it on a terminal to confirm the plan)")
        # The plan goes to stderr with the prompt: stdout holds only the final report, one
        # document in the format asked for (JSON stays parseable).
        terminal.render_table(plan.report, stream="err")
        if not terminal.confirm(f"Move Docker's data-root to {target}?"):
            raise RefusedError("not confirmed: nothing changed")
    with terminal.move_progress() as progress:
        report = apply(plan, progress=progress)
    raise typer.Exit(terminal.emit_report(report, fmt, textfile=textfile))


def _given_daemon_json(path: Path | None) -> str | None:
    """--daemon-json when given (rollback and cleanup otherwise take the one the move recorded)."""
    return str(path) if path else None


@app.command(
    epilog=examples(
        "opsbook docker-root rollback",
        "opsbook docker-root rollback --yes --state-dir /var/lib/opsbook",
        "opsbook docker-root rollback --containerd-stop-command 'sv stop containerd' "
        "--containerd-start-command 'sv start containerd'",
    )
)
def rollback(
    *,
    yes: YesOption = False,
    daemon_json: DaemonJsonOption = None,
    docker_host: DockerHostOption = None,
    stop_command: StopOption = None,
    start_command: StartOption = None,
    containerd_stop_command: ContainerdStopOption = None,
    containerd_start_command: ContainerdStartOption = None,
    state_dir: StateDirOption = Path(DEFAULT_STATE_DIR),
    fmt: FormatOption = OutputFormat.table,
    textfile: TextfileOption = None,
) -> None:
    """Restore the previous daemon.json and start the engine on the old root (after a move or a crash).

    When the move took containerd's root along, config.toml is restored too and containerd
    restarted on its old root (with the commands the move used unless given here).
    """
    from opsbook.runbooks.docker_root.journal import Journal
    from opsbook.runbooks.docker_root.rollback import RollbackPlan, run_locked

    if bool(containerd_stop_command) != bool(containerd_start_command):
        raise InputError("--containerd-stop-command and --containerd-start-command go together: give both or neither")

    def control_for(host_url: str | None, journal: Journal) -> EngineControl:
        stop, start = stop_command, start_command
        if not (stop or start):  # the commands the move used, if any
            stop, start = journal.data.get("stop_command"), journal.data.get("start_command")
        control = _control(host_url, stop, start)
        if not control.usable:
            raise InputError("systemd does not manage the engine here: give --stop-command and --start-command")
        return control

    def confirm(plan: RollbackPlan) -> None:
        terminal.warn(
            f"rollback returns to {plan.old_root} as it was before the move; anything created on "
            f"{plan.target} since (images, container writes, volume data) stays behind there"
            + (f": {'; '.join(plan.behind)}" if plan.behind else "")
            + f". It runs: {plan.commands()}"
        )
        if not yes:
            if not terminal.stdin_is_tty():
                raise RefusedError("rollback restarts the engine: give --yes (or confirm on a terminal)")
            if not terminal.confirm("Roll back?"):
                raise RefusedError("not confirmed: nothing changed")

    # The lock is taken first and held through the prompt (run_locked): what is shown is what is done.
    report = run_locked(
        Journal(str(state_dir)),
        _host(docker_host),
        _given_daemon_json(daemon_json),
        control_for,
        confirm,
        containerd_commands=(containerd_stop_command or None, containerd_start_command or None),
    )
    raise typer.Exit(terminal.emit_report(report, fmt, textfile=textfile))


@app.command(
    epilog=examples(
        "opsbook docker-root cleanup             # asks you to type the old path",
        "opsbook docker-root cleanup --yes",
    )
)
def cleanup(
    *,
    yes: YesOption = False,
    daemon_json: DaemonJsonOption = None,
    docker_host: DockerHostOption = None,
    stop_command: StopOption = None,
    start_command: StartOption = None,
    state_dir: StateDirOption = Path(DEFAULT_STATE_DIR),
    fmt: FormatOption = OutputFormat.table,
    textfile: TextfileOption = None,
) -> None:
    """Remove the old data-root: only after a verified move, with --yes or the typed old path."""
    from opsbook.runbooks.docker_root.cleanup import CleanupPlan, run_locked
    from opsbook.runbooks.docker_root.journal import Journal

    del stop_command, start_command

    def confirm(plan: CleanupPlan) -> None:
        terminal.warn(f"cleanup deletes {plan.describe()}")
        if yes:
            return
        if not terminal.stdin_is_tty():
            raise RefusedError(f"cleanup deletes {', '.join(plan.paths)}: give --yes (or type the path on a terminal)")
        first = plan.paths[0]
        if terminal.ask(f"Type {first} to delete {'it' if len(plan.paths) == 1 else 'them all'}:").strip() != first:
            raise RefusedError("the path typed does not match: nothing deleted")

    # The lock is held from the check through the prompt to the delete (run_locked): a rollback
    # cannot slip in between.
    report = run_locked(Journal(str(state_dir)), _host(docker_host), _given_daemon_json(daemon_json), confirm)
    raise typer.Exit(terminal.emit_report(report, fmt, textfile=textfile))
