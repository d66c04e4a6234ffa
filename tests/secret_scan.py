"""Scan what is really stored for secrets: every payload decoded, not the base64 of it.

`history.to_json()` holds each payload's data as base64, so a token inside an activity
result never appears in it as text: a scan of that JSON cannot fail. `stored_text` walks
every protobuf message of a history instead (activity inputs and results, signals, child
inputs and results, memos, search attributes, failures and their encoded attributes),
opens each payload with the codec when one is given, and returns all of it as text.
`find_secrets` then reports which secrets appear there or in log files.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from pathlib import Path

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.converter import PayloadCodec


async def _open(payload: Payload, codec: PayloadCodec | None) -> Payload:
    if codec is None:
        return payload
    (opened,) = await codec.decode([payload])
    return opened


async def _walk(message: Message, codec: PayloadCodec | None, out: list[str]) -> None:
    if isinstance(message, Payload):
        opened = await _open(message, codec)
        out.append(opened.data.decode("utf-8", errors="replace"))
        out.extend(v.decode("utf-8", errors="replace") for v in opened.metadata.values())
        return
    for field, value in message.ListFields():
        if field.type == field.TYPE_MESSAGE:
            entry_type = field.message_type
            if entry_type is not None and entry_type.GetOptions().map_entry:
                for entry in value.values():
                    if isinstance(entry, Message):
                        await _walk(entry, codec, out)
                    else:
                        out.append(str(entry))
            elif isinstance(value, Message):
                await _walk(value, codec, out)
            else:  # a repeated field
                for item in value:
                    await _walk(item, codec, out)
        elif field.type == field.TYPE_STRING:
            out.extend([value] if isinstance(value, str) else list(value))
        elif field.type == field.TYPE_BYTES:
            raw = value if isinstance(value, bytes) else b"".join(value)
            out.append(raw.decode("utf-8", errors="replace"))


async def stored_text(history: WorkflowHistory, codec: PayloadCodec | None = None) -> str:
    """Everything the history stores, each payload decoded (and opened with `codec`)."""
    out: list[str] = []
    for event in history.events:
        await _walk(event, codec, out)
    return "\n".join(out)


def plain_payload_text(history_json: Mapping[str, object]) -> str:
    """The base64 data of every payload in a history's JSON form, decoded: what a reader
    without the codec key sees (ciphertext where the codec sealed it)."""
    out: list[str] = []

    def visit(node: object) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, str) and "metadata" in node:
                out.append(base64.b64decode(data + "==").decode("utf-8", errors="replace"))
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(history_json)
    return "\n".join(out)


def find_secrets(secrets: Mapping[str, str], text: str, files: Iterable[Path] = ()) -> list[str]:
    """Which named secrets appear in `text` or in any of `files` (name and where)."""
    found = [f"{name} in the stored history" for name, value in secrets.items() if value and value in text]
    for path in files:
        content = path.read_text(errors="replace") if path.is_file() else ""
        found += [f"{name} in {path}" for name, value in secrets.items() if value and value in content]
    return found
