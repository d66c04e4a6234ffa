"""Files operators hand Firebreak are parsed within bounds, refused with the file and key named.

Each loader (action catalog, policy data, topology, rules, knowledge front matter, audit
export for `--verify`) meets the same hostile documents: a YAML alias bomb (a billion
nodes from a few hundred bytes), nesting far past the limit, a huge scalar, a 5,000-digit
integer (Python's int conversion would raise a bare ValueError), a repeated key. Each is
refused quickly, through the loader's own error type, naming the file and the key.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agents.rules import RuleFileError, RuleReasoner
from cli.main import app
from memory.documents import parse_document
from memory.errors import DocumentError
from models.catalog import CatalogError
from policies.catalog import load_catalog
from policies.engine import PolicyEngine, PolicyLoadError
from rca.topology import Topology, TopologyError
from runtime.bounded import FILE_LIMITS, FileLimits, UnsafeFileError, load_json_file, load_yaml_text
from runtime.settings import PROJECT_ROOT

BOMB = "\n".join(
    ['base: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"level{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
)
HOSTILE = {
    # name: (YAML body under the key `hostile`, words the refusal must contain)
    "alias-bomb": (BOMB, ["alias", "level"]),
    "deep": ("hostile: " + "[" * 200 + "]" * 200, ["nesting deeper than 32", "hostile"]),
    "huge-scalar": ("hostile: " + "a" * 70_000, ["70000 characters", "hostile"]),
    "huge-int": ("hostile:\n  replicas: " + "7" * 5000, ["number of 5000", "hostile.replicas"]),
    "duplicate-key": ("hostile: 1\nother: 2\nhostile: 3", ["duplicate key", "hostile"]),
}


def write_catalog(tmp: Path, text: str) -> Callable[[], object]:
    (tmp / "catalog.yaml").write_text(text)
    return lambda: load_catalog(tmp)


def write_policy_data(tmp: Path, text: str) -> Callable[[], object]:
    for rego in (PROJECT_ROOT / "policies").glob("*.rego"):
        shutil.copy(rego, tmp / rego.name)
    (tmp / "data.yaml").write_text(text)
    return lambda: PolicyEngine.load(tmp)


def write_topology(tmp: Path, text: str) -> Callable[[], object]:
    (tmp / "topology.yaml").write_text(text)
    return lambda: Topology.load(tmp / "topology.yaml")


def write_rules(tmp: Path, text: str) -> Callable[[], object]:
    (tmp / "rules.yaml").write_text(text)
    return lambda: RuleReasoner.load(tmp / "rules.yaml")


def write_knowledge(tmp: Path, text: str) -> Callable[[], object]:
    (tmp / "runbook.md").write_text(f"---\n{text}\n---\n# Title\n\n## Steps\n\nRestart it.\n")
    return lambda: parse_document(tmp / "runbook.md")


LOADERS = {
    "catalog.yaml": (write_catalog, CatalogError),
    "data.yaml": (write_policy_data, PolicyLoadError),
    "topology.yaml": (write_topology, TopologyError),
    "rules.yaml": (write_rules, RuleFileError),
    "runbook.md": (write_knowledge, DocumentError),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("file_name", sorted(LOADERS))
def test_each_loader_refuses_hostile_yaml_naming_file_and_key(
    tmp_path: Path, file_name: str, case: str
) -> None:
    write, error_type = LOADERS[file_name]
    text, words = HOSTILE[case]
    load = write(tmp_path, text)
    started = time.monotonic()
    with pytest.raises(error_type) as caught:
        load()
    message = str(caught.value)
    assert time.monotonic() - started < 5, "refused in bounded time"
    assert file_name in message, message
    for word in words:
        assert word in message, (word, message)


def test_wrong_top_level_type_is_refused_naming_the_file(tmp_path: Path) -> None:
    for file_name, (write, error_type) in LOADERS.items():
        load = write(tmp_path, "- just\n- a list")
        with pytest.raises(error_type) as caught:
            load()
        assert file_name in str(caught.value), str(caught.value)


def test_aliases_within_the_budget_still_load() -> None:
    shared = "defaults: &d {team: payments, tier: '1'}\nservices:\n" + "".join(
        f"  s{i}: *d\n" for i in range(100)
    )
    data = load_yaml_text(shared, "topology.yaml")
    assert data["services"]["s99"] == {"team": "payments", "tier": "1"}


def test_the_repository_files_load_within_the_bounds() -> None:
    assert load_catalog(PROJECT_ROOT / "playbooks").actions
    assert PolicyEngine.load(PROJECT_ROOT / "policies") is not None
    assert RuleReasoner.load(PROJECT_ROOT / "agents" / "rules.yaml").rules
    for doc in sorted((PROJECT_ROOT / "knowledge").rglob("*.md")):
        if doc.name != "README.md" and "_drafts" not in doc.parts:
            parse_document(doc)


def test_file_size_is_read_bounded(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_text("[" + ",".join(["1"] * 5000) + "]")
    with pytest.raises(UnsafeFileError, match=r"larger than 1000 bytes") as caught:
        load_json_file(big, FileLimits(max_bytes=1000))
    assert caught.value.source == str(big)
    assert len(load_json_file(big, FILE_LIMITS)) == 5000


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[" * 100_000, ["nesting deeper than 32"]),
        (b'{"entries": [{"seq": ' + b"7" * 5000 + b"}]}", ["entries.0.seq", "5000 digits"]),
        (b'{"head": "a", "head": "b"}', ["duplicate key", "head"]),
        (b'{"entries": "\xff"}', ["not UTF-8"]),
    ],
)
def test_audit_verify_refuses_hostile_exports_naming_file_and_key(
    tmp_path: Path, body: bytes, words: list[str]
) -> None:
    export = tmp_path / "audit.json"
    export.write_bytes(body)
    result = CliRunner().invoke(app, ["audit", "--verify", str(export)])
    assert result.exit_code == 1, result.output
    output = result.output
    assert "audit.json" in output, output
    for word in words:
        assert word in output, (word, output)


def test_audit_verify_still_reads_a_real_export(tmp_path: Path) -> None:
    export = tmp_path / "audit.json"
    export.write_text(json.dumps({"entries": [], "head": "x"}))
    result = CliRunner().invoke(app, ["audit", "--verify", str(export)])
    assert "not readable JSON" not in result.output, result.output
