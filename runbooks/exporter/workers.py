"""Probe worker processes: the probes run outside the HTTP server's interpreter.

One Python process runs Python code on one core at a time. A probe spends most of its CPU in
Python (certificate parsing, results, rendering) and in OpenSSL, which the interpreter lock
interleaves with it, so with every probe in the server's own threads the exporter used one
core and its event loop waited behind hundreds of probe threads for its turn: answers came
late and a burst of probes queued behind each other.

With ``--probe-processes N`` the server keeps the HTTP side (admission, deadlines, rendering)
and N worker processes run the probes, each with its share of the probe threads. A worker is
``python -m opsbook.cli.serve_worker``: it reads the module file's text from the server (the
very text the server validated), binds the modules as the server does, and answers each probe
with its finished, scrubbed report.

The pipes carry pickles between the server and the workers it started itself (private pipes,
same user): nothing else can write to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import struct
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from ..model import Report
from ..secrets import Scrubber
from ..suite.runner import failure_result, scrub_result
from .modules import Module, ModuleConfig, load_module_config

log = logging.getLogger("opsbook.serve")

_HEADER = struct.Struct("!I")
#: The largest message either side accepts (a report with its details is a few kilobytes).
MAX_MESSAGE = 64 << 20
#: How long a new worker may take to import, load the module file and start its threads.
START_TIMEOUT = 60.0
#: The pause before replacing a worker that died within five times this long of its start.
RESPAWN_PAUSE = 1.0


class WorkerHooks(Protocol):
    """What a worker needs of the CLI layer: the binding of modules to the check commands."""

    def validate(self, config: ModuleConfig) -> None:
        """Bind every module with a placeholder target: raise SuiteError(s) with file:line."""

    def prepare(
        self, config: ModuleConfig, module: Module, target: str | None, timeout: float, pin: str | None = None
    ) -> tuple[Callable[[float], Report], Scrubber]:
        """The check call for *module* on *target* and the scrubber of the config's secrets.

        The call takes the network timeout the probe may use (at most *timeout*): what is
        left of the deadline when a probe slot came free, times the server's TIMEOUT_SHARE.
        *pin* is the address the allow list checked for a target name: the probe connects
        there (``--resolve``) instead of resolving the name again.
        """

    def scrubber(self, config: ModuleConfig) -> Scrubber:
        """What masks the secrets *config* resolved."""


@dataclass(frozen=True)
class ProbeCall:
    """One probe, as a worker runs it: which modules, which module, on what, for how long."""

    #: The module file (re)load the request was admitted under.
    generation: int
    module: str
    target: str | None
    #: The address the allow list checked for the target name (see WorkerHooks.prepare).
    pin: str | None
    timeout: float


def finished_report(module: Module, call: Callable[[float], Report], scrub: Scrubber, timeout: float) -> Report:
    """Run *call* with *timeout* and return its report, scrubbed, never raising.

    A crash or bad input found at run time becomes the one UNKNOWN result that stands for the
    module; a report without results gets one too.
    """
    started = time.perf_counter()
    try:
        report = call(timeout)
    except (Exception, SystemExit) as exc:
        report = Report(command=module.entry.command)
        report.checks = [failure_result(module.entry, exc, scrub, time.perf_counter() - started)]
        return report
    if not report.checks:
        empty = RuntimeError("the check reported no results")
        report.checks = [failure_result(module.entry, empty, scrub, time.perf_counter() - started)]
    for check in report.checks:
        scrub_result(check, scrub)
    return report


def start_threads(pool: ThreadPoolExecutor, count: int) -> None:
    """Start *pool*'s *count* threads now, before the first probe.

    The pool would start a thread on each submit while none is idle, and starting a thread
    makes the caller wait until the new thread runs: under load (hundreds started at once on
    a busy machine) that stalled the caller for seconds and every deadline fired late.
    """
    barrier = threading.Barrier(count + 1)
    for _ in range(count):  # no thread is idle until all have met: each submit starts one
        pool.submit(barrier.wait, 30)
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(30)


def _frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _size(header: bytes) -> int:
    """The length a frame's header announces (ValueError when it is over :data:`MAX_MESSAGE`)."""
    (size,) = _HEADER.unpack(header)
    if size > MAX_MESSAGE:
        raise ValueError(f"message of {size} bytes is over the limit")
    return int(size)


