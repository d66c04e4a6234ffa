"""Check-mode previews in a storm: same-playbook previews share one Ansible run, and runs are capped.

A storm opens many incidents at once and each previews its plan in check mode (the approval
preview, shadow mode). One ansible-playbook process per preview starves a small worker, so:

- previews of the same playbook (with the same shared values) that arrive within
  `gather_seconds` of the first are one Ansible run over an inventory of one local host per
  preview, forks = the batch's size capped at `max_forks`. A batch is run early when it holds
  `max_batch_hosts`; while it waits for a free slot, later previews still join it.
- at most `max_concurrent_runs` such runs go at once per worker. Real runs and rollbacks never
  come here (activities/remediation.py runs them one per request, at once).

Each preview is its own host: its values are that host's unsafe host_vars, its events its
own progress, its result that host's (integrations/ansible.py `run_check_batch`). A preview's
values are checked before it joins a batch, so a value Ansible cannot take refuses that
preview alone. Admission is not this module's business: the activity verifies each request's
admission before it gets here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from integrations.ansible import PlaybookProgress, PlaybookRunner, unsafe_vars_yaml
from runtime.settings import (
    PREVIEW_GATHER_SECONDS,
    PREVIEW_MAX_BATCH_HOSTS,
    PREVIEW_MAX_CONCURRENT_RUNS,
    PREVIEW_MAX_FORKS,
    Settings,
)


@dataclass(frozen=True)
class PreviewLimits:
    """How previews are gathered and capped (the `preview_*` settings)."""

    max_concurrent_runs: int = PREVIEW_MAX_CONCURRENT_RUNS
    gather_seconds: float = PREVIEW_GATHER_SECONDS
    max_batch_hosts: int = PREVIEW_MAX_BATCH_HOSTS
    max_forks: int = PREVIEW_MAX_FORKS

    @classmethod
    def from_settings(cls, settings: Settings) -> PreviewLimits:
        return cls(
            max_concurrent_runs=settings.preview_max_concurrent_runs,
            gather_seconds=settings.preview_gather_seconds,
            max_batch_hosts=settings.preview_max_batch_hosts,
            max_forks=settings.preview_max_forks,
        )


@dataclass
class _Preview:
    host_vars: dict[str, Any]
    progress: PlaybookProgress
    result: asyncio.Future[tuple[str, bool]]


@dataclass
class _Batch:
    playbook: str
    shared_vars: dict[str, Any]
    previews: list[_Preview] = field(default_factory=list)
    full: asyncio.Event = field(default_factory=asyncio.Event)
    started: bool = False


class PreviewBatcher:
    """Gathers check-mode previews into shared Ansible runs, at most N at once (one per worker)."""

    def __init__(self, runner: PlaybookRunner, limits: PreviewLimits) -> None:
        self._runner = runner
        self._limits = limits
        self._slots = asyncio.Semaphore(limits.max_concurrent_runs)
        self._open: dict[tuple[str, str], _Batch] = {}
        self._flushes: set[asyncio.Task[None]] = set()  # held so they are not collected mid-flight
        # Shared runs going now, and the most there ever were: benches and tests read these.
        self.running = 0
        self.max_running = 0

    async def preview(
        self,
        playbook: str,
        shared_vars: Mapping[str, Any],
        host_vars: Mapping[str, Any],
        progress: PlaybookProgress,
    ) -> tuple[str, bool]:
        """Preview `playbook` in check mode with this request's own `host_vars`; (status, changed).

        `shared_vars` must be the same for every request that may share the run (paths, not
        anything of the request's): previews join only a batch with equal shared values.
        Raises CatalogError (this request only) when a value cannot be handed to Ansible,
        PlaybookError when the shared run could not run at all.
        """
        unsafe_vars_yaml(host_vars)
        key = (playbook, unsafe_vars_yaml(shared_vars))
        batch = self._open.get(key)
        if batch is None:
            batch = _Batch(playbook, dict(shared_vars))
            self._open[key] = batch
            flush = asyncio.create_task(self._flush(key, batch))
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)
        preview = _Preview(dict(host_vars), progress, asyncio.get_running_loop().create_future())
        batch.previews.append(preview)
        if len(batch.previews) >= self._limits.max_batch_hosts:
            self._close(key, batch)
        try:
            return await asyncio.shield(preview.result)
        except asyncio.CancelledError:
            # A cancelled preview leaves its batch; a run under way stops only when all its
            # previews are cancelled (the others still want their results).
            progress.cancel.set()
            preview.result.cancel()
            if not batch.started:
                batch.previews.remove(preview)
            raise

    def _close(self, key: tuple[str, str], batch: _Batch) -> None:
        """No more previews join `batch`: it runs as soon as it has a slot."""
        if self._open.get(key) is batch:
            del self._open[key]
        batch.full.set()

    async def _flush(self, key: tuple[str, str], batch: _Batch) -> None:
        with contextlib.suppress(TimeoutError):  # the window is over: run what has gathered
            await asyncio.wait_for(batch.full.wait(), self._limits.gather_seconds)
        async with self._slots:
            self._close(key, batch)
            batch.started = True
            previews = list(batch.previews)
            if not previews:
                return
            hosts = {f"preview-{index}": preview for index, preview in enumerate(previews)}
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            try:
                results = await asyncio.to_thread(
                    self._runner.run_check_batch,
                    batch.playbook,
                    batch.shared_vars,
                    {host: preview.host_vars for host, preview in hosts.items()},
                    {host: preview.progress for host, preview in hosts.items()},
                    lambda: all(preview.progress.cancel.is_set() for preview in previews),
                    min(len(previews), self._limits.max_forks),
                )
            except Exception as exc:  # every preview of the run gets the run's error
                for preview in previews:
                    if not preview.result.done():
                        preview.result.set_exception(exc)
            else:
                for host, preview in hosts.items():
                    if not preview.result.done():
                        preview.result.set_result(results[host])
            finally:
                self.running -= 1
