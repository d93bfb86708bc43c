"""``opsbook serve``: a Prometheus multi-target exporter (``/probe?module=M&target=T``).

Thin layer: options, the binding of modules to the check commands (the suite binder) and the
renderers (cli/formats); the server itself is :mod:`opsbook.runbooks.exporter.server`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsbook.runbooks.errors import InputError

from .. import terminal
from ..options import examples

if TYPE_CHECKING:
    from opsbook.runbooks.exporter import Module, ModuleConfig
    from opsbook.runbooks.model import Report
    from opsbook.runbooks.secrets import Scrubber

#: Where ``opsbook serve`` listens unless told: loopback only, and a port of the exporter range.
DEFAULT_LISTEN = "127.0.0.1:9835"
#: What validation puts where a request's target will go.
PLACEHOLDER_TARGET = "probe.invalid"

HELP = (
    "Serve the checks to Prometheus as a multi-target exporter, like blackbox_exporter: "
    "GET /probe?module=M&target=T runs module M (a runbook and its options, from --config) "
    "on target T and answers the same metrics as --format prometheus plus probe_success and "
    "probe_duration_seconds; /metrics has the exporter's own. SIGHUP or POST /-/reload reloads "
    "the modules (a broken file is refused and the old modules kept)."
)
EPILOG = examples(
    "opsbook serve --config /etc/opsbook/exporter.yaml",
    "opsbook serve --config exporter.yaml --listen 0.0.0.0:9835 --web-config /etc/opsbook/web.yaml",
    "curl 'http://127.0.0.1:9835/probe?module=winrm_https&target=srv1.corp.example.com'",
    "curl 'http://127.0.0.1:9835/probe?module=winrm_https&target=srv1.corp.example.com&debug=true'",
)


@dataclass
class _Template:
    """A module bound once, at (re)load, with a placeholder where the request's target goes."""

    bound: Any  # suite_binding.BoundEntry
    #: The parameter the target fills (None: the module takes no target).
    target_param: str | None = None
    #: Whether that parameter is a list (winrm's HOSTS, dns --name) or one value.
    as_list: bool = False


@dataclass
class _Bindings:
    """What :meth:`ExporterHooks.validate` keeps on the config for the requests."""

    binder: Any  # suite_binding.Binder
    templates: dict[str, _Template] = field(default_factory=dict)


class ExporterHooks:
    """Modules bound to the check commands exactly as ``opsbook run`` binds suite entries.

    Each module is bound (its ``with:`` parsed by the command's own Click definition, its
    ``${...}`` references resolved) once, when the module file is loaded or reloaded; a
    request only puts its target into a copy of the parsed parameters. Parsing a command
    line per request cost a quarter of a millisecond of the event loop's time, and resolved
    the same references again and again.
    """

    def validate(self, config: ModuleConfig) -> None:
        from opsbook.runbooks.suite import Resolver, SuiteError, SuiteErrors

        from ..suite_binding import Binder

        resolver = Resolver(allowed_env=config.env)
        binder = Binder(resolver, check_files=True)
        errors: list[SuiteError] = []
        bindings = _Bindings(Binder(resolver))
        for module in config.modules.values():
            try:
                bound = binder.bind(_with_target(module, PLACEHOLDER_TARGET if module.target_key else None))
            except SuiteErrors as many:
                errors.extend(many.errors)
            except SuiteError as exc:
                errors.append(exc)
            else:
                bindings.templates[module.name] = _template(module, bound)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise SuiteErrors(errors)
        config.binding = bindings

    def prepare(
        self, config: ModuleConfig, module: Module, target: str | None, timeout: float, pin: str | None = None
    ) -> tuple[Callable[[float], Report], Scrubber]:
        bindings: _Bindings = config.binding
        template = bindings.templates.get(module.name)
        if template is None or (target is not None and template.target_param is None and module.target_key):
            bound = bindings.binder.bind(_with_target(module, target))  # not a simple placeholder: parse it all
        else:
            bound = template.bound
            if bound.params is not None:
                params = dict(bound.params)
                if template.target_param is not None and target is not None:
                    params[template.target_param] = [target] if template.as_list else target
                bound = dataclasses.replace(bound, params=params)
        if bound.params is None:
            raise InputError(bound.skip or "the module cannot run here")
        if pin is not None and target is not None:
            bound = _pinned(bound, target, pin)
        params = bound.params
        configured = params.get("timeout")

        def call(left: float) -> Report:
            # the module's own timeout, cut to what the deadline leaves when the probe starts
            if isinstance(configured, int | float):
                params["timeout"] = max(0.05, min(float(configured), timeout, left))
            report: Report = bound.call()
            return report

        return call, self.scrubber(config)

    def scrubber(self, config: ModuleConfig) -> Scrubber:
        bindings: _Bindings = config.binding
        scrub: Scrubber = bindings.binder.resolver.scrub
        return scrub

    def render_text(self, report: Report) -> str:
        from ..formats import render_prometheus

        return render_prometheus(report)

    def render_json(self, report: Report) -> str:
        from ..formats import render_json

        return render_json(report)


