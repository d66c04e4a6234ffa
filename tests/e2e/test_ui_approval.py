"""A human approves an incident in the Temporal Web UI, in a real browser.

Debian's Chromium (scripts/install-system-deps.sh; never a downloaded browser) driven by
Playwright, against a Temporal dev server with its Web UI, the real worker, OpenBao,
Ansible and the webhook API. The test reads the pending approval from the workflow's
Current Details, sends `approve` through the UI's own Send a Signal dialog, and watches
the incident remediate and close. Screenshots go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.approvals import token_digest
from audit.timeline import build_timeline
from models.constants import SEARCH_ATTRIBUTES, SIGNAL_APPROVE
from models.incident import Outcome, Phase
from runtime.settings import PROJECT_ROOT, Settings
from tests.conftest import VaultServer, free_port, require_binary
from tests.integration.conftest import RecordingCredentials, Stack, awaiting, open_incident, resolve
from tests.integration.test_policy_flow import policies_with
from worker import build_worker

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


def frame(name: str) -> str:
    """The UI renders markdown metadata (summary, current details) in frames with these names."""
    return f'iframe#{name}, iframe[name="{name}"]'


PAYLOAD = re.compile(
    r'\{"by": "YOUR NAME", "reason": "WHY", "plan_hash": "(?P<hash>[0-9a-f]+)", '
    r'"code": "YOUR APPROVAL CODE"\}'
)
APPROVER = f"ui-{secrets.token_hex(3)}@example.com"
APPROVER_TOKEN = secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
async def ui_server() -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    """A dev server of its own: the session's runs headless, this one serves the Web UI."""
    port = free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=require_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        ui=True,
        ui_port=port,
    )
    try:
        yield env, f"http://127.0.0.1:{port}"
    finally:
        await env.shutdown()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-system-deps.sh (or `make test`)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def stack(
    ui_server: tuple[WorkflowEnvironment, str], settings: Settings, vault: VaultServer, tmp_path: Path
) -> AsyncIterator[Stack]:
    env, _ = ui_server
    # Production approvals: a named roster, and an approval code for the authenticated approver.
    tokens_file = tmp_path / "approvers.yaml"
    tokens_file.write_text(f"{APPROVER}: {token_digest(APPROVER_TOKEN)}\n")
    configured = settings.model_copy(
        update={
            "embeddings": "sparse",
            "approval_timeout_seconds": 300,
            "verify_window_seconds": 60,
            "approval_auth": "code",
            "approver_tokens_file": tokens_file,
            "policies_dir": policies_with(
                tmp_path / "policies", approvers={"sre": [APPROVER], "sre-leads": ["lead@example.com"]}
            ),
        }
    )
    credentials = RecordingCredentials(vault.addr, vault.worker_token)
    worker = build_worker(env.client, configured, credentials)
    task = asyncio.create_task(worker.run())

    async def client_factory() -> Client:
        return env.client

    app = create_app(configured, client_factory)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
    assert configured.api_token is not None
    try:
        yield Stack(
            client=env.client,
            settings=configured,
            http=http,
            credentials=credentials,
            worker=worker,
            headers={"Authorization": f"Bearer {configured.api_token.get_secret_value()}"},
        )
    finally:
        await http.aclose()
        await worker.shutdown()
        await task


async def open_workflow(page: Page, ui: str, workflow_id: str) -> None:
    await page.goto(f"{ui}/namespaces/default/workflows/{workflow_id}", wait_until="load")
    await page.get_by_role("button", name="More Actions").wait_for()


async def current_details(page: Page) -> str:
    """The workflow's Current Details, as the UI renders them (markdown in a frame)."""
    await page.get_by_role("tab", name="User Metadata").click()
    body = page.frame_locator(frame("user-metadata-current-details")).locator("body")
    await expect(body).to_contain_text("Incident", timeout=30_000)
    return await body.inner_text()


