"""Qdrant local mode across processes: what one process wrote, the next one reads; one holder at a time."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memory.documents import discover, parse_document
from memory.errors import StoreBusy
from memory.service import Memory
from memory.store import QdrantStore, StoreConfig
from runtime.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

WRITER = """
from datetime import UTC, datetime
from memory.service import Memory
from models.memory import ActionOutcome, FeedbackInput, IncidentRecord
from runtime.settings import Settings

memory = Memory.from_settings(Settings())
t = datetime(2025, 11, 5, 9, 0, tzinfo=UTC)
memory.record(IncidentRecord(
    incident_id="incident-prod-cart", run_id="r1", opened_at=t, closed_at=t, outcome="remediated",
    alert_names=["KubePodCrashLooping"], services=["cart"], summary="cart crash-looping",
    actions=[ActionOutcome(action="restart_service", target="cart", status="successful", verified=True)],
))
memory.feedback(FeedbackInput(incident_id="incident-prod-cart", useful=True, by="kim", note="fast", at=t))
print("written")
"""

READER = """
import json
from memory.service import Memory
from models.memory import RetrieveInput
from runtime.settings import Settings

memory = Memory.from_settings(Settings())
query = RetrieveInput(text="cart pods in CrashLoopBackOff", alert_names=["KubePodCrashLooping"])
context = memory.retrieve(query)
print(json.dumps({
    "chunks": memory.knowledge.count(),
    "records": memory.episodes.count(),
    "top_runbook": context.passages[0].doc_id,
    "top_incident": context.incidents[0].id,
    "feedback": [f.note for f in context.incidents[0].record.feedback],
    "restart": memory.track_record(["restart_service"])["restart_service"].model_dump(),
}))
"""

HOLDER = """
import sys, time
from qdrant_client import QdrantClient
client = QdrantClient(path=sys.argv[1])
print("holding", flush=True)
sys.stdin.readline()
client.close()
"""


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=180, env=env, cwd=PROJECT_ROOT
    )
    assert done.returncode == 0, done.stderr
    return done


def test_what_one_process_writes_the_next_one_reads(tmp_path: Path) -> None:
    env = {
        "PATH": "",
        "HOME": str(tmp_path),
        "FIREBREAK_QDRANT_PATH": str(tmp_path / "qdrant"),
        "FIREBREAK_EMBEDDINGS": "sparse",
    }
    run(env, "-m", "cli.main", "kb", "ingest")
    assert run(env, "-c", WRITER).stdout.strip() == "written"
    seen = json.loads(run(env, "-c", READER).stdout)
    chunks = sum(len(parse_document(p).chunks) for p in discover(PROJECT_ROOT / "knowledge"))
    assert seen["chunks"] == chunks and seen["records"] == 1
    assert seen["top_runbook"] == "runbook:service-down"
    assert seen["top_incident"] == "incident-prod-cart@r1"
    assert seen["feedback"] == ["fast"]
    assert seen["restart"]["successes"] == 1 and seen["restart"]["useful"] == 1
    # And a third process, here, still agrees.
    memory = Memory(QdrantStore(StoreConfig(path=tmp_path / "qdrant")), None)
    assert memory.knowledge.count() == chunks
    assert memory.episodes.get("incident-prod-cart").feedback[0].by == "kim"


def test_local_storage_admits_one_process_at_a_time_and_the_others_wait(tmp_path: Path) -> None:
    path = tmp_path / "qdrant"
    Memory(QdrantStore(StoreConfig(path=path)), None).episodes.count()  # create it
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdin is not None
            assert holder.stdout.readline().strip() == "holding"
            impatient = Memory(QdrantStore(StoreConfig(path=path, lock_timeout=0.5)), None)
            with pytest.raises(StoreBusy, match="held by another process"):
                impatient.episodes.count()
            # Release the folder; a patient caller gets it once the holder lets go.
            holder.stdin.write("\n")
            holder.stdin.flush()
            patient = Memory(QdrantStore(StoreConfig(path=path, lock_timeout=60)), None)
            assert patient.episodes.count() == 0
            assert holder.wait(timeout=30) == 0
        finally:
            if holder.poll() is None:
                holder.kill()
