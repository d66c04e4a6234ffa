"""Retrieval benchmark: does an alert find its runbook, how fast, and what ingest costs.

    .venv/bin/python bench/bench_retrieval.py            # sparse, dense and hybrid
    .venv/bin/python bench/bench_retrieval.py --sparse-only

Queries are realistic alert texts (Alertmanager summary/description, log lines, what an
on-call engineer would type), each labelled with the runbook that answers it. Some name an
alert the runbook lists, some an alert it does not, some no alert at all. Recall@k is the
share of queries whose runbook is among the top k runbooks; MRR is the mean of 1/rank.
Modes search runbooks only, on text alone (no alert-name filter), except the `+boost`
rows, which also pass the query's alert name as the retrieval activity does.

Ingest is timed on the knowledge folder replicated to 1,000 chunks, into a fresh local
store; latency is one `search` call end to end (local mode opens its folder per call).
Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memory.dense import load_embedder
from memory.documents import discover, parse_document
from memory.knowledge import KnowledgeBase
from memory.store import QdrantStore, StoreConfig
from runtime.settings import PROJECT_ROOT

KNOWLEDGE = PROJECT_ROOT / "knowledge"


@dataclass(frozen=True)
class Query:
    text: str
    expected: str  # runbook id
    alert: str | None = None  # the alert name, for the +boost rows


QUERIES: list[Query] = [
    # service-down
    Query(
        "KubePodCrashLooping: Pod shop/cart-5d8c9 (cart) is in waiting state (reason: CrashLoopBackOff).",
        "runbook:service-down",
        "KubePodCrashLooping",
    ),
    Query(
        "InstanceDown: cart-api instance 10.2.3.4:8080 has been down for more than 1 minute (up == 0).",
        "runbook:service-down",
        "InstanceDown",
    ),
    Query(
        "Blackbox HTTP probe to https://status.example.com/health failing, connection refused",
        "runbook:service-down",
        "ProbeFailed",
    ),
    Query(
        "Deployment checkout has not matched the expected number of replicas for 15 minutes; 2 of 6 up",
        "runbook:service-down",
        "KubeDeploymentReplicasMismatch",
    ),
    # high-error-rate
    Query(
        "HighErrorRate: checkout 5xx ratio is 12.5% over the last 5 minutes",
        "runbook:high-error-rate",
        "HighErrorRate",
    ),
    Query(
        "ErrorBudgetBurn: search-api is burning its 30d error budget 14x faster than allowed",
        "runbook:high-error-rate",
        "ErrorBudgetBurn",
    ),
    Query("users get HTTP 500 internal server error from the orders endpoint", "runbook:high-error-rate"),
    # saturation
    Query(
        "HighRequestLatency: api-gateway p99 latency is 2.4s (threshold 1s)",
        "runbook:saturation",
        "HighRequestLatency",
    ),
    Query(
        "CPUThrottlingHigh: 63% throttling of CPU in namespace shop for container search in pod search-7f",
        "runbook:saturation",
        "CPUThrottlingHigh",
    ),
    Query(
        "KubeHpaMaxedOut: HPA shop/frontend has been running at max replicas for longer than 15 minutes",
        "runbook:saturation",
        "KubeHpaMaxedOut",
    ),
    Query("requests are slow since the traffic spike, pods at their CPU limit", "runbook:saturation"),
    # disk-space
    Query(
        "NodeFilesystemSpaceFillingUp: Filesystem on /dev/nvme0n1p1 at 10.0.3.17 has only 9% available space "
        "left and is filling up",
        "runbook:disk-space",
        "NodeFilesystemSpaceFillingUp",
    ),
    Query(
        "KubePersistentVolumeFillingUp: The PersistentVolume claimed by data-kafka-0 is only 3% free",
        "runbook:disk-space",
        "KubePersistentVolumeFillingUp",
    ),
    Query("/var is 97% full on web-3, rotated logs piling up", "runbook:disk-space", "DiskSpaceLow"),
    # out-of-memory
    Query(
        "KubeContainerOOMKilled: container recommender in pod recommender-6c was OOMKilled 4 times in 1h",
        "runbook:out-of-memory",
        "KubeContainerOOMKilled",
    ),
    Query(
        "pods restarting with exit code 137, memory working set climbs until the limit",
        "runbook:out-of-memory",
    ),
    Query(
        "KubeMemoryLimitReached: pod ml-scorer memory at 98% of its limit",
        "runbook:out-of-memory",
        "KubeMemoryLimitReached",
    ),
    # cluster-capacity
    Query(
        "KubeQuotaExceeded: namespace team-data is using 104% of its cpu quota",
        "runbook:cluster-capacity",
        "KubeQuotaExceeded",
    ),
    Query(
        "KubeCPUOvercommit: cluster has overcommitted CPU resource requests and cannot tolerate node failure",
        "runbook:cluster-capacity",
        "KubeCPUOvercommit",
    ),
    Query("new pods pending: 0/12 nodes are available: insufficient cpu", "runbook:cluster-capacity"),
    # batch-job-failed
    Query(
        "KubeJobFailed: Job billing/export-invoices-28911 failed to complete",
        "runbook:batch-job-failed",
        "KubeJobFailed",
    ),
    Query(
        "the nightly backup cronjob did not run, previous run still active",
        "runbook:batch-job-failed",
        "CronJobMissedSchedule",
    ),
    # monitoring-pipeline
    Query(
        "AlertmanagerFailedToSendAlerts: Alertmanager failed to send 37% of notifications to slack",
        "runbook:monitoring-pipeline",
        "AlertmanagerFailedToSendAlerts",
    ),
    Query(
        "PrometheusRuleFailures: Prometheus has failed to evaluate 12 rules in the last 5m",
        "runbook:monitoring-pipeline",
        "PrometheusRuleFailures",
    ),
    # db-connection-pool
    Query(
        "HikariPool-1 - Connection is not available, request timed out after 30000ms",
        "runbook:db-connection-pool",
        "HikariPoolPendingThreads",
    ),
    Query(
        "FATAL: sorry, too many clients already (postgres orders-db)",
        "runbook:db-connection-pool",
        "PostgresTooManyConnections",
    ),
    Query("sessions idle in transaction holding all database connections", "runbook:db-connection-pool"),
    # postgres-replication-lag
    Query(
        "PostgresReplicationLagHigh: replica orders-db-1 is 540s behind the primary",
        "runbook:postgres-replication-lag",
        "PostgresReplicationLagHigh",
    ),
    Query(
        "reads from the replica return stale data, WAL replay falling behind",
        "runbook:postgres-replication-lag",
    ),
    # certificate-expiry
    Query(
        "SSL certificate for api.example.com expires in 6 days",
        "runbook:certificate-expiry",
        "SSLCertExpiringSoon",
    ),
    Query(
        "x509: certificate has expired or is not yet valid when calling partner API",
        "runbook:certificate-expiry",
    ),
    # dns
    Query(
        "CoreDNSErrorsHigh: CoreDNS is returning SERVFAIL for 18% of requests",
        "runbook:dns-failures",
        "CoreDNSErrorsHigh",
    ),
    Query(
        "dial tcp: lookup orders.shop.svc.cluster.local: i/o timeout; getaddrinfo EAI_AGAIN",
        "runbook:dns-failures",
    ),
    # queue-backlog
    Query(
        "KafkaConsumerLagHigh: consumer group orders-consumer lag is 420k messages on topic orders.v1",
        "runbook:queue-backlog",
        "KafkaConsumerLagHigh",
    ),
    Query(
        "RabbitMQ queue email-send has 90k ready messages and growing",
        "runbook:queue-backlog",
        "RabbitMQQueueBacklog",
    ),
    # deploy-regression
    Query(
        "KubeDeploymentRolloutStuck: rollout of deployment shop/frontend is not progressing",
        "runbook:deploy-regression",
        "KubeDeploymentRolloutStuck",
    ),
    Query(
        "errors started right after release 2025.11.3 went out, canary analysis failed",
        "runbook:deploy-regression",
        "CanaryFailed",
    ),
    # node-not-ready
    Query(
        "KubeNodeNotReady: node ip-10-0-7-91 has been unready for more than 15 minutes",
        "runbook:node-not-ready",
        "KubeNodeNotReady",
    ),
    Query("kubelet stopped posting node status, pods on the node are terminating", "runbook:node-not-ready"),
    # inode-exhaustion
    Query(
        "NodeFilesystemAlmostOutOfFiles: filesystem /var on web-2 has only 2% free inodes",
        "runbook:inode-exhaustion",
        "NodeFilesystemAlmostOutOfFiles",
    ),
    Query("No space left on device although df -h shows 40% free", "runbook:inode-exhaustion"),
    # redis
    Query(
        "RedisEvictionsHigh: redis-sessions evicting 2k keys per second",
        "runbook:redis-memory",
        "RedisEvictionsHigh",
    ),
    Query(
        "redis used memory at 95% of maxmemory, cache hit rate dropping",
        "runbook:redis-memory",
        "RedisMemoryHigh",
    ),
    # jvm
    Query(
        "JvmGcPauseHigh: inventory-service spends 35% of time in garbage collection",
        "runbook:jvm-gc-pressure",
        "JvmGcPauseHigh",
    ),
    Query("java.lang.OutOfMemoryError: Java heap space in pricing-service", "runbook:jvm-gc-pressure"),
    # upstream
    Query(
        "CircuitBreakerOpen: circuit breaker paymentProvider is OPEN in checkout",
        "runbook:upstream-dependency",
        "CircuitBreakerOpen",
    ),
    Query(
        "timeouts calling the geocoding provider, our service is fine otherwise",
        "runbook:upstream-dependency",
    ),
    # clock skew
    Query(
        "NodeClockSkewDetected: clock on node-4 is out of sync by more than 300ms",
        "runbook:clock-skew",
        "NodeClockSkewDetected",
    ),
    Query("JWT rejected: token used before issued (nbf), time on host drifted", "runbook:clock-skew"),
]


# Paraphrases: how a person describes the problem, in words the runbook mostly does not use.
PARAPHRASES: list[Query] = [
    Query("the website is unreachable for everyone", "runbook:service-down"),
    Query("the app keeps getting killed by the kernel every few hours", "runbook:out-of-memory"),
    Query("storage nearly exhausted on the logging box", "runbook:disk-space"),
    Query("response times doubled after the marketing email went out", "runbook:saturation"),
    Query("lots of failed requests on the shop, customers see an error page", "runbook:high-error-rate"),
    Query("emails are going out hours late, the workers cannot keep up", "runbook:queue-backlog"),
    Query("pages are not reaching the on-call phone any more", "runbook:monitoring-pipeline"),
    Query("last night's report was never generated", "runbook:batch-job-failed"),
    Query("services inside the cluster cannot find each other by name", "runbook:dns-failures"),
    Query("a machine in the cluster went dark and its workloads moved", "runbook:node-not-ready"),
    Query("secure connections to the partner fail since this morning", "runbook:certificate-expiry"),
    Query("the read copy of the database is behind the main one", "runbook:postgres-replication-lag"),
    Query("the cache keeps throwing away entries and the database is hammered", "runbook:redis-memory"),
    Query("the Java service freezes for seconds at a time", "runbook:jvm-gc-pressure"),
    Query("the app waits forever to get a database handle", "runbook:db-connection-pool"),
    Query("we shipped a new version and now everything is broken", "runbook:deploy-regression"),
    Query("timestamps on one server are minutes off", "runbook:clock-skew"),
    Query("the team cannot start more pods in their namespace, limit reached", "runbook:cluster-capacity"),
    Query(
        "a third-party API we call is very slow and our calls fail fast now", "runbook:upstream-dependency"
    ),
    Query("cannot create files although the disk has plenty of room", "runbook:inode-exhaustion"),
]


@dataclass
class Scores:
    recall1: float
    recall5: float
    mrr: float
    p50_ms: float
    p95_ms: float


def evaluate(kb: KnowledgeBase, queries: list[Query], mode: str, boost: bool, repeats: int) -> Scores:
    ranks: list[int | None] = []
    latencies: list[float] = []
    for q in queries:
        alerts = [q.alert] if boost and q.alert else []
        kb.search(
            q.text,
            alert_names=alerts,
            kinds=["runbook"],
            limit=5,
            filter="boost" if boost else "off",
            mode=mode,
        )
        for _ in range(repeats):
            start = time.perf_counter()
            got = kb.search(
                q.text,
                alert_names=alerts,
                kinds=["runbook"],
                limit=10,
                filter="boost" if boost else "off",
                mode=mode,
            )
            latencies.append((time.perf_counter() - start) * 1000)
        ids = [p.doc_id for p in got]
        ranks.append(ids.index(q.expected) + 1 if q.expected in ids else None)
    n = len(queries)
    return Scores(
        recall1=sum(r == 1 for r in ranks) / n,
        recall5=sum(r is not None and r <= 5 for r in ranks) / n,
        mrr=sum(1 / r for r in ranks if r) / n,
        p50_ms=statistics.median(latencies),
        p95_ms=statistics.quantiles(latencies, n=20)[18],
    )


def replicate(target: Path, chunks_wanted: int) -> int:
    """Copy the knowledge folder under new ids until it holds about `chunks_wanted` chunks."""
    docs = [parse_document(p) for p in discover(KNOWLEDGE)]
    per_copy = sum(len(d.chunks) for d in docs)
    copies = max(1, round(chunks_wanted / per_copy))
    for i in range(copies):
        for doc in docs:
            text = doc.path.read_text()
            body = text.replace("\n---\n", f"\nid: {doc.id}-copy{i}\n---\n", 1)
            folder = target / f"copy{i}" / doc.path.parent.name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / doc.path.name).write_text(body)
    return copies * per_copy


def time_ingest(root: Path, store_dir: Path, mode: str) -> tuple[float, int]:
    embedder = load_embedder("dense") if mode == "hybrid" else None
    kb = KnowledgeBase(QdrantStore(StoreConfig(path=store_dir)), "bench", embedder)
    start = time.perf_counter()
    report = kb.ingest(root)
    return time.perf_counter() - start, report.chunks_written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sparse-only", action="store_true", help="skip dense and hybrid")
    parser.add_argument("--repeats", type=int, default=3, help="timed searches per query and mode")
    parser.add_argument("--ingest-chunks", type=int, default=1000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="firebreak-bench-"))
    try:
        embedder = None
        if not args.sparse_only:
            start = time.perf_counter()
            embedder = load_embedder("dense")
            assert embedder is not None
            embedder.embed(["warm up"])
            print(f"dense model load: {time.perf_counter() - start:.1f} s")
        kb = KnowledgeBase(QdrantStore(StoreConfig(path=work / "qdrant")), "bench", embedder)
        report = kb.ingest(KNOWLEDGE)
        print(
            f"corpus: {len(report.added)} documents, {report.points} chunks; "
            f"{len(QUERIES)} alert queries, {len(PARAPHRASES)} paraphrases"
        )
        modes = ["sparse"] if args.sparse_only else ["sparse", "dense", "hybrid"]
        for title, queries in (("alert texts", QUERIES), ("paraphrases", PARAPHRASES)):
            print()
            print(f"{title:<16}{'recall@1':>10}{'recall@5':>10}{'MRR':>8}{'p50 ms':>10}{'p95 ms':>10}")
            for mode in modes:
                for boost in (False, True) if queries is QUERIES else (False,):
                    s = evaluate(kb, queries, mode, boost, args.repeats)
                    label = mode + ("+boost" if boost else "")
                    print(
                        f"{label:<16}{s.recall1:>10.3f}{s.recall5:>10.3f}{s.mrr:>8.3f}"
                        f"{s.p50_ms:>10.1f}{s.p95_ms:>10.1f}"
                    )
        print()
        corpus = work / "corpus"
        chunks = replicate(corpus, args.ingest_chunks)
        for mode in ["sparse"] if args.sparse_only else ["sparse", "hybrid"]:
            seconds, written = time_ingest(corpus, work / f"ingest-{mode}", mode)
            per_1000 = seconds * 1000 / written
            print(f"ingest {mode:<7} {written} chunks in {seconds:.1f} s = {per_1000:.1f} s per 1,000 chunks")
            again, rewritten = time_ingest(corpus, work / f"ingest-{mode}", mode)
            print(f"re-ingest {mode:<7} unchanged: {rewritten} chunks written in {again:.2f} s")
        print(f"(replicated corpus: {chunks} chunks)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
