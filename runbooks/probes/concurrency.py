"""Run many blocking probes at once, at most *concurrency* at a time, keeping order, within one descriptor budget."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_bounded(
    func: Callable[[T], R],
    items: Iterable[T],
    concurrency: int = 64,
    on_error: Callable[[T, BaseException], R] | None = None,
) -> list[R]:
    """Apply *func* to every item with at most *concurrency* threads; results keep order.

    Each *func* must bound its own time (every probe takes a timeout). When *on_error*
    is given, an exception from one item becomes ``on_error(item, exc)`` instead of
    propagating, so one broken target never hides the others.
    """
    work = list(items)
    if not work:
        return []
    workers = max(1, min(concurrency, len(work)))

    def call(item: T) -> R:
        try:
            return func(item)
        except Exception as exc:
            if on_error is None:
                raise
            return on_error(item, exc)

    if workers == 1:
        return [call(item) for item in work]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="opsbook-probe") as pool:
        return list(pool.map(call, work))


#: Descriptors one probe may hold at once (its socket, a resolver's or a CA file's), and the
#: descriptors kept free for everything else the process opens (suite files, output files, logs).
FDS_PER_PROBE = 2
FD_RESERVE = 32
#: The soft RLIMIT_NOFILE is raised towards the hard limit, up to this, before the budget is set.
FD_SOFT_TARGET = 65536


def _open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # minus the one listdir itself holds
    except OSError:  # not Linux: assume a handful
        return 16


class FdBudget:
    """Open-file descriptors shared by every probe of the process, whatever runs them.

    ``opsbook run`` runs several entries at once, each with its own thread pool; sizing each
    pool from RLIMIT_NOFILE alone let four ``winrm check`` entries of 100 hosts open more sockets
    together than ``ulimit -n 256`` allows ("Too many open files" on 41 hosts). Every probe takes
    its descriptors from this one budget and waits for them when the process is at its limit.
    The limit is read (and the soft limit raised towards the hard one) on first use.
    """

    def __init__(self, capacity: int | None = None) -> None:
        self._fixed = capacity
        self._capacity: int | None = None
        self._used = 0
        self._cond = threading.Condition()

    @property
    def capacity(self) -> int:
        """Descriptors probes may hold at once."""
        if self._capacity is None:
            self._capacity = self._fixed if self._fixed is not None else self._from_rlimit()
        return self._capacity

    @staticmethod
    def _from_rlimit() -> int:
        try:
            import resource
        except ImportError:  # pragma: no cover - not on POSIX
            return 1 << 20
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < FD_SOFT_TARGET:
            target = FD_SOFT_TARGET if hard == resource.RLIM_INFINITY else min(FD_SOFT_TARGET, hard)
            if target > soft:
                with contextlib.suppress(ValueError, OSError):
                    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                    soft = target
        if soft == resource.RLIM_INFINITY:
            return 1 << 20
        return max(FDS_PER_PROBE, soft - _open_descriptors() - FD_RESERVE)

    @contextlib.contextmanager
    def hold(self, count: int = FDS_PER_PROBE) -> Iterator[None]:
        """Hold *count* descriptors of the budget for the block, waiting while it is spent."""
        need = max(1, min(count, self.capacity))
        with self._cond:
            while self._used + need > self.capacity:
                self._cond.wait()
            self._used += need
        try:
            yield
        finally:
            with self._cond:
                self._used -= need
                self._cond.notify_all()

    @property
    def in_use(self) -> int:
        """Descriptors held right now."""
        return self._used


#: The process's budget: every network probe (TCP, UDP, TLS) holds its descriptors from it.
FD_BUDGET = FdBudget()
