"""Runs worker.py with a memory probe: bench_worker_rss's `--tracemalloc`.

    python -X tracemalloc=1 bench/worker_probe.py <dump-dir> worker.py --role incident

SIGUSR1 dumps a tracemalloc snapshot to <dump-dir>/snapshot-<n>.pickle and then its RSS to
<dump-dir>/snapshot-<n>.rss; SIGUSR2 calls glibc's malloc_trim(0) and writes the RSS before
and after to <dump-dir>/trim.rss (how much of the RSS is heap the process freed but kept).
Both run on the main thread between bytecodes, as Python signal handlers do, so the worker's
event loop is paused while they work. A diagnostic, not how the worker runs.
"""

from __future__ import annotations

import ctypes
import runpy
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType


def rss_kb() -> int:
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0])


def main() -> None:
    dump_dir, worker_py, *worker_args = sys.argv[1:]
    dumps = Path(dump_dir)
    taken = 0

    def snapshot(signum: int, frame: FrameType | None) -> None:
        nonlocal taken
        taken += 1
        tracemalloc.take_snapshot().dump(str(dumps / f"snapshot-{taken}.pickle"))
        # Written last: the benchmark waits for this file, so the snapshot is complete.
        (dumps / f"snapshot-{taken}.rss").write_text(str(rss_kb()))

    def trim(signum: int, frame: FrameType | None) -> None:
        before = rss_kb()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        (dumps / "trim.rss").write_text(f"{before} {rss_kb()}")

    signal.signal(signal.SIGUSR1, snapshot)
    signal.signal(signal.SIGUSR2, trim)
    sys.argv = [worker_py, *worker_args]
    sys.path.insert(0, str(Path(worker_py).resolve().parent))
    runpy.run_path(worker_py, run_name="__main__")


if __name__ == "__main__":
    main()