def _read_frame(stream: IO[bytes]) -> Any:
    """The next message on a blocking *stream*, or None at its end."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    size = _size(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)  # noqa: S301 - from the server that started this process (see the module doc)


# ---------------------------------------------------------------------------- the worker side


def worker_main(hooks: WorkerHooks, threads: int) -> None:
    """Serve probes on stdin/stdout until the server closes stdin (then exit at once).

    Messages in: ``("config", generation, path, text)`` and ``("probe", job, ProbeCall)``.
    Out: ``("config", generation, error)`` (error "" when the modules bound) and
    ``("done", job, report)``. Anything the checks print goes to stderr: stdout
    carries only the protocol.
    """
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = os.fdopen(os.dup(0), "rb")
    write_lock = threading.Lock()
    configs: dict[int, ModuleConfig] = {}
    pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="opsbook-probe")
    start_threads(pool, max(1, threads))

    def send(message: object) -> None:
        data = _frame(message)
        with write_lock:
            out.write(data)
            out.flush()

    def run(job: int, probe: ProbeCall) -> None:
        config = configs.get(probe.generation) or configs[max(configs)]
        module = config.modules.get(probe.module)
        if module is None:
            send(("done", job, _missing(probe.module)))
            return
        timeout = probe.timeout
        try:
            call, scrub = hooks.prepare(config, module, probe.target, timeout, probe.pin)
        except Exception as exc:  # the server bound it already: only a file changed under us gets here
            report = Report(command=module.entry.command)
            report.checks = [failure_result(module.entry, exc, hooks.scrubber(config))]
            send(("done", job, report))
            return
        report = finished_report(module, call, scrub, timeout)
        try:
            send(("done", job, report))
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
            # the server must hear of every probe, or its slot would never come back
            plain = Report(command=module.entry.command)
            plain.checks = [failure_result(module.entry, exc, scrub)]
            send(("done", job, plain))

    while True:
        try:
            message = _read_frame(inp)
        except (OSError, ValueError, pickle.UnpicklingError):
            message = None
        if message is None:  # the server went away: in-flight probes are of no use to anyone
            sys.stderr.flush()
            os._exit(0)
        if message[0] == "config":
            _, generation, path, text = message
            try:
                config = load_module_config(path, text=text)
                hooks.validate(config)
            except Exception as exc:
                send(("config", generation, f"{exc.__class__.__name__}: {exc}"))
                continue
            config.generation = generation
            configs[generation] = config
            for old in [g for g in configs if g < generation - 2]:
                del configs[old]  # a request started before the last reloads may still name them
            send(("config", generation, ""))
        elif message[0] == "probe":
            _, job, probe = message
            if configs:
                pool.submit(run, job, probe)
            else:  # never sent by the server (it waits for the modules); answered all the same
                send(("done", job, _missing(probe.module)))


def _missing(name: str) -> Report:
    from ..model import CheckResult, Status

    report = Report(command="serve")
    summary = f"module {name!r} is not in the module file this probe worker has (reloaded meanwhile?)"
    report.checks = [CheckResult(id="serve.probe", target=name, name="probe", status=Status.UNKNOWN, summary=summary)]
    return report


# ---------------------------------------------------------------------------- the server side


@dataclass
class _Worker:
    proc: asyncio.subprocess.Process
    pending: dict[int, asyncio.Future[Report]] = field(default_factory=dict)
    configured: dict[int, asyncio.Future[str]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None
    #: Probes handed to this worker so far.
    probes: int = 0
    #: A replacement is being started (recycling).
    replacing: bool = False
    #: Replaced: it gets no new probe, and ends once those it has are done.
    retired: bool = False
    started: float = field(default_factory=time.monotonic)


@dataclass
class _Job:
    """A probe waiting for a worker: its future and what the worker needs to run it."""

    future: asyncio.Future[Report]
    generation: int
    module: str
    target: str | None
    #: The address the allow list checked for the target name (see WorkerHooks.prepare).
    pin: str | None
    #: When its timeout ends (the event loop's clock).
    answer_by: float


class ProbeProcesses:
    """The server's side: start the workers, hand out probes, replace a worker that died or is due.

    A worker is replaced after *recycle_after* probes (0: never). Its memory outside Python's
    own (OpenSSL's, the C allocator's arenas shared by a hundred threads) grows slowly with
    every handshake and is never given back while it lives; a fresh process starts from its
    baseline. The replacement is started and loaded first; only then does the old worker stop
    getting probes, and it ends once those it has are answered: no capacity is lost meanwhile.
    """

    def __init__(
        self,
        count: int,
        threads: int,
        command: list[str],
        recycle_after: int = 0,
        on_replaced: Callable[[str], None] | None = None,
    ) -> None:
        """*on_replaced* is told why each worker was replaced (``recycled``, ``died``)."""
        self.count = count
        self.threads = threads
        self.command = command
        self.recycle_after = recycle_after
        self.on_replaced = on_replaced or (lambda reason: None)
        self.workers: list[_Worker] = []
        self._job = 0
        self._config: ModuleConfig | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._backlog: list[_Job] = []

    async def start(self, config: ModuleConfig) -> None:
        """Start the workers with *config* and wait until each has bound its modules.

        Raises RuntimeError when a worker cannot start or refuses the configuration.
        """
        self._config = config
        workers = await asyncio.gather(*(self._spawn() for _ in range(self.count)))
        self.workers = list(workers)  # (so that close() ends them if one fails)
        problems = await asyncio.gather(*(self._configure(w, config) for w in self.workers))
        failed = [p for p in problems if p]
        if failed:
            raise RuntimeError(f"a probe worker process could not load the modules: {failed[0]}")

    async def _spawn(self) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            *self.command,
            "--threads",
            str(self.threads),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=MAX_MESSAGE + _HEADER.size,
        )
        worker = _Worker(proc)
        worker.reader = asyncio.get_running_loop().create_task(self._read(worker))
        return worker

    async def _configure(self, worker: _Worker, config: ModuleConfig) -> str:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()
        worker.configured[config.generation] = done
        self._send(worker, ("config", config.generation, config.path, config.text))
        try:
            return await asyncio.wait_for(done, START_TIMEOUT)
        except TimeoutError:
            return f"no answer within {START_TIMEOUT:g}s"
        finally:
            worker.configured.pop(config.generation, None)

    async def reconfigure(self, config: ModuleConfig) -> None:
        """Hand a reloaded configuration to every worker (a worker that refuses it is logged)."""
        self._config = config
        problems = await asyncio.gather(*(self._configure(w, config) for w in list(self.workers)))
        for problem in filter(None, problems):
            log.error("a probe worker process kept the previous modules: %s", problem)

    def submit(
        self, config: ModuleConfig, module: Module, target: str | None, timeout: float, pin: str | None = None
    ) -> asyncio.Future[Report]:
        """Run the probe in the least busy worker; the future holds its finished report.

        The caller bounds the probes in flight to ``count * threads``, so the least busy
        worker always has an idle thread. While no worker runs (the only one died and its
        replacement is starting), the probe waits for the replacement, within *timeout*.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Report] = loop.create_future()
        job = _Job(future, config.generation, module.name, target, pin, loop.time() + timeout)
        worker = self._least_busy()
        if worker is None:
            if self._closing:
                future.set_exception(RuntimeError("the exporter is stopping"))
            else:
                self._backlog.append(job)
        else:
            self._dispatch(worker, job)
        return future

    def _least_busy(self) -> _Worker | None:
        live = [
            w
            for w in self.workers
            if not w.retired and w.proc.returncode is None and w.reader is not None and not w.reader.done()
        ]
        return min(live, key=lambda w: len(w.pending)) if live else None

    def _dispatch(self, worker: _Worker, job: _Job) -> None:
        timeout = job.answer_by - asyncio.get_running_loop().time()
        if timeout <= 0.05:
            job.future.set_exception(RuntimeError("no probe worker process was running (one is being started)"))
            return
        self._job += 1
        worker.pending[self._job] = job.future
        worker.probes += 1
        probe = ProbeCall(job.generation, job.module, job.target, job.pin, timeout)
        self._send(worker, ("probe", self._job, probe))
        if self.recycle_after and worker.probes >= self.recycle_after and not worker.replacing:
            worker.replacing = True
            self._background(self._recycle(worker))

    def _add(self, worker: _Worker) -> None:
        """Put a started, loaded *worker* to work, beginning with the probes waiting for one."""
        self.workers.append(worker)
        waiting, self._backlog = self._backlog, []
        for job in waiting:
            if not job.future.done():
                self._dispatch(self._least_busy() or worker, job)

    def _background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _recycle(self, old: _Worker) -> None:
        """Start and load *old*'s replacement, then retire *old*: it ends when its probes are done."""
        try:
            new = await self._spawn()
        except OSError as exc:
            log.error("cannot start a probe worker process to replace %d: %s", old.proc.pid, exc)
            old.replacing = False
            return
        problem = await self._configure(new, self._config) if self._config is not None else ""
        if problem or self._closing or old not in self.workers:  # (or it died meanwhile, and was replaced)
            if problem:
                log.error("the probe worker process replacing %d could not load the modules: %s", old.proc.pid, problem)
            old.replacing = False
            new.retired = True
            self._end(new)
            return
        self._add(new)
        old.retired = True
        self.on_replaced("recycled")
        while old.pending and old.proc.returncode is None:
            await asyncio.sleep(0.05)
        self._end(old)

    def _end(self, worker: _Worker) -> None:
        """Close *worker*'s stdin: it exits at once (its reader then forgets it)."""
        if worker.proc.stdin is not None and not worker.proc.stdin.is_closing():
            worker.proc.stdin.close()

    def _send(self, worker: _Worker, message: object) -> None:
        stdin = worker.proc.stdin
        if stdin is None or stdin.is_closing():
            return  # the reader sees the worker's end and fails what it had
        stdin.write(_frame(message))

    async def _read(self, worker: _Worker) -> None:
        stdout = worker.proc.stdout
        assert stdout is not None
        reason = "it exited"
        try:
            while True:
                header = await stdout.readexactly(_HEADER.size)
                message = pickle.loads(await stdout.readexactly(_size(header)))  # noqa: S301 - our own worker
                if message[0] == "done":
                    future = worker.pending.pop(message[1], None)
                    if future is not None and not future.done():
                        future.set_result(message[2])
                elif message[0] == "config":
                    waiting = worker.configured.get(message[1])
                    if waiting is not None and not waiting.done():
                        waiting.set_result(message[2])
        except asyncio.IncompleteReadError:
            pass
        except (ValueError, IndexError, TypeError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
            reason = f"bad message: {exc}"
        await self._lost(worker, reason)

    async def _lost(self, worker: _Worker, reason: str) -> None:
        """Fail what *worker* had in flight (their slots come back) and start another in its place."""
        with contextlib.suppress(ProcessLookupError):
            worker.proc.kill()
        await worker.proc.wait()
        futures: list[asyncio.Future[Any]] = [*worker.pending.values(), *worker.configured.values()]
        for future in futures:
            if not future.done():
                future.set_exception(RuntimeError(f"the probe worker process ended ({reason})"))
        worker.pending.clear()
        if worker.retired and worker in self.workers:
            self.workers.remove(worker)
        if self._closing or worker.retired or worker not in self.workers:
            return
        self.on_replaced("died")
        log.error(
            "probe worker process %d ended (%s, exit %s): starting another",
            worker.proc.pid,
            reason,
            worker.proc.returncode,
        )
        self.workers.remove(worker)
        if time.monotonic() - worker.started < RESPAWN_PAUSE * 5:
            await asyncio.sleep(RESPAWN_PAUSE)  # one that dies at once must not be restarted in a tight loop
        try:
            replacement = await self._spawn()
        except OSError as exc:
            log.error("cannot start a probe worker process: %s", exc)
            return
        problem = await self._configure(replacement, self._config) if self._config is not None else ""
        if problem:
            log.error("the new probe worker process could not load the modules: %s", problem)
        self._add(replacement)  # only now: a probe never reaches a worker without modules

    async def close(self) -> None:
        """Close the workers' stdin (they exit at once); kill any that lingers."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for job in self._backlog:
            if not job.future.done():
                job.future.set_exception(RuntimeError("the exporter is stopping"))
        for worker in self.workers:
            if worker.proc.stdin is not None:
                worker.proc.stdin.close()
        for worker in self.workers:
            try:
                await asyncio.wait_for(worker.proc.wait(), 2)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.kill()
            if worker.reader is not None:
                worker.reader.cancel()
