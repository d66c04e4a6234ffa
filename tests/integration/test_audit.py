"""The audit: rebuilt from history alone, rendered as text, JSON and HTML, tamper-evident.

From the committed histories (tests/histories/, what incidents really recorded) and from
a live incident whose worker is gone by the time the audit runs, through the real CLI.
"""

from __future__ import annotations

import copy
import json
import secrets
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import html5lib
import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from audit.chain import export, verify_export
from audit.render import render_html, render_text
from audit.timeline import AuditEntry, build_timeline
from models.constants import SIGNAL_APPROVE
from models.incident import ApprovalSignal, Outcome, Phase
from tests.integration.conftest import StackFactory, awaiting, open_incident, resolve, unique_service
from tests.integration.test_cli import firebreak

pytestmark = pytest.mark.integration

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


async def stored(path: Path) -> tuple[WorkflowHistory, list[AuditEntry]]:
    recorded = json.loads(path.read_text())
    history = WorkflowHistory.from_json(recorded.pop("workflowId"), recorded)
    return history, await build_timeline(history, pydantic_data_converter)


class Structure(HTMLParser):
    """Collects what a self-contained page must not have, and what it must."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.references: list[tuple[str, str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "poster", "data") or (value and "url(" in value):
                self.references.append((tag, name, value or ""))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_page(page: str, entries: int) -> Structure:
    # html5lib in strict mode raises on any parse error: the page is valid HTML5 syntax.
    document = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(page)
    assert document.find("head/title") is not None and document.find("head/meta[@charset]") is not None
    assert len(document.findall("body/main/table/tbody/tr")) == entries
    structure = Structure()
    structure.feed(page)
    assert structure.references == [], "self-contained: no external (or any) references"
    assert "script" not in structure.tags and "link" not in structure.tags and "img" not in structure.tags
    assert "http://" not in page.split("</style>")[0].split("<style>")[1], "no remote CSS"
    return structure


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_audit_from_a_stored_history(path: Path) -> None:
    history, entries = await stored(path)
    kinds = [e.kind for e in entries]
    assert kinds[0] == "opened" and kinds[-2] == "closed" and kinds[-1] == "totals"
    assert "alerts" in kinds
    if path.stem != "continued_as_new":  # a continued run starts after triage and policy
        assert "triage" in kinds and "evaluate_policy" in kinds
    assert {"phase", "attributes"} <= set(kinds)

    document = export(history.workflow_id, None, entries)
    assert verify_export(document).ok
    assert verify_export(json.loads(json.dumps(document))).ok, "survives a JSON round trip"
    text = render_text(history.workflow_id, entries, document["head"])
    assert document["head"] in text

    page = render_html(document)
    structure = check_page(page, len(entries))
    shown = " ".join(structure.text)
    assert history.workflow_id in shown
    for entry in entries:
        assert entry.summary.split("\n")[0] in shown

    closed = entries[-2].details
    totals = entries[-1].details
    assert totals["outcome"] == closed["outcome"]
    if closed["outcome"] == "remediated":
        assert any(e.kind == "approve" and e.details["by"] and e.details["identity"] for e in entries)
        # The check-mode preview shown for approval holds no credential; the real run does.
        runs = [e for e in entries if e.kind == "remediation" and not e.details.get("check_mode")]
        (remediation,) = runs
        assert remediation.details["credential_accessor"] and remediation.details["credential_revoked"]
        assert "credential accessor" in remediation.summary
        assert totals["actions_successful"] >= 1
    if path.stem == "claude_remediated":
        assert totals["llm_calls"] == 4 and totals["llm_cost_usd"] > 0
        assert "$0.0481" in entries[-1].summary


async def test_hash_chain_names_the_first_changed_entry() -> None:
    history, entries = await stored(HISTORIES[0])
    document = export(history.workflow_id, "run-1", entries)
    head = document["head"]
    assert verify_export(document, expect_head=head).ok

    def tampered(change: Any) -> Any:
        forged = copy.deepcopy(document)
        change(forged)
        return verify_export(forged)

    edited = tampered(lambda d: d["entries"][5].update(summary=d["entries"][5]["summary"] + " (edited)"))
    assert not edited.ok and edited.bad_entry == 5 and "edited" in (edited.problem or "")
    approve = next(i for i, e in enumerate(document["entries"]) if e["kind"] == "approve")
    who = tampered(lambda d: d["entries"][approve]["details"].update(by="mallory"))
    assert not who.ok and who.bad_entry == approve

    # Even with the hash recomputed, the next entry no longer links to it.
    def rehash(d: dict[str, Any]) -> None:
        import hashlib

        from audit.chain import canonical

        entry = d["entries"][3]
        entry["summary"] = "nothing happened"
        body = {k: v for k, v in entry.items() if k != "hash"}
        entry["hash"] = hashlib.sha256(canonical(body)).hexdigest()

    relinked = tampered(rehash)
    assert not relinked.ok and relinked.bad_entry == 4 and "does not link" in (relinked.problem or "")
    removed = tampered(lambda d: d["entries"].pop(2))
    assert not removed.ok and removed.bad_entry == 2
    swapped = tampered(lambda d: d["entries"].insert(1, d["entries"].pop(2)))
    assert not swapped.ok and swapped.bad_entry == 1
    renamed = tampered(lambda d: d.update(incident="incident-someone-else"))
    assert not renamed.ok and renamed.bad_entry == 0
    truncated = tampered(lambda d: d["entries"].pop())
    assert not truncated.ok and "count" in (truncated.problem or "")

    # A forger who rebuilds a shorter chain consistently is caught by the published head.
    shorter = export(history.workflow_id, "run-1", entries[:-2])
    assert verify_export(shorter).ok
    caught = verify_export(shorter, expect_head=head)
    assert not caught.ok and head in (caught.problem or "")


def test_html_escapes_everything() -> None:
    hostile = '<script>alert("x")</script><img src=http://evil.example/x.png>'
    entries = [
        AuditEntry(
            at=datetime(2026, 1, 1, tzinfo=UTC), kind="alerts", summary=hostile, details={"v": hostile}
        ),
        AuditEntry(at=datetime(2026, 1, 1, tzinfo=UTC), kind='x"><b', summary="ok", details={}),
    ]
    page = render_html(export(f"incident-{hostile}", None, entries))
    structure = check_page(page, 2)
    assert "script" not in structure.tags and "img" not in structure.tags and "b" not in structure.tags
    assert hostile in " ".join(structure.text), "shown as text"


async def test_live_incident_audit_through_the_cli_after_the_worker_is_gone(
    make_stack: StackFactory, client: Client, tmp_path: Path
) -> None:
    stack = await make_stack()
    service = unique_service()
    incident_id = await open_incident(stack, service)
    state = await stack.wait_for(incident_id, awaiting)
    approver = f"erin-{secrets.token_hex(3)}@example.com"
    await stack.handle(incident_id).signal(
        SIGNAL_APPROVE, ApprovalSignal(by=approver, reason="matches runbook", plan_hash=state.plan_hash)
    )
    await stack.wait_for(incident_id, lambda s: s.phase == Phase.VERIFYING)
    await resolve(stack, service)
    assert (await stack.handle(incident_id).result()).outcome == Outcome.REMEDIATED
    await stack.worker.shutdown()
    key = incident_id.removeprefix("incident-")

    exported = tmp_path / "audit.json"
    page = tmp_path / "audit.html"
    for fmt, target in (("json", exported), ("html", page)):
        run = await firebreak(client, "audit", key, "--format", fmt, "--output", str(target))
        assert run.returncode == 0, run.stderr
    document = json.loads(exported.read_text())
    entries = document["entries"]
    approval = next(e for e in entries if e["kind"] == "approve")
    assert approval["details"]["by"] == approver and approval["details"]["identity"]
    assert approval["details"]["plan_hash"] == state.plan_hash
    assert entries[-1]["kind"] == "totals" and entries[-1]["details"]["outcome"] == "remediated"
    (credential,) = stack.credentials.issued
    assert credential.accessor in exported.read_text()
    assert credential.token.get_secret_value() not in exported.read_text()
    assert document["run_id"] == (await stack.handle(incident_id).describe()).run_id

    shown = " ".join(check_page(page.read_text(), len(entries)).text)
    assert approver in shown and "matches runbook" in shown and credential.accessor in shown

    intact = await firebreak(client, "audit", "--verify", str(exported), "--expect-head", document["head"])
    assert intact.returncode == 0, intact.stderr
    assert f"OK, {len(entries)} entries, head {document['head']}" in intact.stdout
    approval["details"]["reason"] = "someone else's reason"
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document))
    caught = await firebreak(client, "audit", "--verify", str(forged))
    assert caught.returncode == 1
    assert f"entry {approval['seq']} (approve at {approval['at']})" in caught.stderr
    assert "edited" in caught.stderr

    # And the incident is listed by service and outcome through visibility.
    listed = await firebreak(client, "incidents", "--service", service, "--outcome", "remediated")
    assert listed.returncode == 0 and incident_id in listed.stdout, listed.stdout + listed.stderr
    other = await firebreak(client, "incidents", "--service", service, "--outcome", "rejected")
    assert "no incidents match" in other.stdout
    bad = await firebreak(client, "incidents", "--service", "x' OR 1=1")
    assert bad.returncode == 1 and "bad value" in bad.stderr