def _pinned(bound: Any, target: str, pin: str) -> Any:
    """*bound* with the target's host mapped to *pin* (``--resolve HOST:ADDRESS``), for a
    command that has ``--resolve``."""
    if "resolve" not in bound.spec.options:
        return bound
    host = target.rsplit(":", 1)[0] if ":" in target else target  # a name (an address is never pinned)
    params = dict(bound.params)
    params["resolve"] = [*(params.get("resolve") or []), f"{host}:{pin}"]
    return dataclasses.replace(bound, params=params)


def _template(module: Module, bound: Any) -> _Template:
    """*bound* (the module bound with the placeholder target) as a template for the requests.

    The placeholder must come out of parsing unchanged, as the whole value or a list of one;
    otherwise (a conversion touched it) the template is left without a target parameter and
    each request is bound in full.
    """
    if module.target_key is None or bound.params is None:
        return _Template(bound)
    spec = bound.spec
    param = spec.arguments.get(module.target_key) or spec.options.get(module.target_key)
    value = bound.params.get(param.name) if param is not None else None
    if value == PLACEHOLDER_TARGET:
        return _Template(bound, param.name, as_list=False)
    if value == [PLACEHOLDER_TARGET]:
        return _Template(bound, param.name, as_list=True)
    return _Template(bound)


