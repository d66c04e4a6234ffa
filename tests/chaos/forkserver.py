"""Start Firebreak workers fast: a parent that imported worker.py once forks each worker.

    python tests/chaos/forkserver.py        # reads "spawn <log path>" lines, answers "<pid>"

Importing worker.py costs about 3-5 s of CPU on a 2-core box (anthropic alone is ~2 s), so
fifty `python worker.py` restarts would spend minutes importing. Like gunicorn's preload,
this parent imports once; every child then runs `worker.main()`, exactly what
`python worker.py` runs, in its own process with its own Temporal connection. The parent
opens no connection and starts no event loop before forking; it also computes the SDK's
default build id once (a hash over every loaded module's code, ~2 s) for its children.

The environment (TEMPORAL_ADDRESS, FIREBREAK_*) is the parent's, read by each child's
`Settings()`. Children are reaped here; killing them is the test's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from temporalio.worker._worker import load_default_build_id

import worker  # the point of this process: import once, fork many

# The SDK's default build id hashes the code of every loaded module (about 2 s here); it is
# memoized per process, so compute it once for all children.
load_default_build_id()


def _reap(_signum: int, _frame: FrameType | None) -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _child(log_path: str) -> None:
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        code = asyncio.run(worker.main())
    except BaseException:  # report anything, then leave without the parent's cleanup
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> int:
    signal.signal(signal.SIGCHLD, _reap)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "exit" or not command:
            break
        if command != "spawn":
            print(f"error unknown command {command!r}", flush=True)
            continue
        pid = os.fork()
        if pid == 0:
            _child(argument)
        print(pid, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
