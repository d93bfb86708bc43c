"""Run many blocking probes at once, at most *concurrency* at a time, keeping order."""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
