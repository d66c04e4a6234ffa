"""Knowledge files: Markdown with YAML front matter, parsed strictly and cut into chunks.

A file looks like this; every front-matter key is checked, and an unknown key is an error
(a typo in `alerts:` would otherwise silently drop the runbook from filtered searches):

    ---
    kind: runbook                      # or postmortem (default: from the folder name)
    title: Disk space running out
    alerts: [NodeFilesystemSpaceFillingUp, DiskSpaceLow]
    services: []                       # empty: any service
    actions: [clear_disk_space]        # catalog actions the document recommends
    ---
    # Disk space running out
    ## Symptoms
    ...

Chunks are the document's `##` sections, split further at paragraphs when long. Each chunk's
indexed text repeats the title, section and front-matter names, so a chunk found alone
still says what it is about.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from memory.errors import DocumentError
from models.memory import DocKind
from runtime.bounded import load_yaml_text

# Bump when chunking or indexed text changes: every document then counts as changed.
CHUNKER_VERSION = "1"
MAX_CHUNK_CHARS = 1200
MAX_FILE_BYTES = 1_000_000

_DOC_ID = re.compile(r"^[a-z]+:[a-z0-9][a-z0-9._-]{0,127}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_FOLDER_KINDS: dict[str, DocKind] = {
    "runbooks": "runbook",
    "runbook": "runbook",
    "postmortems": "postmortem",
    "post-mortems": "postmortem",
    "postmortem": "postmortem",
}


class FrontMatter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    kind: DocKind | None = None
    title: str | None = Field(default=None, min_length=1, max_length=200)
    summary: str = Field(default="", max_length=1000)
    services: list[str] = Field(default_factory=list)
    alerts: list[str] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    owner: str | None = None
    severity: str | None = None
    updated: dt.date | None = None
    date: dt.date | None = None  # post-mortems: when it happened
    incident: str | None = None  # post-mortems: the incident's id in your tracker

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str | None) -> str | None:
        if value is not None and not _DOC_ID.match(value):
            raise ValueError(f"{value!r} is not '<kind>:<name>' in lower case")
        return value

    @field_validator("services", "alerts", "actions", "tags")
    @classmethod
    def _names(cls, values: list[str]) -> list[str]:
        for value in values:
            if not isinstance(value, str) or not _NAME.match(value):
                raise ValueError(f"{value!r} is not a plain name")
        return values


@dataclass(frozen=True)
class Chunk:
    doc_id: str
    index: int
    section: str
    text: str  # the section's own words, as a passage shows them
    indexed_text: str  # what the vectors are made from

    @property
    def id(self) -> str:
        return f"{self.doc_id}#{self.index}"


@dataclass(frozen=True)
class KnowledgeDoc:
    id: str
    kind: DocKind
    title: str
    path: Path
    meta: FrontMatter
    content_hash: str
    chunks: list[Chunk] = field(default_factory=list)


def parse_document(path: Path, known_actions: Iterable[str] | None = None) -> KnowledgeDoc:
    """Read and check one knowledge file; raises DocumentError naming the path and the problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DocumentError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise DocumentError(path, f"larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(path, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    meta, body = _split_front_matter(path, text)
    kind = meta.kind or _FOLDER_KINDS.get(path.parent.name.lower())
    if kind is None:
        raise DocumentError(
            path, "front matter: no `kind` (runbook or postmortem), and the folder does not say"
        )
    if known_actions is not None:
        known = set(known_actions)
        unknown = [a for a in meta.actions if a not in known]
        if unknown:
            raise DocumentError(
                path, f"front matter: actions {unknown} are not in the catalog (it has {sorted(known)})"
            )
    body, heading = _strip_title(body)
    title = meta.title or heading
    if not title:
        raise DocumentError(path, "no title: set `title` in the front matter or start with '# Title'")
    doc_id = meta.id or f"{kind}:{_slug(path.stem)}"
    if not doc_id.startswith(f"{kind}:"):
        raise DocumentError(path, f"front matter: id {doc_id!r} must start with '{kind}:'")
    chunks = chunk_body(doc_id, title, meta, body)
    if not chunks:
        raise DocumentError(path, "no text after the front matter")
    digest = hashlib.sha256(CHUNKER_VERSION.encode() + b"\0" + raw).hexdigest()
    return KnowledgeDoc(
        id=doc_id, kind=kind, title=title, path=path, meta=meta, content_hash=digest, chunks=chunks
    )


def _split_front_matter(path: Path, text: str) -> tuple[FrontMatter, str]:
    text = text.removeprefix("\ufeff")
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise DocumentError(path, "no front matter: the file must start with a '---' line")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        raise DocumentError(path, "front matter is not closed by a '---' line")
    try:
        data = load_yaml_text("".join(lines[1:end]), str(path))  # bounded (runtime/bounded.py)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DocumentError(path, f"front matter is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise DocumentError(path, "front matter must be a mapping of keys to values")
    try:
        meta = FrontMatter.model_validate(data)
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(front matter)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise DocumentError(path, f"front matter: {detail}") from None
    return meta, "".join(lines[end + 1 :])


def _strip_title(body: str) -> tuple[str, str | None]:
    lines = body.strip("\n").splitlines()
    if lines and lines[0].startswith("# "):
        return "\n".join(lines[1:]), lines[0][2:].strip()
    return "\n".join(lines), None


def chunk_body(doc_id: str, title: str, meta: FrontMatter, body: str) -> list[Chunk]:
    """Sections (`##`) become chunks; long sections split at blank lines."""
    sections: list[tuple[str, list[str]]] = [("Overview", [])]
    for line in body.splitlines():
        if line.startswith("## "):
            sections.append((line[3:].strip(), []))
        else:
            sections[-1][1].append(line)
    header = _metadata_line(meta)
    chunks: list[Chunk] = []
    for section, lines in sections:
        text = "\n".join(lines).strip()
        if not text:
            continue
        for piece in _split(text, MAX_CHUNK_CHARS):
            indexed = f"{title}\n{section}\n{piece}" + (f"\n{header}" if header else "")
            chunks.append(
                Chunk(doc_id=doc_id, index=len(chunks), section=section, text=piece, indexed_text=indexed)
            )
    return chunks


def _metadata_line(meta: FrontMatter) -> str:
    parts = []
    if meta.alerts:
        parts.append("alerts: " + " ".join(meta.alerts))
    if meta.services:
        parts.append("services: " + " ".join(meta.services))
    if meta.summary:
        parts.append(meta.summary)
    return "\n".join(parts)


def _split(text: str, limit: int) -> list[str]:
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        while len(paragraph) > limit:
            # One paragraph longer than a chunk: cut at the last sentence or line end that fits.
            cut = max(paragraph.rfind(". ", 0, limit), paragraph.rfind("\n", 0, limit))
            cut = cut + 1 if cut > limit // 3 else limit
            head, paragraph = paragraph[:cut].strip(), paragraph[cut:].strip()
            if current:
                pieces.append(current)
                current = ""
            pieces.append(head)
        if not paragraph:
            continue
        if current and len(current) + 2 + len(paragraph) > limit:
            pieces.append(current)
            current = paragraph
        else:
            current = f"{current}\n\n{paragraph}" if current else paragraph
    if current:
        pieces.append(current)
    return pieces


def _slug(stem: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-.") or "doc"


def discover(root: Path) -> list[Path]:
    """The knowledge files under a folder (or the file itself); READMEs and `_drafts` are not documents."""
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*.md")
        if p.is_file()
        and p.name.lower() != "readme.md"
        and not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts)
    )
