"""Model calls on several cores at once, results in input order."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int = 1,
                ahead: int = 2) -> Iterator[tuple[T, R]]:
    """Yield ``(item, fn(item))`` in the order of ``items``, with up to ``workers`` calls of
    ``fn`` running at once in threads.

    Meant for ONNX Runtime calls, which release the GIL: with single-threaded sessions, one call
    per core on different frames or faces does more work per second than one call at a time
    spread over the cores, for models as small as SCRFD-500M or a batch-1 recognizer, whose
    layers are too small to split well (measured on 2 cores: SCRFD-500M at 640x384 11.4-11.9 ms
    per frame with 2 intra-op threads, 10.1-10.3 ms with two 1-thread calls at once; see
    ``resources.models.session_options``).

    Own code because ``concurrent.futures.Executor.map`` submits every item before it yields the
    first result, which for an episode's frames would hold the whole decoded video in memory:
    here at most ``workers * ahead`` items are in flight, so memory stays flat in the number of
    items. ``workers <= 1`` calls ``fn`` on the caller's thread, one item at a time.

    Raises:
        Whatever ``fn`` raises, when its result is reached (items before it are yielded first).
    """
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    limit = workers * max(1, ahead)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="model-call") as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append((item, pool.submit(fn, item)))
                while len(pending) >= limit:
                    item_done, future = pending.popleft()
                    yield item_done, future.result()
            while pending:
                item_done, future = pending.popleft()
                yield item_done, future.result()
        finally:
            for _, future in pending:  # the consumer stopped early, or fn raised
                future.cancel()