def _with_target(module: Module, target: str | None) -> Any:
    from opsbook.runbooks.suite import Mark, Setting, YNode

    if module.target_key is None or target is None:
        return module.entry
    mark = Mark("<request target>", 1, 1)
    options = {**module.entry.options, module.target_key: Setting(mark, YNode(target, mark))}
    return dataclasses.replace(module.entry, options=options)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (all addresses) -> (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise InputError(f"--listen {text}: expected HOST:PORT, [IPv6]:PORT or :PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InputError(f"--listen {text}: [{host}] is not an IPv6 address") from None
    elif ":" in host:
        raise InputError(f"--listen {text}: write an IPv6 address in brackets ([::1]:9835)")
    return host or "0.0.0.0", int(port_text)  # ':PORT' asks for every address


#: How the server starts a probe worker process (the same interpreter and opsbook as itself).
WORKER_COMMAND = [sys.executable, "-m", "opsbook.cli.serve_worker"]
#: Probes a worker process runs before it is replaced (its native memory grows slowly with
#: every TLS handshake; see opsbook.runbooks.exporter.workers).
DEFAULT_RECYCLE_AFTER = 5000
#: The most probe worker processes started by default.
MAX_DEFAULT_PROCESSES = 8


def default_probe_processes() -> int:
    """One probe worker process per CPU this process may run on, at most :data:`MAX_DEFAULT_PROCESSES`."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_PROCESSES))


#: How the process ends after the server stops: probe threads stuck in a peer's timeout must
#: not hold up a restart (a replaceable seam for in-process tests).
exit_now = os._exit


def serve(  # noqa: PLR0917 - Typer maps every parameter
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            metavar="FILE",
            dir_okay=False,
            help="The modules (YAML: version 1, modules: NAME: {runbook, with, deadline, allow, target}).",
        ),
    ],
    listen: Annotated[
        str,
        typer.Option(
            "--listen",
            metavar="HOST:PORT",
            help=f"Address to listen on (default {DEFAULT_LISTEN}: loopback only; ':9835' for all).",
        ),
    ] = DEFAULT_LISTEN,
    web_config: Annotated[
        Path | None,
        typer.Option(
            "--web-config",
            metavar="FILE",
            dir_okay=False,
            help="exporter-toolkit web config: tls_server_config, basic_auth_users (bcrypt).",
        ),
    ] = None,
    max_concurrent_probes: Annotated[
        int,
        typer.Option("--max-concurrent-probes", min=1, max=1024, help="Probes running at once."),
    ] = 64,
    max_queued: Annotated[
        int | None,
        typer.Option(
            "--max-queued",
            min=0,
            max=100000,
            help="Requests waiting for a probe slot before more are answered 503 "
            "(default 4 x --max-concurrent-probes).",
        ),
    ] = None,
    probe_processes: Annotated[
        int | None,
        typer.Option(
            "--probe-processes",
            min=0,
            max=64,
            help="Worker processes that run the probes, sharing --max-concurrent-probes "
            "(default: one per CPU, at most 8; 0: in the server's own threads).",
        ),
    ] = None,
    recycle_after: Annotated[
        int,
        typer.Option(
            "--recycle-after",
            metavar="PROBES",
            min=0,
            max=10_000_000,
            help="Replace a probe worker process after it ran this many probes (0: never).",
        ),
    ] = DEFAULT_RECYCLE_AFTER,
    idle_timeout: Annotated[
        float,
        typer.Option(
            "--idle-timeout",
            metavar="SECONDS",
            min=0.1,
            max=86400,
            help="Close a connection that sent no complete request for this long "
            "(idle keep-alive, or a request head sent a byte at a time).",
        ),
    ] = 75.0,
    validate: Annotated[
        bool, typer.Option("--validate", help="Only check --config and --web-config, then exit.")
    ] = False,
) -> None:
    """Serve the checks to Prometheus."""
    import asyncio

    from opsbook.runbooks.exporter.server import QUEUE_FACTOR, Exporter, Limits
    from opsbook.runbooks.exporter.webconfig import load_web_config
    from opsbook.runbooks.suite import SuiteErrors

    host, port = parse_listen(listen)
    web = load_web_config(web_config) if web_config is not None else None
    queued = max_queued if max_queued is not None else max_concurrent_probes * QUEUE_FACTOR
    processes = probe_processes if probe_processes is not None else default_probe_processes()
    limits = Limits(max_concurrent_probes, queued, min(processes, max_concurrent_probes), recycle_after, idle_timeout)
    try:
        exporter = Exporter(os.fspath(config), ExporterHooks(), limits, web, worker_command=WORKER_COMMAND)
    except SuiteErrors as problems:
        for problem in problems.errors[:20]:
            terminal.error(str(problem))
        raise typer.Exit(3) from None
    if validate:
        count = len(exporter.config.modules)
        terminal.out(f"{config}: OK, {count} module{'s' if count != 1 else ''}\n")
        raise typer.Exit(0)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    log = logging.getLogger("opsbook.serve")
    for module in exporter.config.modules.values():
        if module.allow is None and module.target_key is not None:
            log.warning("module %s has no allow list: it probes any target it is asked for", module.name)

    def ready(url: str) -> None:
        log.info("listening on %s (modules: %s)", url, ", ".join(exporter.config.modules))

    try:
        asyncio.run(exporter.serve(host, port, ready))
    except OSError as exc:
        terminal.error(f"--listen {listen}: {exc.strerror or exc}")
        sys.stderr.flush()
        exit_now(3)
    except RuntimeError as exc:  # a probe worker process could not start
        terminal.error(str(exc))
        sys.stderr.flush()
        exit_now(3)
    log.info("stopped")
    sys.stdout.flush()
    sys.stderr.flush()
    exit_now(0)
