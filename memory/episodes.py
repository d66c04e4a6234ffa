"""Episodic memory: one point per closed incident, found again by what it looked like.

The record (`IncidentRecord`) is stored whole in the payload. Beside it, flat keyword lists
say what happened to each action (`act_success`, `act_rejected`, ...), so the track record
of an action class is a handful of indexed counts, and stays right however often a record
is rewritten: recording is an upsert keyed by the incident run, so a retried activity
cannot count twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory.dense import DenseEmbedder
from memory.errors import RecordNotFound
from memory.knowledge import search_points
from memory.sparse import encode_document
from memory.store import DENSE, SPARSE, QdrantStore, sparse_vector
from models.memory import (
    ActionTrackRecord,
    FeedbackInput,
    FeedbackNote,
    FeedbackResult,
    IncidentRecord,
    RecordResult,
    SimilarIncident,
)

_NAMESPACE = uuid.UUID("0d6f0c57-3f0e-4d59-8a0a-3c3f3f1a9b27")
# Per action: the keyword list a record lists it in, and the track-record field it counts for.
TRACK_FIELDS = {
    "act_planned": "incidents",
    "act_success": "successes",
    "act_failure": "failures",
    "act_rejected": "rejections",
    "act_approved": "approvals",
    "act_shadow": "shadow_runs",
    "act_useful": "useful",
    "act_wrong": "wrong",
}
KEYWORD_FIELDS = ("incident_id", "alert_names", "services", "category", "outcome", *TRACK_FIELDS)


def record_point_id(record_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, record_id))


def episode_text(record: IncidentRecord) -> str:
    """What a later incident would resemble: its symptoms and cause, not what was done."""
    return "\n".join(
        part
        for part in (
            record.summary,
            " ".join(record.alert_names),
            " ".join(record.services),
            record.category or "",
            "\n".join(record.symptoms),
            f"root cause: {record.root_cause}" if record.root_cause else "",
        )
        if part
    )


def action_lists(record: IncidentRecord) -> dict[str, list[str]]:
    lists: dict[str, set[str]] = {name: set() for name in TRACK_FIELDS}
    for outcome in record.actions:
        lists["act_planned"].add(outcome.action)
        if outcome.check_mode and outcome.status == "successful":
            lists["act_shadow"].add(outcome.action)
        elif outcome.succeeded:
            lists["act_success"].add(outcome.action)
        elif outcome.failed:
            lists["act_failure"].add(outcome.action)
        if outcome.status == "rejected":
            lists["act_rejected"].add(outcome.action)
    for approval in record.approvals:
        key = "act_approved" if approval.decision == "approved" else "act_rejected"
        lists[key].update(approval.actions)
        lists["act_planned"].update(approval.actions)
    planned = sorted(lists["act_planned"])
    for note in record.feedback:
        targets = [note.action] if note.action else planned
        lists["act_useful" if note.useful else "act_wrong"].update(targets)
    return {name: sorted(values) for name, values in lists.items()}


class EpisodicMemory:
    def __init__(self, store: QdrantStore, collection: str, embedder: DenseEmbedder | None) -> None:
        self.store = store
        self.collection = collection
        self.embedder = embedder

    def _payload(self, record: IncidentRecord) -> dict[str, Any]:
        return {
            "record": record.model_dump(mode="json"),
            "record_id": record.id,
            "incident_id": record.incident_id,
            "run_id": record.run_id,
            "closed_at": record.closed_at.timestamp(),
            "alert_names": record.alert_names,
            "services": record.services,
            "category": record.category or "",
            "outcome": record.outcome,
            **action_lists(record),
        }

    def record(self, record: IncidentRecord) -> RecordResult:
        text = episode_text(record) or record.incident_id
        vectors: dict[str, Any] = {SPARSE: sparse_vector(encode_document(text))}
        if self.embedder is not None:
            vectors[DENSE] = self.embedder.embed([text])[0]
        pid = record_point_id(record.id)
        with self.store.client() as client:
            self._ensure(client)
            existing = client.retrieve(self.collection, ids=[pid], with_payload=["record"])
            if existing:
                # Feedback given before a retried close must survive the rewrite.
                earlier = IncidentRecord.model_validate((existing[0].payload or {})["record"])
                notes = [n for n in earlier.feedback if n not in record.feedback]
                record = record.model_copy(update={"feedback": [*record.feedback, *notes]})
            client.upsert(
                self.collection,
                points=[qm.PointStruct(id=pid, vector=vectors, payload=self._payload(record))],
                wait=True,
            )
        return RecordResult(record_id=record.id, created=not existing)

    def get(self, incident_id: str, run_id: str | None = None) -> IncidentRecord:
        """A run's record, or the incident's latest when no run is named."""
        with self.store.client() as client:
            self._ensure(client)
            return self._find(client, incident_id, run_id)

    def _find(self, client: QdrantClient, incident_id: str, run_id: str | None) -> IncidentRecord:
        runs = self._all_runs(client, incident_id)  # an incident key has few runs: newest first
        if run_id:
            runs = [p for p in runs if (p.payload or {}).get("record", {}).get("run_id") == run_id]
        if not runs:
            which = f"run {run_id} of " if run_id else ""
            raise RecordNotFound(
                f"no memory of {which}{incident_id}: it has not closed, or was never recorded"
            )
        return IncidentRecord.model_validate((runs[0].payload or {})["record"])

    def _all_runs(self, client: QdrantClient, incident_id: str) -> list[qm.Record]:
        runs: list[qm.Record] = []
        offset: Any = None
        while True:
            points, offset = client.scroll(
                self.collection,
                scroll_filter=qm.Filter(
                    must=[qm.FieldCondition(key="incident_id", match=qm.MatchValue(value=incident_id))]
                ),
                limit=256,
                offset=offset,
                with_payload=["record", "closed_at"],
            )
            runs += points
            if offset is None:
                return sorted(
                    runs, key=lambda p: float((p.payload or {}).get("closed_at", 0.0)), reverse=True
                )

    def feedback(self, input: FeedbackInput) -> FeedbackResult:
        note = FeedbackNote(
            useful=input.useful,
            by=input.by,
            note=input.note,
            at=input.at or datetime.now(UTC),
            action=input.action,
        )
        with self.store.client() as client:
            self._ensure(client)
            record = self._find(client, input.incident_id, input.run_id)
            if input.action is not None and input.action not in {a.action for a in record.actions}:
                known = sorted({a.action for a in record.actions})
                raise RecordNotFound(f"{record.id} had no action {input.action!r} (it had {known})")
            if note not in record.feedback:  # the same note twice (a retried activity) counts once
                record = record.model_copy(update={"feedback": [*record.feedback, note]})
                client.set_payload(
                    self.collection,
                    payload=self._payload(record),
                    points=[record_point_id(record.id)],
                    wait=True,
                )
        return FeedbackResult(record_id=record.id, feedback=record.feedback)

    def similar(
        self,
        text: str,
        *,
        alert_names: Iterable[str] = (),
        services: Iterable[str] = (),
        category: str | None = None,
        limit: int = 5,
        boost: bool = True,
        dense_vector: list[float] | None = None,
    ) -> list[SimilarIncident]:
        alerts, svcs = sorted(set(alert_names)), sorted(set(services))
        query = "\n".join([text, " ".join(alerts), " ".join(svcs), category or ""]).strip()
        with self.store.client() as client:
            self._ensure(client)
            points = search_points(
                client,
                self.collection,
                query,
                embedder=self.embedder,
                names={"alert_names": alerts, "services": svcs},
                limit=limit,
                filter="boost" if boost else "off",
                dense_vector=dense_vector,
            )
        results = []
        for p in points:
            record = IncidentRecord.model_validate((p.payload or {})["record"])
            matched = [f"alert:{n}" for n in record.alert_names if n in alerts]
            matched += [f"service:{s}" for s in record.services if s in svcs]
            if category and record.category == category:
                matched.append(f"category:{category}")
            results.append(
                SimilarIncident(
                    id=record.id, record=record, score=float(p.score), matched_on=matched or ["text"]
                )
            )
        return results

    def track_record(self, actions: Iterable[str] = ()) -> dict[str, ActionTrackRecord]:
        with self.store.client() as client:
            self._ensure(client)
            names = sorted(set(actions)) or self._seen_actions(client)
            records = {}
            for action in names:
                counts = {
                    field: client.count(
                        self.collection,
                        count_filter=qm.Filter(
                            must=[qm.FieldCondition(key=key, match=qm.MatchValue(value=action))]
                        ),
                        exact=True,
                    ).count
                    for key, field in TRACK_FIELDS.items()
                }
                records[action] = ActionTrackRecord(action=action, **counts)
        return records

    def _seen_actions(self, client: QdrantClient) -> list[str]:
        seen: set[str] = set()
        offset: Any = None
        while True:
            points, offset = client.scroll(
                self.collection, limit=512, offset=offset, with_payload=["act_planned"], with_vectors=False
            )
            for p in points:
                seen.update((p.payload or {}).get("act_planned") or [])
            if offset is None:
                return sorted(seen)

    def count(self) -> int:
        with self.store.client() as client:
            self._ensure(client)
            return client.count(self.collection, exact=True).count

    def _ensure(self, client: QdrantClient) -> None:
        self.store.ensure_collection(client, self.collection, KEYWORD_FIELDS)
