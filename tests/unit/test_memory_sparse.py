"""BM25-style sparse vectors: terms, weights and hashing."""

from __future__ import annotations

import hashlib
import subprocess
import sys

from memory.sparse import K1, encode_document, encode_query, term_index, terms


def test_alert_names_yield_their_parts_and_themselves() -> None:
    got = terms("NodeFilesystemSpaceFillingUp fired for HTTPErrorRateHigh and High5xxRate")
    assert "nodefilesystemspacefillingup" in got
    assert {"node", "filesystem", "space", "fill"} <= set(got)
    assert {"httperrorratehigh", "http", "error", "rate", "high"} <= set(got)
    assert "5xx" in got
    assert "for" not in got and "and" not in got  # stopwords
    # snake_case names (catalog actions) too
    assert {"cleardiskspace", "clear", "disk", "space"} <= set(terms("run clear_disk_space"))


def test_stemming_matches_word_forms() -> None:
    assert terms("restarting restarted restarts") == ["restart"] * 3
    assert terms("Connections")[0] == terms("connection")[0]


def test_document_weights_saturate_with_repetition_and_shrink_with_length() -> None:
    def weight(text: str, term: str) -> float:
        vec = encode_document(text)
        return vec.values[vec.indices.index(term_index(term))]

    def doc(n: int) -> str:  # n mentions of "disk" in a document of 60 terms
        return " ".join(["disk"] * n + [f"filler{i}" for i in range(60 - n)])

    w1, w2, w3, w30 = (weight(doc(n), "disk") for n in (1, 2, 3, 30))
    assert w1 < w2 < w3 < w30 < K1 + 1  # BM25 saturation: never above k1 + 1
    assert w3 - w2 < w2 - w1  # each further mention adds less
    padding = " ".join(f"filler{i}" for i in range(300))
    assert weight("disk " + padding, "disk") < weight("disk short", "disk")


def test_query_vector_has_one_entry_per_distinct_term() -> None:
    query = encode_query("disk disk full full /var")
    assert sorted(query.indices) == query.indices
    assert len(query.indices) == len(set(terms("disk full var")))
    assert set(query.values) == {1.0}


def test_term_hash_is_stable_across_processes() -> None:
    expected = int.from_bytes(hashlib.blake2b(b"disk", digest_size=4).digest(), "little")
    assert term_index("disk") == expected
    other = subprocess.run(
        [sys.executable, "-c", "from memory.sparse import term_index; print(term_index('disk'))"],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    assert int(other.stdout) == expected
