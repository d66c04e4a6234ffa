"""A storm's check-mode previews: shared Ansible runs (capped) vs one run per preview.

    .venv/bin/python bench/bench_previews.py [--counts 10,50,100] [--cap 2] [--gather 0.25]

K previews of `restart_service` for K different services, all asked for at once, as K
incidents' approval previews arrive at one worker in a storm:

- shared: integrations/previews.py as the worker runs it (`FIREBREAK_PREVIEW_*` defaults
  unless given): same-playbook previews gathered into one ansible-runner run of many local
  hosts, at most `--cap` runs at once;
- one each: what the worker did before, one ansible-runner run per preview in
  `asyncio.to_thread` (so as many at once as the event loop's default thread pool allows).

Printed per K and mode: wall time until the last preview's result, CPU (this process and
every Ansible process it waited for), Ansible runs started, and the results that were not a
successful "would change". Numbers, not pass/fail; the two modes alternate per K.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_common import report  # noqa: E402

from integrations.ansible import PlaybookProgress, PlaybookRunner  # noqa: E402
from integrations.previews import PreviewBatcher, PreviewLimits  # noqa: E402
from runtime.settings import Settings  # noqa: E402

PLAYBOOK = "restart_service.yml"


def cpu_seconds() -> float:
    """User + system CPU of this process and of the children it has waited for (Ansible's)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def request_vars(index: int) -> dict[str, Any]:
    """One preview's own values, as activities/remediation.py builds them."""
    key = secrets.token_hex(16)
    return {
        "service": f"bench-{index}-{secrets.token_hex(3)}",
        "reason": "bench",
        "incident_id": f"incident-bench-{index}",
        "idempotency_key": key,
        "firebreak_execution": f"attempt 1 run {key[:12]}",
    }


async def shared(runner: PlaybookRunner, limits: PreviewLimits, common: dict[str, Any], k: int) -> list[str]:
    batcher = PreviewBatcher(runner, limits)
    results = await asyncio.gather(
        *(batcher.preview(PLAYBOOK, common, request_vars(i), PlaybookProgress()) for i in range(k))
    )
    return [f"{status}{'' if changed else ' unchanged'}" for status, changed in results]


async def one_each(runner: PlaybookRunner, common: dict[str, Any], k: int) -> list[str]:
    results = await asyncio.gather(
        *(
            asyncio.to_thread(
                runner.run, PLAYBOOK, {**common, **request_vars(i)}, None, True, PlaybookProgress()
            )
            for i in range(k)
        )
    )
    return [f"{status}{'' if changed else ' unchanged'}" for status, changed in results]


async def measure(mode: str, k: int, limits: PreviewLimits, targets: Path) -> dict[str, object]:
    runner = PlaybookRunner(ROOT / "playbooks")
    common = {"target_state_dir": str(targets), "vault_addr": "http://127.0.0.1:1", "vault_secret_path": "x"}
    cpu, started = cpu_seconds(), time.perf_counter()
    outcomes = await (shared(runner, limits, common, k) if mode == "shared" else one_each(runner, common, k))
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return {
        f"{mode} K={k} wall s": round(wall, 2),
        f"{mode} K={k} cpu s": round(cpu, 1),
        f"{mode} K={k} ansible runs": runner.runs_started,
        f"{mode} K={k} not a successful change": sum(1 for o in outcomes if o != "successful"),
    }


async def main() -> None:
    defaults = Settings(_env_file=None)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="10,50,100", help="K values, comma-separated")
    parser.add_argument("--cap", type=int, default=defaults.preview_max_concurrent_runs)
    parser.add_argument("--gather", type=float, default=defaults.preview_gather_seconds)
    parser.add_argument("--batch", type=int, default=defaults.preview_max_batch_hosts)
    parser.add_argument("--forks", type=int, default=defaults.preview_max_forks)
    args = parser.parse_args()
    limits = PreviewLimits(args.cap, args.gather, args.batch, args.forks)
    result: dict[str, object] = {
        "limits": f"cap {limits.max_concurrent_runs}, gather {limits.gather_seconds}s, "
        f"batch {limits.max_batch_hosts}, forks {limits.max_forks}",
    }
    with tempfile.TemporaryDirectory(prefix="bench-previews-") as scratch:
        for k in (int(c) for c in args.counts.split(",")):
            for mode in ("shared", "one each"):
                result.update(await measure(mode, k, limits, Path(scratch)))
            result[f"K={k} wall ratio one each / shared"] = round(
                float(result[f"one each K={k} wall s"]) / float(result[f"shared K={k} wall s"]), 1  # type: ignore[arg-type]
            )
            result[f"K={k} cpu ratio one each / shared"] = round(
                float(result[f"one each K={k} cpu s"]) / float(result[f"shared K={k} cpu s"]), 1  # type: ignore[arg-type]
            )
    report(result)


if __name__ == "__main__":
    asyncio.run(main())
