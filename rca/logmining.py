"""Log lines -> per-window, per-service Drain templates (`rca.signals.LogStat`).

Runtime and tooling share this: the live log sources (Loki, OpenSearch) and the dataset
converter both mine here. Drain (the `drain3` library) learns templates from the normal
window; in the incident a line that matches no known template gets a new one, which is what
makes it new. Ids, numbers, times and addresses are masked first, as Drain3's examples do,
so one log statement does not split into many templates. Log text is data: it is only
clustered and counted, never interpreted.

Lines that carry a trace id also give *pairs*: within one trace, each of a service's lines
and the service's next line (`END` after its last). Per-window counts lose the order of
events inside a request; a pair keeps the step that matters ("after line A the code
reached line B") in a row per window, service and (A, B), however many requests there are.
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from collections.abc import Iterable

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

from models.rca import LogLine
from rca.signals import END, LogPairStat, LogStat

WINDOW_SECONDS = 30
MAX_LINE = 600
MASKS = [
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "UUID"),
    (r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}:\d{2}(\.\d+)?Z?)?", "DATE"),
    (r"\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b", "IP"),
    (r"\b[0-9a-fA-F]{16,}\b", "HEX"),
    (r"(?<![\w#])[-+]?\d+(\.\d+)?\b", "NUM"),
]
_LEVEL = re.compile(r"\b(ERROR|WARN(?:ING)?|INFO|DEBUG|TRACE|FATAL|SEVERE)\b", re.IGNORECASE)
_CLOCK = re.compile(r"^\d{1,2}:\d{2}:\d{2}(\.\d+)?\s*")


def level_of(text: str) -> str:
    found = _LEVEL.search(text[:120])
    if not found:
        return "error" if "exception" in text.lower()[:200] else "info"
    word = found.group(1).upper()
    if word in ("ERROR", "FATAL", "SEVERE"):
        return "error"
    return "warn" if word.startswith("WARN") else "info"


class LogMiner:
    """A Drain template miner trained on normal lines; counts lines per window and template."""

    def __init__(self) -> None:
        config = TemplateMinerConfig()
        config.drain_sim_th = 0.5
        config.drain_depth = 4
        config.masking_instructions = [MaskingInstruction(pattern, name) for pattern, name in MASKS]
        config.profiling_enabled = False
        self._miner = TemplateMiner(config=config)

    def snapshot(self) -> object:
        """The learned templates, to restore before mining another incident."""
        return copy.deepcopy(self._miner.drain)

    def restore(self, state: object) -> None:
        self._miner.drain = copy.deepcopy(state)

    def count(
        self, lines: Iterable[LogLine], *, learn: bool, window_seconds: int = WINDOW_SECONDS
    ) -> list[LogStat]:
        return self.mine(lines, learn=learn, window_seconds=window_seconds)[0]

    def mine(
        self, lines: Iterable[LogLine], *, learn: bool, window_seconds: int = WINDOW_SECONDS
    ) -> tuple[list[LogStat], list[LogPairStat]]:
        """Lines per window, service and template; and, for lines with a trace id, the pairs."""
        counts: dict[tuple[int, str, int, str], int] = defaultdict(int)
        # (trace, service) -> (timestamp, template) of each of its lines, to pair in time order
        in_trace: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
        for line in lines:
            # The leading clock is in every line and would split templates.
            text = _CLOCK.sub("", line.text.strip())[:MAX_LINE]
            if not text:
                continue
            if learn:
                cluster_id = self._miner.add_log_message(text)["cluster_id"]
            else:
                match = self._miner.match(text)
                cluster_id = match.cluster_id if match else self._miner.add_log_message(text)["cluster_id"]
            window = int(line.timestamp // window_seconds * window_seconds)
            counts[(window, line.service, int(cluster_id), level_of(text))] += 1
            if line.trace_id:
                in_trace[(line.trace_id, line.service)].append((line.timestamp, int(cluster_id)))
        templates = {c.cluster_id: c.get_template() for c in self._miner.drain.clusters}
        stats = [
            LogStat(float(w), s, str(t), lvl, n, templates.get(t, "")[:300])
            for (w, s, t, lvl), n in sorted(counts.items())
        ]
        pairs: dict[tuple[int, str, str, str], int] = defaultdict(int)
        for (_, service), events in in_trace.items():
            events.sort()
            nexts = [str(t) for _, t in events[1:]] + [END]
            for (ts, first), then in zip(events, nexts, strict=True):
                pairs[(int(ts // window_seconds * window_seconds), service, str(first), then)] += 1
        return stats, [LogPairStat(float(w), s, a, b, n) for (w, s, a, b), n in sorted(pairs.items())]


def mine_logs(
    normal: Iterable[LogLine], incident: Iterable[LogLine]
) -> tuple[list[LogStat], list[LogPairStat]]:
    """Train on the normal lines, then count both windows' lines by template, and their pairs."""
    miner = LogMiner()
    base, base_pairs = miner.mine(normal, learn=True)
    during, during_pairs = miner.mine(incident, learn=False)
    return base + during, base_pairs + during_pairs
