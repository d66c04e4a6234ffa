"""The knowledge base on Qdrant's real engine (local mode, on disk): retrieval, idempotent ingest, bad files.

Hybrid cases load the MiniLM model from its wheel (once per test process).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory.dense import load_embedder
from memory.documents import discover, parse_document
from memory.errors import SchemaMismatch
from memory.knowledge import KnowledgeBase
from memory.service import Memory
from memory.store import QdrantStore, StoreConfig
from models.alert import Alert, AlertStatus, Severity
from models.memory import RetrieveInput
from policies.catalog import load_catalog
from runtime.settings import PROJECT_ROOT
from tests.conftest import machine_wide_lock

pytestmark = pytest.mark.integration

KNOWLEDGE = PROJECT_ROOT / "knowledge"
ACTIONS = set(load_catalog(PROJECT_ROOT / "playbooks").actions)
# The repository's corpus, counted independently of ingest (the folder may grow).
DOCS = len(discover(KNOWLEDGE))
CHUNKS = sum(len(parse_document(p).chunks) for p in discover(KNOWLEDGE))


def memory_at(path: Path, mode: str) -> Memory:
    embedder = load_embedder("dense") if mode == "hybrid" else None
    return Memory(QdrantStore(StoreConfig(path=path)), embedder)


def seeded_memory(mode: str, factory: pytest.TempPathFactory) -> Memory:
    """The repository's knowledge folder ingested once per mode and test run; each caller gets a copy.

    Dense ingest is the slow part of these tests; copying a store folder is not. Under xdist
    the seed is kept in the run's temporary directory, which every worker shares, so the
    workers ingest once between them instead of once each.
    """
    base = factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    seed = shared / f"seed-{mode}"
    with machine_wide_lock(shared / f"seed-{mode}.lock"):
        seeded = shared / f"seed-{mode}.done"
        if not seeded.exists():
            shutil.rmtree(seed, ignore_errors=True)  # left by a worker that died while seeding
            report = memory_at(seed, mode).knowledge.ingest(KNOWLEDGE, known_actions=ACTIONS)
            assert not report.skipped, report.skipped
            assert report.points > 100
            seeded.touch()
    copy = factory.mktemp(f"store-{mode}")
    shutil.copytree(seed, copy, dirs_exist_ok=True)
    return memory_at(copy, mode)


@pytest.fixture(scope="module", params=["sparse", "hybrid"])
def seeded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Memory]:
    yield seeded_memory(request.param, tmp_path_factory)


def alert(name: str, service: str, summary: str, description: str = "", **labels: str) -> Alert:
    return Alert(
        fingerprint=f"{name}-{service}",
        status=AlertStatus.FIRING,
        name=name,
        service=service,
        severity=Severity.P2,
        labels={"alertname": name, "service": service, **labels},
        annotations={"summary": summary, **({"description": description} if description else {})},
        starts_at=datetime(2025, 11, 1, tzinfo=UTC),
        source="alertmanager",
    )


REALISTIC = [
    (
        alert(
            "KubePodCrashLooping",
            "payments-api",
            "Pod is crash looping.",
            "Pod payments/payments-api-7d9f4 (payments-api) is in waiting state (reason: CrashLoopBackOff).",
        ),
        "runbook:service-down",
    ),
    (
        alert(
            "HighErrorRate", "checkout", "checkout 5xx ratio is 12.5% over 5m", "HTTP 500 from POST /orders"
        ),
        "runbook:high-error-rate",
    ),
    (
        alert("HighRequestLatency", "api-gateway", "p99 latency is 2.4s (threshold 1s)"),
        "runbook:saturation",
    ),
    (
        alert(
            "NodeFilesystemAlmostOutOfSpace",
            "search-indexer",
            "Filesystem has less than 3% space left.",
            "Filesystem on /dev/nvme0n1p1 at 10.0.3.17:9100 has only 2.8% available space left.",
        ),
        "runbook:disk-space",
    ),
    (
        alert(
            "NodeFilesystemFilesFillingUp",
            "web",
            "Filesystem is predicted to run out of inodes within the next 24 hours.",
        ),
        "runbook:inode-exhaustion",
    ),
    (
        alert(
            "KubeContainerOOMKilled",
            "recommender",
            "Container recommender was OOMKilled 4 times in the last hour",
        ),
        "runbook:out-of-memory",
    ),
    (
        alert(
            "KafkaConsumerLagHigh", "orders-consumer", "Consumer group orders-consumer lag is 420k messages"
        ),
        "runbook:queue-backlog",
    ),
    (
        alert("CoreDNSErrorsHigh", "coredns", "CoreDNS is returning SERVFAIL for 18% of requests"),
        "runbook:dns-failures",
    ),
    # Alert names that no runbook lists: the words must carry it.
    (
        alert(
            "CheckoutDBWaits",
            "checkout",
            "HikariPool-1 - Connection is not available, request timed out after 30000ms",
        ),
        "runbook:db-connection-pool",
    ),
    (
        alert("PartnerTLSErrors", "partner-gateway", "x509: certificate has expired or is not yet valid"),
        "runbook:certificate-expiry",
    ),
]


@pytest.mark.parametrize(("firing", "expected"), REALISTIC, ids=[a.name for a, _ in REALISTIC])
def test_realistic_alerts_retrieve_their_runbook_first(seeded: Memory, firing: Alert, expected: str) -> None:
    context = seeded.retrieve(RetrieveInput.from_alerts("incident-test", [firing], incident_limit=0))
    runbooks = [p for p in context.passages if p.kind == "runbook"]
    assert runbooks[0].doc_id == expected, [(p.doc_id, p.score) for p in runbooks]
    top = runbooks[0]
    assert top.id.startswith(f"{expected}#")
    assert top.path == f"knowledge/runbooks/{expected.removeprefix('runbook:')}.md"
    assert top.text and top.title
    assert context.citations[0] == top.id
    assert context.mode == ("hybrid" if seeded.embedder else "sparse")


def test_post_mortems_of_the_same_failure_come_along(seeded: Memory) -> None:
    firing = alert(
        "KubePodCrashLooping",
        "payments-api",
        "payments-api pods crash at start after a ConfigMap change",
        "KeyError: PROVIDER_WEBHOOK_SECRET",
    )
    context = seeded.retrieve(RetrieveInput.from_alerts("incident-test", [firing]))
    postmortems = [p.doc_id for p in context.passages if p.kind == "postmortem"]
    assert postmortems[0] == "postmortem:2025-06-19-payments-crashloop-bad-config"
    kinds = [p.kind for p in context.passages]
    assert kinds == sorted(kinds, key=lambda k: k != "runbook"), "runbooks first, then post-mortems"
    assert len({p.doc_id for p in context.passages}) == len(context.passages), "one passage per document"


def test_payload_filters_by_service_and_alert_name(seeded: Memory) -> None:
    by_service = seeded.knowledge.search(
        "errors and timeouts", services=["coredns"], filter="require", limit=10
    )
    assert by_service and {p.doc_id for p in by_service} <= {
        "runbook:dns-failures",
        "postmortem:2025-10-08-coredns-overload",
    }
    by_alert = seeded.knowledge.search(
        "anything", alert_names=["KubeHpaMaxedOut"], filter="require", limit=10
    )
    assert by_alert and all("KubeHpaMaxedOut" in p.alerts for p in by_alert)
    assert {p.doc_id for p in by_alert} == {
        "runbook:saturation",
        "postmortem:2025-08-27-api-gateway-latency-hpa-maxed",
    }
    # Boost keeps everything reachable but lifts the documents that name the alert.
    plain = seeded.knowledge.search("pods are slow", kinds=["runbook"], filter="off", limit=20)
    boosted = seeded.knowledge.search(
        "pods are slow", alert_names=["KubeHpaMaxedOut"], kinds=["runbook"], filter="boost", limit=20
    )
    assert boosted[0].doc_id == "runbook:saturation"
    assert {p.doc_id for p in plain} >= {p.doc_id for p in boosted[:3]} - {"runbook:saturation"}


def test_reingesting_the_same_files_changes_nothing(seeded: Memory) -> None:
    before = snapshot(seeded.knowledge)
    report = seeded.knowledge.ingest(KNOWLEDGE, known_actions=ACTIONS)
    assert report.added == report.updated == report.deleted == []
    assert len(report.unchanged) == DOCS
    assert report.chunks_written == report.chunks_deleted == 0
    assert snapshot(seeded.knowledge) == before


# --- ingest lifecycle on a copy of the knowledge folder (sparse: the logic is the same) --------


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, root)
    return root


def snapshot(kb: KnowledgeBase) -> dict[str, Any]:
    with kb.store.client() as client:
        points, _ = client.scroll(kb.collection, limit=10_000, with_payload=True, with_vectors=True)
    return {str(p.id): (p.payload, p.vector) for p in points}


def doc_points(kb: KnowledgeBase, doc_id: str) -> list[dict[str, Any]]:
    with kb.store.client() as client:
        points, _ = client.scroll(
            kb.collection,
            scroll_filter=qm.Filter(
                must=[qm.FieldCondition(key="doc_id", match=qm.MatchValue(value=doc_id))]
            ),
            limit=1000,
            with_payload=True,
        )
    return [p.payload or {} for p in points]


def test_changed_file_replaces_its_chunks_and_nothing_else(corpus: Path, tmp_path: Path) -> None:
    kb = memory_at(tmp_path / "q", "sparse").knowledge
    first = kb.ingest(corpus, known_actions=ACTIONS)
    assert len(first.added) == DOCS and first.points == CHUNKS
    before = snapshot(kb)
    old_chunks = doc_points(kb, "runbook:disk-space")
    path = corpus / "runbooks" / "disk-space.md"
    text = path.read_text()
    text = text[: text.index("## Escalate")]  # one section fewer
    text = text.replace("Old container images:", "Zanzibar cache shards and old container images:")
    path.write_text(text)

    report = kb.ingest(corpus, known_actions=ACTIONS)
    assert report.updated == ["runbook:disk-space"] and report.added == report.deleted == []
    assert len(report.unchanged) == DOCS - 1
    new_chunks = doc_points(kb, "runbook:disk-space")
    assert len(new_chunks) == len(old_chunks) - 1
    assert report.chunks_written == len(new_chunks) and report.chunks_deleted == 1
    assert report.points == CHUNKS - 1
    texts = " ".join(str(p["text"]) for p in new_chunks)
    assert "Zanzibar" in texts and "Escalate when the space is used by data" not in texts
    assert {p["content_hash"] for p in new_chunks} != {p["content_hash"] for p in old_chunks}
    # Other documents' points are untouched, byte for byte.
    after = snapshot(kb)
    others = {k: v for k, v in before.items() if v[0]["doc_id"] != "runbook:disk-space"}
    assert {k: after[k] for k in others} == others
    assert kb.search("zanzibar cache shards", limit=1)[0].doc_id == "runbook:disk-space"


def test_deleted_file_leaves_no_orphans_and_one_file_ingest_deletes_nothing(
    corpus: Path, tmp_path: Path
) -> None:
    kb = memory_at(tmp_path / "q", "sparse").knowledge
    kb.ingest(corpus, known_actions=ACTIONS)
    assert len(doc_points(kb, "runbook:clock-skew")) == 5

    # Ingesting a single file never judges the others gone.
    single = kb.ingest(corpus / "runbooks" / "saturation.md", known_actions=ACTIONS)
    assert single.unchanged == ["runbook:saturation"] and single.deleted == [] and single.points == CHUNKS

    (corpus / "runbooks" / "clock-skew.md").unlink()
    report = kb.ingest(corpus, known_actions=ACTIONS)
    assert report.deleted == ["runbook:clock-skew"] and report.chunks_deleted == 5
    assert doc_points(kb, "runbook:clock-skew") == []
    assert report.points == CHUNKS - 5
    assert all(
        p.doc_id != "runbook:clock-skew" for p in kb.search("NodeClockSkewDetected NTP offset", limit=20)
    )


def test_malformed_runbook_is_reported_with_its_path_and_skipped(corpus: Path, tmp_path: Path) -> None:
    kb = memory_at(tmp_path / "q", "sparse").knowledge
    kb.ingest(corpus, known_actions=ACTIONS)
    broken_new = corpus / "runbooks" / "kafka-rebalance.md"
    broken_new.write_text("---\ntitle: Kafka rebalance storms\nalerts: [KafkaRebalance\n---\n# x\nbody\n")
    # A good file that breaks keeps its previous chunks: a typo must not drop a runbook.
    broken_old = corpus / "runbooks" / "redis-memory.md"
    broken_old.write_text(
        broken_old.read_text().replace("actions: [scale_service]", "actions: [flush_redis]")
    )
    (corpus / "runbooks" / "new-one.md").write_text(
        "---\ntitle: Ephemeral storage eviction\nalerts: [KubeletEvictingPods]\n---\n"
        "## Symptoms\nPods evicted for ephemeral-storage pressure.\n"
    )

    report = kb.ingest(corpus, known_actions=ACTIONS)
    skipped = {p.path: p.reason for p in report.skipped}
    assert set(skipped) == {str(broken_new), str(broken_old)}
    assert "front matter is not valid YAML" in skipped[str(broken_new)]
    assert "['flush_redis'] are not in the catalog" in skipped[str(broken_old)]
    assert report.added == ["runbook:new-one"]
    assert report.deleted == []
    assert len(doc_points(kb, "runbook:redis-memory")) == 5
    assert kb.search("ephemeral-storage eviction", limit=1)[0].doc_id == "runbook:new-one"


def test_cli_ingest_reports_bad_files_and_shows_progress(corpus: Path, tmp_path: Path) -> None:
    (corpus / "runbooks" / "broken.md").write_text("no front matter at all\n")
    env = {
        "PATH": "",
        "HOME": str(tmp_path),
        "FIREBREAK_QDRANT_PATH": str(tmp_path / "q"),
        "FIREBREAK_EMBEDDINGS": "sparse",
        # Wide enough for the bar's description (the corpus path, long under xdist's tmp dirs):
        # a narrower line squeezes the "125/125 chunks" column out of the last frame.
        "COLUMNS": "400",
    }

    def ingest() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", "kb", "ingest", str(corpus)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=PROJECT_ROOT,
        )

    first = ingest()
    assert first.returncode == 1, first.stderr
    assert f"skipped {corpus / 'runbooks' / 'broken.md'}: no front matter" in first.stderr
    assert f"{CHUNKS}/{CHUNKS} chunks" in first.stderr  # the progress bar's last state
    assert first.stdout.startswith(
        f"{DOCS} added, 0 updated, 0 unchanged, 0 deleted, 1 skipped; {CHUNKS} chunks written"
    )
    (corpus / "runbooks" / "broken.md").unlink()
    again = ingest()
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(
        f"0 added, 0 updated, {DOCS} unchanged, 0 deleted, 0 skipped; 0 chunks written"
    )


def test_a_collection_with_other_vectors_is_refused(tmp_path: Path) -> None:
    raw = QdrantClient(path=str(tmp_path / "q"))
    raw.create_collection(
        "firebreak_knowledge", vectors_config=qm.VectorParams(size=8, distance=qm.Distance.DOT)
    )
    raw.close()
    with pytest.raises(SchemaMismatch, match="does not have Firebreak's vectors"):
        memory_at(tmp_path / "q", "sparse").knowledge.ingest(KNOWLEDGE)
    assert os.path.isdir(tmp_path / "q" / "collection" / "firebreak_knowledge"), "nothing was recreated"


def test_turning_dense_on_later_reembeds_every_document_once(tmp_path: Path) -> None:
    root = tmp_path / "kb" / "runbooks"
    root.mkdir(parents=True)
    for name in ("disk-space.md", "saturation.md"):
        shutil.copy(KNOWLEDGE / "runbooks" / name, root / name)
    sparse = memory_at(tmp_path / "q", "sparse").knowledge
    assert sorted(sparse.ingest(root).added) == ["runbook:disk-space", "runbook:saturation"]
    hybrid = memory_at(tmp_path / "q", "hybrid").knowledge
    upgraded = hybrid.ingest(root)
    assert sorted(upgraded.updated) == ["runbook:disk-space", "runbook:saturation"] and upgraded.dense
    vectors = [v for _, v in snapshot(hybrid).values()]
    assert vectors and all(len(v["dense"]) == 384 for v in vectors)
    assert hybrid.ingest(root).chunks_written == 0
    assert (
        hybrid.search("p99 latency high, CPU throttled", mode="dense", limit=1)[0].doc_id
        == "runbook:saturation"
    )
