"""The tamper-evident JSON export of an incident's timeline.

Every entry carries `hash = sha256(canonical JSON of the entry with its seq and prev)`,
where `prev` is the previous entry's hash (the first entry's `prev` hashes the incident id
and run id), and the document's `head` is the last hash. `verify_export` recomputes the
chain and names the first entry that does not match; publish the head (a ticket, a chat
message) and not even a rewrite of the whole file goes unnoticed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from audit.timeline import AuditEntry

EXPORT_FORMAT = "firebreak-audit/1"


def canonical(value: Any) -> bytes:
    """The bytes that are hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _genesis(incident_id: str, run_id: str | None) -> str:
    return hashlib.sha256(
        canonical({"format": EXPORT_FORMAT, "incident": incident_id, "run_id": run_id})
    ).hexdigest()


def export(incident_id: str, run_id: str | None, entries: list[AuditEntry]) -> dict[str, Any]:
    """The JSON export: entries chained by hash, and the head (the last hash)."""
    prev = _genesis(incident_id, run_id)
    chained: list[dict[str, Any]] = []
    for seq, entry in enumerate(entries):
        record = {"seq": seq, **entry.model_dump(mode="json"), "prev": prev}
        record["hash"] = prev = hashlib.sha256(canonical(record)).hexdigest()
        chained.append(record)
    return {
        "format": EXPORT_FORMAT,
        "incident": incident_id,
        "run_id": run_id,
        "entries": chained,
        "count": len(chained),
        "head": prev,
    }


@dataclass(frozen=True)
class Verification:
    ok: bool
    count: int
    head: str | None
    problem: str | None = None
    bad_entry: int | None = None  # seq (index) of the first entry that does not verify


def verify_export(document: Any, expect_head: str | None = None) -> Verification:
    """Recompute the chain; name the first entry that was edited, dropped, added or moved."""
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        return Verification(False, 0, None, f"not a {EXPORT_FORMAT} export")
    entries = document.get("entries")
    if not isinstance(entries, list):
        return Verification(False, 0, None, "no entries list")
    prev = _genesis(str(document.get("incident")), document.get("run_id"))
    for index, record in enumerate(entries):
        where = f"entry {index}"
        if isinstance(record, dict):
            where += f" ({record.get('kind', '?')} at {record.get('at', '?')})"
        if not isinstance(record, dict) or not isinstance(record.get("hash"), str):
            return Verification(False, len(entries), None, f"{where}: not an entry with a hash", index)
        if record.get("seq") != index:
            return Verification(
                False, len(entries), None, f"{where}: out of sequence (entries removed or moved)", index
            )
        if record.get("prev") != prev:
            return Verification(
                False,
                len(entries),
                None,
                f"{where}: does not link to the entry before it (an earlier entry changed, "
                "or one was removed or inserted)",
                index,
            )
        body = {k: v for k, v in record.items() if k != "hash"}
        if hashlib.sha256(canonical(body)).hexdigest() != record["hash"]:
            return Verification(
                False, len(entries), None, f"{where}: content does not match its hash (edited)", index
            )
        prev = record["hash"]
    if document.get("count") != len(entries):
        return Verification(
            False,
            len(entries),
            prev,
            f"count says {document.get('count')}, file has {len(entries)} entries (truncated?)",
        )
    if document.get("head") != prev:
        return Verification(
            False, len(entries), prev, "head does not match the last entry (truncated or extended)"
        )
    if expect_head is not None and expect_head != prev:
        return Verification(False, len(entries), prev, f"head {prev} is not the expected {expect_head}")
    return Verification(True, len(entries), prev)
