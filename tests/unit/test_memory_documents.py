"""Knowledge files: strict front matter, errors that name the file, chunks by section."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from memory.documents import MAX_CHUNK_CHARS, discover, parse_document
from memory.errors import DocumentError
from policies.catalog import load_catalog
from runtime.settings import PROJECT_ROOT

KNOWLEDGE = PROJECT_ROOT / "knowledge"
CATALOG_ACTIONS = set(load_catalog(PROJECT_ROOT / "playbooks").actions)

GOOD_FRONT = """---
kind: runbook
title: Disk full
alerts: [DiskSpaceLow]
actions: [clear_disk_space]
---
"""


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_every_knowledge_file_parses_and_names_only_catalog_actions() -> None:
    files = discover(KNOWLEDGE)
    docs = [parse_document(p, CATALOG_ACTIONS) for p in files]
    kinds = {d.kind for d in docs}
    assert kinds == {"runbook", "postmortem"}
    assert sum(d.kind == "runbook" for d in docs) >= 14
    assert sum(d.kind == "postmortem" for d in docs) >= 3
    assert len({d.id for d in docs}) == len(docs)
    for doc in docs:
        assert doc.meta.alerts, f"{doc.path} names no alert"
        assert all(len(c.text) <= MAX_CHUNK_CHARS for c in doc.chunks)


def test_runbooks_that_the_triage_rules_point_at_exist_and_cover_the_rules_alerts() -> None:
    rules = yaml.safe_load((PROJECT_ROOT / "agents" / "rules.yaml").read_text())["rules"]
    referenced = [r for r in rules if r.get("runbook")]
    assert referenced
    for rule in referenced:
        doc = parse_document(PROJECT_ROOT / rule["runbook"], CATALOG_ACTIONS)
        alerts = rule["match"]["alertname"].split("|")
        assert set(alerts) <= set(doc.meta.alerts), f"{doc.path} misses alerts of rule {rule['name']}"
        if rule.get("action"):
            assert rule["action"]["name"] in doc.meta.actions


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("# Title\nno front matter\n", "no front matter"),
        ("---\nkind: runbook\ntitle: x\n# Title\nbody\n", "not closed"),
        (
            "---\nkind: runbook\ntitle: a: b\n---\nbody\n",
            "not valid YAML (line 3): mapping values are not allowed",
        ),
        ("---\n- a list\n---\nbody\n", "must be a mapping"),
        (
            "---\nkind: runbook\ntitle: x\nalert: [DiskSpaceLow]\n---\nbody\n",
            "alert: Extra inputs are not permitted",
        ),
        (
            "---\nkind: runbook\ntitle: x\nactions: [reboot_host]\n---\nbody\n",
            "['reboot_host'] are not in the catalog",
        ),
        (
            "---\nkind: runbook\ntitle: x\nalerts: DiskSpaceLow\n---\nbody\n",
            "alerts: Input should be a valid list",
        ),
        ("---\nkind: playbook\ntitle: x\n---\nbody\n", "kind: Input should be 'runbook' or 'postmortem'"),
        ("---\nkind: runbook\nid: Disk Space\ntitle: x\n---\nbody\n", "is not '<kind>:<name>'"),
        ("---\nkind: runbook\nid: postmortem:disk\ntitle: x\n---\nbody\n", "must start with 'runbook:'"),
        ("---\nkind: runbook\nalerts: ['bad name!']\n---\n# T\nbody\n", "is not a plain name"),
        ("---\nkind: runbook\ntitle: x\n---\n\n\n", "no text after the front matter"),
        ("---\nkind: runbook\n---\nno title here\n", "no title"),
    ],
)
def test_malformed_files_raise_errors_naming_path_and_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write(tmp_path / "runbooks", "bad.md", text)
    with pytest.raises(DocumentError) as caught:
        parse_document(path, CATALOG_ACTIONS)
    assert caught.value.path == str(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert problem in str(caught.value)


def test_non_utf8_and_missing_kind_outside_known_folders(tmp_path: Path) -> None:
    binary = write(tmp_path / "runbooks", "latin1.md", GOOD_FRONT.encode() + "caf\xe9".encode("latin-1"))
    with pytest.raises(DocumentError, match="not UTF-8"):
        parse_document(binary)
    loose = write(tmp_path / "notes", "x.md", "---\ntitle: x\n---\nbody\n")
    with pytest.raises(DocumentError, match="no `kind`"):
        parse_document(loose)
    # The folder name supplies the kind.
    assert (
        parse_document(write(tmp_path / "postmortems", "y.md", "---\ntitle: y\n---\nbody\n")).kind
        == "postmortem"
    )


def test_chunks_follow_sections_and_long_sections_split_at_paragraphs(tmp_path: Path) -> None:
    paragraph = "Free space on /var keeps falling because rotated logs are never deleted. " * 6
    long_section = "\n\n".join(paragraph.strip() for _ in range(5))
    body = "# Disk full\nIntro line.\n\n## Triage\nCheck du.\n\n"
    body += f"## Remediation\n{long_section}\n\n## Verify\nOK.\n"
    doc = parse_document(write(tmp_path / "runbooks", "disk-full.md", GOOD_FRONT + body), CATALOG_ACTIONS)
    assert doc.id == "runbook:disk-full"
    assert doc.title == "Disk full"
    sections = [c.section for c in doc.chunks]
    assert sections[:2] == ["Overview", "Triage"]
    assert sections[-1] == "Verify"
    remediation = [c for c in doc.chunks if c.section == "Remediation"]
    assert len(remediation) >= 2, "a long section is split"
    assert all(len(c.text) <= MAX_CHUNK_CHARS for c in remediation)
    assert "".join(c.text for c in remediation).replace("\n", "").replace(" ", "") == long_section.replace(
        "\n", ""
    ).replace(" ", "")
    assert [c.index for c in doc.chunks] == list(range(len(doc.chunks)))
    assert doc.chunks[1].id == "runbook:disk-full#1"
    # The indexed text says what a lone chunk is about.
    assert doc.chunks[1].indexed_text.startswith("Disk full\nTriage\n")
    assert "alerts: DiskSpaceLow" in doc.chunks[1].indexed_text


def test_content_hash_follows_the_bytes(tmp_path: Path) -> None:
    path = write(tmp_path / "runbooks", "a.md", GOOD_FRONT + "# A\nbody\n")
    first = parse_document(path).content_hash
    assert parse_document(path).content_hash == first
    path.write_text(GOOD_FRONT + "# A\nbody changed\n")
    assert parse_document(path).content_hash != first


def test_discover_skips_readmes_and_underscored_folders(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "about")
    write(tmp_path / "_drafts", "x.md", "draft")
    keep = write(tmp_path / "runbooks", "a.md", "x")
    assert discover(tmp_path) == [keep]
    assert discover(keep) == [keep]
    assert all(re.search(r"\.md$", str(p)) for p in discover(KNOWLEDGE))
