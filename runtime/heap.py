"""Hand the heap's freed pages back to the system (glibc's `malloc_trim`).

glibc returns freed memory on its own only from the top of the heap, so a worker's RSS stays
at the high-water mark its busiest moment left (a storm's activities, previews, payloads)
although Python freed it: after 200 incidents, `malloc_trim(0)` gave back 51 MB of an
incident worker's 271 MB, while the objects it still held had grown by 6 MB
(`bench/bench_worker_rss.py --tracemalloc`). Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from functools import cache

logger = logging.getLogger(__name__)

HEAP_RELEASE_INTERVAL_SECONDS = 30.0


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None when the C library has none (musl, macOS)."""
    libc = ctypes.util.find_library("c")
    if libc is None:
        return None
    trim: Callable[[int], int] | None = getattr(ctypes.CDLL(libc), "malloc_trim", None)
    return trim


def release_freed_heap() -> bool:
    """Return the heap's free pages to the system; True if glibc says it released any."""
    trim = _malloc_trim()
    return trim is not None and trim(0) == 1


async def release_freed_heap_every(interval: float = HEAP_RELEASE_INTERVAL_SECONDS) -> None:
    """Release freed heap every `interval` seconds until cancelled.

    On a thread: the trim walks the whole heap (ctypes drops the GIL for it), and the event
    loop keeps polling meanwhile.
    """
    if _malloc_trim() is None:
        logger.info("no malloc_trim in this C library: freed heap is not released early")
        return
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(release_freed_heap)
