"""`Memory`: the knowledge base and episodic memory behind one object, built from settings."""

from __future__ import annotations

from collections.abc import Iterable

from memory.dense import DenseEmbedder, EmbeddingsMode, MiniLMEmbedder, load_embedder
from memory.episodes import EpisodicMemory
from memory.knowledge import KnowledgeBase
from memory.store import QdrantStore, StoreConfig
from memory.suggestions import rank_actions
from models.memory import (
    ActionTrackRecord,
    DocKind,
    FeedbackInput,
    FeedbackResult,
    IncidentRecord,
    Passage,
    RecordResult,
    RetrievedContext,
    RetrieveInput,
)
from runtime.settings import Settings


class Memory:
    def __init__(
        self,
        store: QdrantStore,
        embedder: DenseEmbedder | None,
        knowledge_collection: str = "firebreak_knowledge",
        incidents_collection: str = "firebreak_incidents",
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.knowledge = KnowledgeBase(store, knowledge_collection, embedder)
        self.episodes = EpisodicMemory(store, incidents_collection, embedder)

    @classmethod
    def from_settings(
        cls, settings: Settings, embeddings: EmbeddingsMode | None = None, lock_timeout: float = 30.0
    ) -> Memory:
        config = StoreConfig(
            path=None if settings.qdrant_url else settings.resolved_qdrant_path(),
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
            lock_timeout=lock_timeout,
        )
        return cls(
            QdrantStore(config),
            load_embedder(embeddings or settings.embeddings),
            settings.knowledge_collection,
            settings.incidents_collection,
        )

    @property
    def mode(self) -> str:
        return "hybrid" if self.embedder is not None else "sparse"

    def warm(self) -> None:
        """Load the dense model now (seconds), not in the first incident's retrieval."""
        if isinstance(self.embedder, MiniLMEmbedder):
            self.embedder.warm()

    def retrieve(self, input: RetrieveInput) -> RetrievedContext:
        # Embed the query once for the three searches.
        vector = self.embedder.embed([input.text])[0] if self.embedder is not None else None

        def search(kind: DocKind, limit: int) -> list[Passage]:
            return self.knowledge.search(
                input.text,
                alert_names=input.alert_names,
                services=input.services,
                limit=limit,
                filter=input.filter,
                kinds=[kind],
                dense_vector=vector,
            )

        passages = search("runbook", input.runbook_limit)
        if input.postmortem_limit:
            passages += search("postmortem", input.postmortem_limit)
        incidents = (
            self.episodes.similar(
                input.text,
                alert_names=input.alert_names,
                services=input.services,
                category=input.category,
                limit=input.incident_limit,
                boost=input.filter != "off",
                dense_vector=vector,
            )
            if input.incident_limit
            else []
        )
        return RetrievedContext(
            query=input.text,
            mode="hybrid" if self.embedder is not None else "sparse",
            passages=passages,
            incidents=incidents,
            suggestions=rank_actions(passages, incidents),
        )

    def record(self, record: IncidentRecord) -> RecordResult:
        return self.episodes.record(record)

    def feedback(self, input: FeedbackInput) -> FeedbackResult:
        return self.episodes.feedback(input)

    def track_record(self, actions: Iterable[str] = ()) -> dict[str, ActionTrackRecord]:
        return self.episodes.track_record(actions)
