"""The exporter's HTTP server (aiohttp): /probe, /metrics, /-/healthy, /-/reload.

The CLI layer hands in :class:`Hooks`: how a module and a target become a check call (the
suite binder) and how a report is rendered (the same Prometheus text and JSON as
``--format prometheus|json``). Probes run in a thread pool bounded by
``max_concurrent``; a request waits for a slot at most until its deadline and only
``max_queued`` may wait: past that it is answered 503 at once. The time spent waiting for
a slot counts against the deadline: a probe that starts late gets only what is left of it
for its own network timeout. A probe that overruns its deadline is answered as failed, and
keeps its slot until its own timeouts end it, so stuck probes can never pile up beyond the
bound.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import InputError
from ..model import Report, Status
from ..secrets import Scrubber
from ..suite.runner import DeadlineExceeded, failure_result
from ..suite.yamlsafe import SuiteError
from .modules import (
    TARGET_CONNECTED,
    TARGET_WITH_PORT,
    Module,
    ModuleConfig,
    TargetError,
    load_module_config,
    parse_target,
    probe_deadline,
)
from .webconfig import WebConfig
from .workers import ProbeProcesses, WorkerHooks, finished_report, start_threads

log = logging.getLogger("opsbook.serve")

QUERY_KEYS = ("module", "target", "debug")
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Largest request body read (only POST /-/reload has one, and ignores it).
MAX_BODY = 64 * 1024
DEFAULT_MAX_CONCURRENT = 64
#: Requests waiting for a probe slot, as a multiple of --max-concurrent-probes, by default.
QUEUE_FACTOR = 4
#: How long a connection may go without a complete request (nginx's keepalive_timeout).
DEFAULT_IDLE_TIMEOUT = 75.0
#: The command's own network timeout is kept under this share of the probe's deadline, so it
#: reports its own, precise failure ("TLS handshake timed out") before the deadline cuts it.
TIMEOUT_SHARE = 0.8


class Hooks(WorkerHooks, Protocol):
    """What the CLI layer provides: binding (suite binder, see :class:`.workers.WorkerHooks`)
    and rendering (cli/formats)."""

    def render_text(self, report: Report) -> str:
        """The report in Prometheus text format."""

    def render_json(self, report: Report) -> str:
        """The report as the JSON document."""


@dataclass
class Limits:
    """Concurrency bounds."""

    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    max_queued: int = DEFAULT_MAX_CONCURRENT * QUEUE_FACTOR
    #: Probe worker processes (0: the probes run in the server's own threads).
    processes: int = 0
    #: Replace a probe worker process after this many probes (0: never).
    recycle_after: int = 0
    #: Close a connection that has not sent a complete request for this long (seconds): an idle
    #: keep-alive connection, or a client trickling its request head to hold a connection.
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT


class Metrics:
    """The exporter's own metrics (prometheus_client, a registry of its own)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
        from prometheus_client.platform_collector import PlatformCollector
        from prometheus_client.process_collector import ProcessCollector

        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series, like blackbox_exporter
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.requests = Counter(
            "opsbook_exporter_probe_requests",
            "Probe requests by module and outcome "
            "(success, failure, timeout, bad_request, forbidden, overloaded, error).",
            ["module", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "opsbook_exporter_probe_duration_seconds",
            "Time from request to answer of /probe, by module.",
            ["module"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.in_flight = Gauge("opsbook_exporter_probes_in_flight", "Probes running now (threads busy).", registry=r)
        self.queued = Gauge("opsbook_exporter_probes_queued", "Requests waiting for a probe slot.", registry=r)
        self.reload_ok = Gauge(
            "opsbook_exporter_config_last_reload_successful",
            "Whether the last module file (re)load worked.",
            registry=r,
        )
        self.reload_time = Gauge(
            "opsbook_exporter_config_last_reload_success_timestamp_seconds",
            "When the module file was last (re)loaded successfully (Unix time).",
            registry=r,
        )
        self.reloads = Counter(
            "opsbook_exporter_config_reloads",
            "Module file reloads by outcome (success, failure).",
            ["outcome"],
            registry=r,
        )
        self.modules = Gauge("opsbook_exporter_modules", "Modules in the configuration in use.", registry=r)
        self.worker_restarts = Counter(
            "opsbook_exporter_probe_worker_replacements",
            "Probe worker processes replaced, by reason (recycled: after --recycle-after probes; died).",
            ["reason"],
            registry=r,
        )
        for reason in ("recycled", "died"):
            self.worker_restarts.labels(reason)

    def render(self) -> bytes:
        """The exposition text."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def probe_lines(success: bool, duration: float) -> str:
    """``probe_success`` and ``probe_duration_seconds``, as blackbox_exporter writes them."""
    return (
        "# HELP probe_success Whether the probe succeeded: the worst status was OK or WARNING.\n"
        "# TYPE probe_success gauge\n"
        f"probe_success {int(success)}\n"
        "# HELP probe_duration_seconds How long the probe took to complete in seconds.\n"
        "# TYPE probe_duration_seconds gauge\n"
        f"probe_duration_seconds {duration:.6f}\n"
    )


class Exporter:
    """The module configuration in use, the probe pool and the HTTP handlers."""

    def __init__(
        self,
        config_path: str,
        hooks: Hooks,
        limits: Limits | None = None,
        web: WebConfig | None = None,
        worker_command: list[str] | None = None,
    ) -> None:
        """*worker_command* starts a probe worker process (see :mod:`.workers`); it is needed
        when ``limits.processes`` is above 0."""
        self.config_path = config_path
        self.hooks = hooks
        self.limits = limits or Limits()
        self.web = web
        self.metrics = Metrics()
        self.executor: ThreadPoolExecutor | None = None
        self.workers: ProbeProcesses | None = None
        if self.limits.processes > 0:
            if not worker_command:
                raise ValueError("probe worker processes need the command that starts one")
            threads = -(-self.limits.max_concurrent // self.limits.processes)  # each worker's share, rounded up
            self.workers = ProbeProcesses(
                self.limits.processes,
                threads,
                worker_command,
                recycle_after=self.limits.recycle_after,
                on_replaced=lambda reason: self.metrics.worker_restarts.labels(reason).inc(),
            )
        else:
            self.executor = ThreadPoolExecutor(self.limits.max_concurrent, thread_name_prefix="opsbook-probe")
        self.config: ModuleConfig = self._load()
        self.metrics.reload_ok.set(1)
        self.metrics.reload_time.set(time.time())
        self.metrics.modules.set(len(self.config.modules))
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0
        #: Requests holding a probe slot or waiting for one (counted before any await, so a burst
        #: of requests arriving together cannot all get past the bound).
        self._admitted = 0
        self._reload_lock: asyncio.Lock | None = None

    # ------------------------------------------------------------------ configuration
    def _load(self) -> ModuleConfig:
        config = load_module_config(self.config_path)
        self.hooks.validate(config)
        return config

    async def reload(self, why: str) -> tuple[bool, str]:
        """Load the module file again; on any error keep the configuration in use."""
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        async with self._reload_lock:
            loop = asyncio.get_running_loop()
            try:
                config = await loop.run_in_executor(None, self._load)
            except SuiteError as exc:
                problems = [str(e) for e in getattr(exc, "errors", [exc])]
                message = "; ".join(problems)
            except Exception as exc:  # the old configuration stays whatever went wrong
                message = f"{exc.__class__.__name__}: {exc}"
            else:
                config.generation = self.config.generation + 1
                if self.workers is not None:
                    await self.workers.reconfigure(config)
                self.config = config
                self.metrics.reload_ok.set(1)
                self.metrics.reload_time.set(time.time())
                self.metrics.reloads.labels("success").inc()
                self.metrics.modules.set(len(config.modules))
                log.info("reloaded %s (%s): %d modules", self.config_path, why, len(config.modules))
                return True, f"reloaded {len(config.modules)} modules"
            self.metrics.reload_ok.set(0)
            self.metrics.reloads.labels("failure").inc()
            log.error("reload (%s) refused, keeping the previous modules: %s", why, message)
            return False, message

    # ------------------------------------------------------------------ HTTP
    def app(self) -> Any:
        """The aiohttp application."""
        from aiohttp import web

        middlewares = [self._errors_middleware()]
        if self.web is not None and self.web.users:
            middlewares.append(self._auth_middleware())
        app = web.Application(client_max_size=MAX_BODY, middlewares=middlewares)
        app.router.add_get("/probe", self.probe)
        app.router.add_get("/metrics", self.metrics_handler)
        app.router.add_get("/-/healthy", self.healthy)
        app.router.add_post("/-/reload", self.reload_handler)
        app.router.add_get("/", self.index)
        if self.web is not None and self.web.headers:
            headers = dict(self.web.headers)

            async def add_headers(request: Any, response: Any) -> None:
                response.headers.update(headers)

            app.on_response_prepare.append(add_headers)
        return app

    def _errors_middleware(self) -> Any:
        from aiohttp import web

        @web.middleware
        async def errors(request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
            try:
                return await handler(request)
            except web.HTTPException:
                raise
            except Exception as exc:  # one line in the log, one line to the client; the server goes on
                log.error("%s %s failed: %s: %s", request.method, request.path, exc.__class__.__name__, exc)
                return web.Response(status=500, text="internal error (see the exporter's log)\n")

        return errors

    def _auth_middleware(self) -> Any:
        from aiohttp import web

        web_config = self.web
        assert web_config is not None

        @web.middleware
        async def auth(request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
            header = request.headers.get("Authorization", "")
            user = password = None
            if header[:6].lower() == "basic ":
                try:
                    user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError, ValueError):
                    user = None
            if user is not None and password is not None:
                loop = asyncio.get_running_loop()
                if await loop.run_in_executor(None, web_config.check_password, user, password):
                    return await handler(request)
            challenge = {"WWW-Authenticate": 'Basic realm="opsbook"'}
            return web.Response(status=401, text="Unauthorized\n", headers=challenge)

        return auth

    async def index(self, request: Any) -> Any:
        from aiohttp import web

        names = ", ".join(sorted(self.config.modules))
        return web.Response(
            text=f"opsbook exporter: /probe?module=M&target=T (modules: {names}), /metrics, "
            "/-/healthy, POST /-/reload\n"
        )

    async def healthy(self, request: Any) -> Any:
        from aiohttp import web

        return web.Response(text="Healthy\n")

    async def metrics_handler(self, request: Any) -> Any:
        from aiohttp import web
        from prometheus_client import CONTENT_TYPE_LATEST

        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def reload_handler(self, request: Any) -> Any:
        from aiohttp import web

        ok, message = await self.reload("POST /-/reload")
        return web.Response(status=200 if ok else 500, text=" ".join(message.split()) + "\n")

    def _refuse(self, module: str, outcome: str, status: int, message: str) -> Any:
        from aiohttp import web

        self.metrics.requests.labels(module, outcome).inc()
        return web.Response(status=status, text=" ".join(message.split())[:500] + "\n")

    async def probe(self, request: Any) -> Any:
        """``GET /probe?module=M&target=T[&debug=true]``."""
        from aiohttp import web

        started = time.perf_counter()
        query = request.query
        config = self.config  # one configuration for the whole request, even across a reload
        unknown = sorted({k for k in query if k not in QUERY_KEYS})
        if unknown:
            return self._refuse(
                "", "bad_request", 400, f"unknown parameter {unknown[0][:40]!r} (accepted: module, target, debug)"
            )
        if any(len(query.getall(k)) > 1 for k in query):
            return self._refuse("", "bad_request", 400, "each parameter may be given once")
        name = query.get("module", "")
        if not name:
            return self._refuse("", "bad_request", 400, "module parameter is missing")
        module = config.modules.get(name)
        if module is None:
            known = ", ".join(sorted(config.modules))
            return self._refuse("", "bad_request", 400, f"unknown module {name[:60]!r} (known: {known})")
        debug_text = query.get("debug", "false").lower()
        if debug_text not in ("true", "false", "1", "0"):
            return self._refuse(name, "bad_request", 400, "debug must be true or false")
        debug = debug_text in ("true", "1")
        target_text = query.get("target", "")
        try:
            deadline = probe_deadline(module, request.headers.get("X-Prometheus-Scrape-Timeout-Seconds"))
            target = None
            if module.target_key is not None or target_text:
                if module.target_key is not None and not target_text:
                    raise TargetError("target parameter is missing")
                target = parse_target(target_text, port_allowed=module.target_key in TARGET_WITH_PORT)
            pin = None
            if target is not None and module.allow is not None and module.target_key is not None:
                pin = await module.allow.check(target, timeout=max(0.1, min(2.0, deadline / 2)))
                pin = pin if module.target_key in TARGET_CONNECTED else None
            probe_target = target.text if target and module.target_key else None  # (docker-root: a label)
            # bound here even when a worker process runs it: a request it cannot run is a 400 now
            call, scrub = self.hooks.prepare(config, module, probe_target, deadline * TIMEOUT_SHARE, pin)
        except TargetError as exc:
            return self._refuse(name, "forbidden" if exc.status == 403 else "bad_request", exc.status, str(exc))
        except SuiteError as exc:
            return self._refuse(name, "bad_request", 400, f"{name}: {exc.message}")
        except InputError as exc:
            return self._refuse(name, "bad_request", 400, f"{name}: {exc}")

        remaining = deadline - (time.perf_counter() - started)
        start = self._starter(config, module, target=probe_target, pin=pin, call=call, scrub=scrub)
        outcome, report = await self._run(module, start, scrub, remaining, deadline)
        if outcome == "overloaded":
            return self._refuse(name, outcome, 503, report.checks[0].summary if report.checks else "overloaded")
        duration = time.perf_counter() - started
        report.duration_s = duration
        success = bool(report.checks) and report.status in (Status.OK, Status.WARNING)
        if outcome == "ran":
            outcome = "success" if success else "failure"
        self.metrics.requests.labels(name, outcome).inc()
        self.metrics.duration.labels(name).observe(duration)
        if debug:
            report.sections["probe"] = {
                "module": name,
                "target": target.text if target else "",
                "deadline_s": round(deadline, 3),
                "success": success,
            }
            return web.Response(text=self.hooks.render_json(report), content_type="application/json")
        body = self.hooks.render_text(report) + probe_lines(success, duration)
        return web.Response(body=body.encode(), headers={"Content-Type": TEXT_CONTENT_TYPE})

    def _starter(
        self,
        config: ModuleConfig,
        module: Module,
        *,
        target: str | None,
        pin: str | None,
        call: Callable[[float], Report],
        scrub: Scrubber,
    ) -> Callable[[float], asyncio.Future[Report]]:
        """What starts the probe: in a worker process, or in one of the server's own threads."""
        workers, executor = self.workers, self.executor

        def start(timeout: float) -> asyncio.Future[Report]:
            if workers is not None:
                return workers.submit(config, module, target, timeout, pin)
            loop = asyncio.get_running_loop()
            return loop.run_in_executor(executor, finished_report, module, call, scrub, timeout)

        return start

    async def _run(
        self,
        module: Module,
        start: Callable[[float], asyncio.Future[Report]],
        scrub: Scrubber,
        remaining: float,
        deadline: float,
    ) -> tuple[str, Report]:
        """Run the probe in a probe slot: (outcome, report); outcome is ran, timeout or overloaded.

        *start* starts the probe with the network timeout it may use and returns the future of
        its finished report. *remaining* is what is left of the request's deadline: waiting for
        a slot spends it, and the probe runs with what is left after that (never a fresh deadline).
        """
        loop = asyncio.get_running_loop()
        answer_by = loop.time() + max(remaining, 0.001)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limits.max_concurrent)
        slots = self._slots
        report = Report(command=module.entry.command)
        if self._admitted >= self.limits.max_concurrent + self.limits.max_queued:
            report.checks = [_note(module, "overloaded: every probe slot is busy and the queue is full")]
            return "overloaded", report
        self._admitted += 1
        self._waiting += 1
        self.metrics.queued.inc()
        acquired = False
        try:
            await asyncio.wait_for(slots.acquire(), max(remaining, 0.001))
            acquired = True
        except TimeoutError:
            report.checks = [_note(module, "overloaded: no probe slot came free within the deadline")]
            return "overloaded", report
        finally:
            self._waiting -= 1
            self.metrics.queued.dec()
            if not acquired:  # gave up waiting, or the client went away
                self._admitted -= 1
        self.metrics.in_flight.inc()
        started = time.perf_counter()
        left = max(answer_by - loop.time(), 0.001)
        try:
            future = start(max(0.05, left * TIMEOUT_SHARE))
        except BaseException:
            slots.release()
            self._admitted -= 1
            self.metrics.in_flight.dec()
            raise

        def finished(done: asyncio.Future[Report]) -> None:
            slots.release()  # only when the probe is really done: stuck probes hold their slot
            self._admitted -= 1
            self.metrics.in_flight.dec()
            if not done.cancelled():
                done.exception()  # retrieved: a late failure is not "never retrieved"

        future.add_done_callback(finished)
        try:
            result = await asyncio.wait_for(asyncio.shield(future), left)
        except TimeoutError:
            exc = DeadlineExceeded(f"did not finish within the probe deadline of {deadline:.3g}s")
            report.checks = [failure_result(module.entry, exc, scrub, time.perf_counter() - started)]
            return "timeout", report
        except (Exception, SystemExit) as exc:  # the worker process running it ended
            report.checks = [failure_result(module.entry, exc, scrub, time.perf_counter() - started)]
            return "ran", report
        return "ran", result

    def start_probe_threads(self) -> None:
        """Start every probe thread of the server's own pool now (see :func:`.workers.start_threads`)."""
        if self.executor is not None:
            start_threads(self.executor, self.limits.max_concurrent)

    # ------------------------------------------------------------------ serving
    async def serve(
        self, host: str, port: int, on_ready: Callable[[str], None], stop: asyncio.Event | None = None
    ) -> None:
        """Listen on *host*:*port* until SIGTERM/SIGINT (or *stop*); SIGHUP reloads."""
        from aiohttp import web

        loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        if self.workers is not None:  # before listening: the first request finds them ready
            try:
                await self.workers.start(self.config)
            except BaseException:
                await self.workers.close()
                raise
        # keepalive_timeout: aiohttp arms it when a connection opens and closes the connection
        # when it fires before a complete request has arrived (idle, or headers trickled).
        runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, keepalive_timeout=self.limits.idle_timeout
        )
        await runner.setup()
        ssl_ctx = self.web.tls if self.web is not None else None
        site = web.TCPSite(runner, host, port, ssl_context=ssl_ctx, backlog=1024, reuse_address=True)
        await site.start()
        self.start_probe_threads()
        tasks: set[asyncio.Task[Any]] = set()

        def on_hup() -> None:
            task = loop.create_task(self.reload("SIGHUP"))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, on_hup)
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            loop.add_signal_handler(signal.SIGINT, stop.set)
        address = runner.addresses[0]
        shown_host = f"[{address[0]}]" if ":" in str(address[0]) else address[0]
        on_ready(f"{'https' if ssl_ctx else 'http'}://{shown_host}:{address[1]}")
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            if self.workers is not None:
                await self.workers.close()
            if self.executor is not None:
                self.executor.shutdown(wait=False, cancel_futures=True)


def _note(module: Module, summary: str) -> Any:
    from ..model import CheckResult

    return CheckResult(id="serve.probe", target=module.name, name="probe", status=Status.UNKNOWN, summary=summary)