async def test_approve_in_the_temporal_ui_and_watch_the_incident_close(
    ui_server: tuple[WorkflowEnvironment, str], browser: Browser, stack: Stack
) -> None:
    _, ui = ui_server
    ARTIFACTS.mkdir(exist_ok=True)
    service = f"checkout-{secrets.token_hex(4)}"
    incident_id = await open_incident(stack, service)
    state = await stack.wait_for(incident_id, awaiting, timeout=90)
    assert stack.restarts(service) == []

    page = await browser.new_page(viewport={"width": 1400, "height": 1500})
    page.set_default_timeout(30_000)
    await open_workflow(page, ui, incident_id)
    await expect(page.get_by_text("Running", exact=True).first).to_be_visible()

    # What is pending, and exactly which signal answers it, as a human sees it.
    details = await current_details(page)
    assert "awaiting_approval" in details
    assert "Pending: approval (group sre)" in details
    assert f"restart_service on {service}" in details
    match = PAYLOAD.search(details)
    assert match is not None, details
    assert match["hash"] == state.plan_hash
    # The API set the workflow's summary from the first alert: the UI shows it beside the details.
    summary = page.frame_locator(frame("user-metadata-summary")).locator("body")
    await expect(summary).to_have_text(f"P1 KubePodCrashLooping on {service}")
    await page.screenshot(path=str(ARTIFACTS / "ui-pending-approval.png"), full_page=True)

    # The approver authenticates to Firebreak with their personal token and gets a code bound
    # to this incident, this plan and them; then Send a Signal through the UI's own dialog,
    # with the one JSON object the API handed back.
    approver = APPROVER
    issued = await stack.http.post(
        f"/approvals/{incident_id}/code", headers={"Authorization": f"Bearer {APPROVER_TOKEN}"}
    )
    assert issued.status_code == 200, issued.text
    payload = {**issued.json()["signal"], "reason": "approved in the Temporal UI"}
    assert payload["by"] == approver and payload["plan_hash"] == match["hash"]
    await page.get_by_role("button", name="More Actions").click()
    await page.get_by_role("menuitem", name="Send a Signal").click()
    await page.get_by_test_id("signal-select-button").filter(visible=True).click()
    await page.get_by_role("option", name=SIGNAL_APPROVE, exact=True).click()
    await page.get_by_role("textbox", name="Data").fill(json.dumps(payload))
    await page.screenshot(path=str(ARTIFACTS / "ui-send-signal.png"))
    # Leaving the editor reformats a long payload and the dialog grows under the pointer: the
    # first click may only blur the editor. Click until the dialog closes (at most three).
    submit = page.get_by_role("button", name="Submit")
    for _ in range(3):
        await submit.click()
        try:
            await expect(submit).to_be_hidden(timeout=5_000)
            break
        except AssertionError:
            continue
    await expect(submit).to_be_hidden()

    state = await stack.wait_for(incident_id, lambda s: s.phase == Phase.VERIFYING, timeout=120)
    assert [(a.by, a.decision, a.authenticated_by) for a in state.approvals] == [
        (approver, "approved", "code")
    ]
    assert len(stack.restarts(service)) == 1, "the approved playbook ran once"
    await resolve(stack, service)  # what Alertmanager sends once the service is healthy
    result = await stack.handle(incident_id).result()
    assert result.outcome == Outcome.REMEDIATED

    # The UI shows it finished, and how.
    await open_workflow(page, ui, incident_id)
    await expect(page.get_by_text("Completed", exact=True).first).to_be_visible()
    details = await current_details(page)
    assert "closed (remediated)" in details
    assert "Pending: approval" not in details
    await page.screenshot(path=str(ARTIFACTS / "ui-incident-closed.png"), full_page=True)

    # The audit attributes the approval to the human and to the client that delivered it.
    # (Temporal UI 2.54 without auth sends no identity of its own: the audit says so.)
    history = await stack.handle(incident_id).fetch_history()
    (signal,) = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and e.workflow_execution_signaled_event_attributes.signal_name == SIGNAL_APPROVE
    ]
    assert signal.identity != stack.client.identity, "sent by the UI, not by this test's client"
    entries = await build_timeline(history, stack.client.data_converter)
    (approval,) = [e for e in entries if e.kind == SIGNAL_APPROVE]
    assert approval.details["by"] == approver and approval.details["identity"] == signal.identity
    assert f"approve by {approver}: approved in the Temporal UI [plan {state.plan_hash}]" in approval.summary
