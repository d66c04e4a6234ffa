"""Notifications through a real Temporal worker to local HTTP receivers.

The receivers stand in for Slack, Jira and ServiceNow (the one stand-in the issue allows):
each speaks the endpoints `integrations/notify.py` uses and records every request, so the
exact payloads are asserted. `NotifyProbe` calls `workflows.notifier.Notifier` the
way the incident workflow does: `send` per event without waiting, `close` at the end.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import BaseModel, SecretStr
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.notify import NotifyActivities
from integrations.notify import NotifyConfig
from models.agents import ProposedAction, TriageResult
from models.alert import AlertmanagerAlert, Severity
from models.incident import IncidentState, Outcome, Phase, Plan
from models.notify import NotifyChannel, NotifyEvent, NotifyResult
from models.policy import PolicyDecision, PolicyVerdict
from runtime import metrics
from runtime.tracing import FirebreakInterceptor
from tests.payloads import alertmanager_alert
from tests.secret_scan import stored_text
from worker import notify_activities
from workflows.notifier import Notifier

pytestmark = pytest.mark.integration

UI = "http://ui.example.test:8233"


# --- the receivers ------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


Reply = tuple[int, Any]
Route = Callable[[Request], Reply]


@dataclass
class Receiver:
    """A local HTTP server: routes requests, records them, and can fail on purpose."""

    route: Route
    requests: list[Request] = field(default_factory=list)
    # (method, path regex, status): answer the next matching request with `status` after
    # handling it, as if the answer was lost on the way back.
    lose_answers: list[tuple[str, str, int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                parts = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query={k: v[0] for k, v in parse_qs(parts.query).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=json.loads(raw) if raw else None,
                )
                with receiver._lock:
                    receiver.requests.append(request)
                    status, body = receiver.route(request)
                    for rule in receiver.lose_answers:
                        if rule[0] == request.method and re.fullmatch(rule[1], request.path):
                            receiver.lose_answers.remove(rule)
                            status, body = rule[2], {"errorMessages": ["upstream timeout"]}
                            break
                payload = (
                    b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
                )
                self.send_response(status)
                self.send_header(
                    "content-type", "text/plain" if isinstance(body, bytes) else "application/json"
                )
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def calls(self, method: str, pattern: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class Jira:
    """Jira's REST API v2: enhanced JQL search, issues, comments, label updates."""

    auth: str
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, list[str]] = field(default_factory=dict)

    def __call__(self, r: Request) -> Reply:
        if r.headers.get("authorization") != self.auth:
            return 401, {"errorMessages": ["not authenticated"]}
        if r.method == "GET" and r.path == "/rest/api/2/search/jql":
            label = re.fullmatch(r'labels = "([^"]+)" ORDER BY created ASC', r.query["jql"])
            assert label, r.query
            found = [{"id": i["id"], "key": k} for k, i in self.issues.items() if label[1] in i["labels"]]
            return 200, {"issues": found[: int(r.query["maxResults"])], "isLast": True}
        if r.method == "POST" and r.path == "/rest/api/2/issue":
            key = f"OPS-{len(self.issues) + 1}"
            self.issues[key] = {"id": str(10000 + len(self.issues)), **copy.deepcopy(r.body["fields"])}
            self.comments[key] = []
            return 201, {"id": self.issues[key]["id"], "key": key, "self": f"/rest/api/2/issue/{key}"}
        match = re.fullmatch(r"/rest/api/2/issue/([A-Z]+-\d+)(/comment)?", r.path)
        if match is None or match[1] not in self.issues:
            return 404, {"errorMessages": ["Issue does not exist"]}
        key = match[1]
        if match[2] and r.method == "GET":
            bodies = self.comments[key]
            return 200, {
                "total": len(bodies),
                "comments": [{"id": str(i), "body": b} for i, b in enumerate(bodies)],
            }
        if match[2] and r.method == "POST":
            self.comments[key].append(r.body["body"])
            return 201, {"id": str(len(self.comments[key])), "body": r.body["body"]}
        if r.method == "PUT":
            for op in r.body["update"]["labels"]:
                if op["add"] not in self.issues[key]["labels"]:
                    self.issues[key]["labels"].append(op["add"])
            return 204, None
        return 405, {"errorMessages": ["method"]}


@dataclass
class ServiceNow:
    """ServiceNow's Table API: incident and sys_journal_field."""

    auth: str
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    journal: list[dict[str, str]] = field(default_factory=list)

    def _note(self, sys_id: str, text: str) -> None:
        self.journal.append(
            {"sys_id": uuid.uuid4().hex, "element_id": sys_id, "element": "work_notes", "value": text}
        )

    def __call__(self, r: Request) -> Reply:
        if r.headers.get("authorization") != self.auth:
            return 401, {"error": {"message": "User Not Authenticated"}, "status": "failure"}
        if r.path == "/api/now/table/incident" and r.method == "GET":
            query = dict(term.split("=", 1) for term in r.query["sysparm_query"].split("^"))
            found = [
                {"sys_id": s, "number": i["number"]}
                for s, i in self.incidents.items()
                if i.get("correlation_id") == query["correlation_id"]
            ]
            return 200, {"result": found[: int(r.query["sysparm_limit"])]}
        if r.path == "/api/now/table/incident" and r.method == "POST":
            sys_id = uuid.uuid4().hex
            number = f"INC{10001 + len(self.incidents):07d}"
            self.incidents[sys_id] = {"number": number, "state": "1", **copy.deepcopy(r.body)}
            if r.body.get("work_notes"):
                self._note(sys_id, r.body["work_notes"])
            return 201, {"result": {"sys_id": sys_id, "number": number}}
        match = re.fullmatch(r"/api/now/table/incident/([0-9a-f]+)", r.path)
        if match and r.method == "PATCH" and match[1] in self.incidents:
            fields = dict(r.body)
            if fields.get("work_notes"):
                self._note(match[1], fields.pop("work_notes"))
            self.incidents[match[1]].update(fields)
            return 200, {"result": {"sys_id": match[1]}}
        if r.path == "/api/now/table/sys_journal_field" and r.method == "GET":
            terms = r.query["sysparm_query"].split("^")
            element_id = terms[0].removeprefix("element_id=")
            like = terms[2].removeprefix("valueLIKE")
            found = [
                {"sys_id": j["sys_id"]}
                for j in self.journal
                if j["element_id"] == element_id and j["element"] == "work_notes" and like in j["value"]
            ]
            return 200, {"result": found[: int(r.query["sysparm_limit"])]}
        return 404, {"error": {"message": "No Record found"}, "status": "failure"}


def chat_route(path: str) -> Route:
    def route(r: Request) -> Reply:
        if r.method != "POST" or r.path != path:
            return 404, b"no_service"
        return 200, b"ok"

    return route


@dataclass
class Receivers:
    chat: Receiver
    jira: Receiver
    snow: Receiver
    jira_api: Jira
    snow_api: ServiceNow
    chat_path: str
    jira_token: str
    snow_password: str

    def config(self, **overrides: Any) -> NotifyConfig:
        values: dict[str, Any] = {
            "ui_url": UI,
            "timeout_seconds": 5.0,
            "chat_webhook_url": SecretStr(self.chat.url + self.chat_path),
            "jira_url": self.jira.url,
            "jira_user": "bot@example.com",
            "jira_api_token": SecretStr(self.jira_token),
            "jira_project": "OPS",
            "jira_issue_type": "Task",
            "servicenow_url": self.snow.url,
            "servicenow_user": "firebreak",
            "servicenow_password": SecretStr(self.snow_password),
            "servicenow_assignment_group": "sre",
        }
        values.update(overrides)
        return NotifyConfig(**values)

    @property
    def secrets(self) -> list[str]:
        return [self.chat_path.rsplit("/", 1)[1], self.jira_token, self.snow_password]


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    chat_path = f"/services/T0001/B0001/{secrets.token_urlsafe(18)}"
    jira_token = "jira-" + secrets.token_hex(12)
    snow_password = "snow-" + secrets.token_hex(12)
    jira_api = Jira(auth=basic("bot@example.com", jira_token))
    snow_api = ServiceNow(auth=basic("firebreak", snow_password))
    group = Receivers(
        chat=Receiver(chat_route(chat_path)).start(),
        jira=Receiver(jira_api).start(),
        snow=Receiver(snow_api).start(),
        jira_api=jira_api,
        snow_api=snow_api,
        chat_path=chat_path,
        jira_token=jira_token,
        snow_password=snow_password,
    )
    try:
        yield group
    finally:
        for receiver in (group.chat, group.jira, group.snow):
            receiver.stop()


# --- the probe workflow: the incident's calls, nothing else -------------------------------------


class ProbeInput(BaseModel):
    state: IncidentState
    events: list[NotifyEvent]  # sent in this order before the close
    outcome: Outcome
    reason: str


class ProbeResult(BaseModel):
    results: list[NotifyResult]
    failures: list[str]
    tickets: dict[NotifyChannel, str]


@workflow.defn(name="NotifyProbe")
class NotifyProbe:
    @workflow.run
    async def run(self, input: ProbeInput) -> ProbeResult:
        state = input.state
        notifier = Notifier()
        for event in input.events:
            if event == NotifyEvent.APPROVAL_NEEDED:
                state.phase = Phase.AWAITING_APPROVAL
            notifier.send(event, state)
            # The incident goes on at once: a timer stands for the work between events.
            await workflow.sleep(0.05)
        state.phase = Phase.CLOSED
        state.outcome = input.outcome
        state.closed_at = workflow.now()
        await notifier.close(state, input.reason)
        return ProbeResult(results=notifier.results, failures=notifier.failures, tickets=notifier.tickets)


def incident_state(service: str) -> IncidentState:
    alert = AlertmanagerAlert.model_validate(alertmanager_alert("KubePodCrashLooping", service)).to_alert()
    action = ProposedAction(action="restart_service", params={"service": service}, target=service, risk="low")
    plan = Plan(actions=[action])
    return IncidentState(
        incident_id=f"incident-prod-{service}",
        key=f"prod-{service}",
        phase=Phase.TRIAGE,
        opened_at=datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
        severity=Severity.P1,
        alerts={alert.fingerprint: alert},
        triage=TriageResult(
            reasoner="rules",
            confidence=0.9,
            severity=Severity.P1,
            category="availability",
            services=[service],
            summary=f"{service} is crash-looping",
        ),
        plan=plan,
        plan_hash=plan.digest(),
        policy=PolicyDecision(
            verdict=PolicyVerdict.NEEDS_APPROVAL,
            reasons=["action class restart_service runs only with approval"],
            approver_group="sre",
            policy="firebreak.remediation",
        ),
    )


async def run_probe(client: Client, config: NotifyConfig, input: ProbeInput) -> tuple[ProbeResult, str]:
    task_queue = f"notify-{uuid.uuid4().hex[:8]}"
    notify = NotifyActivities(config)
    runner = SandboxedWorkflowRunner(
        # The probe lives in this test module: pass it (and what it imports) through.
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            "tests", "firebreak", "models", "activities"
        )
    )
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[NotifyProbe],
        activities=notify_activities(notify),
        interceptors=[FirebreakInterceptor()],
        workflow_runner=runner,
    ):
        handle = await client.start_workflow(
            NotifyProbe.run,
            input,
            id=input.state.incident_id,
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=90),
        )
        result = await handle.result()
        # The JSON (event structure) and every payload decoded, so a secret inside one would
        # show (in to_json() alone payloads are base64).
        fetched = await handle.fetch_history()
        history = fetched.to_json() + "\n" + await stored_text(fetched)
    await notify.aclose()
    return result, history


def counter(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


# --- tests --------------------------------------------------------------------------------------


async def test_incident_events_reach_chat_jira_and_servicenow(
    client: Client, receivers: Receivers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    service = f"checkout-{secrets.token_hex(3)}"
    state = incident_state(service)
    incident = state.incident_id
    sent_before = counter("firebreak_notifications_total", channel="jira", event="opened", result="created")

    result, history = await run_probe(
        client,
        receivers.config(),
        ProbeInput(
            state=state,
            events=[NotifyEvent.OPENED, NotifyEvent.APPROVAL_NEEDED],
            outcome=Outcome.REMEDIATED,
            reason="remediated and verified: alerts resolved",
        ),
    )

    assert result.failures == []
    assert [(r.channel.value, r.event.value, r.status) for r in result.results if r.channel == "jira"] == [
        ("jira", "opened", "created"),
        ("jira", "approval_needed", "updated"),
        ("jira", "closed", "updated"),
    ]
    link = f"{UI}/namespaces/default/workflows/{incident}"
    title = f"[P1] KubePodCrashLooping on {service}"
    plan_hash = state.plan_hash

    # Chat: one message per event, Slack's incoming-webhook format.
    messages = [r.body for r in receivers.chat.calls("POST", receivers.chat_path)]
    assert messages[0] == {
        "text": f"Incident prod-{service} opened: {title}",
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"Incident prod-{service} opened: {title}\n{service} is crash-looping\n"
                    f"Severity P1; services: {service}",
                },
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"<{link}|Open {incident} in Temporal>"}],
            },
        ],
    }
    approval_text = messages[1]["blocks"][0]["text"]["text"]
    assert approval_text == (
        f"Approval needed for incident prod-{service} (approver group sre): {title}\n"
        f'Plan {plan_hash}: restart_service on {service} {{"service": "{service}"}}\n'
        "Policy: needs_approval: action class restart_service runs only with approval\n"
        "Approve in the Temporal UI: More Actions &gt; Send a Signal &gt; approve (or reject) with data "
        f'{{"by": "YOUR NAME", "reason": "WHY", "plan_hash": "{plan_hash}"}}\n'
        f"Or: firebreak approve prod-{service} --by NAME --reason TEXT"
    )
    assert (
        messages[2]["text"]
        == f"Incident prod-{service} closed: remediated: remediated and verified: alerts resolved"
    )
    assert len(messages) == 3

    # Jira: one issue, labelled with the incident; a comment per later event; outcome label.
    (create,) = receivers.jira.calls("POST", "/rest/api/2/issue")
    label = f"firebreak-{incident}"
    assert create.body == {
        "fields": {
            "project": {"key": "OPS"},
            "issuetype": {"name": "Task"},
            "summary": f"Firebreak prod-{service}: {title}",
            "description": f"Incident prod-{service} opened: {title}\n{service} is crash-looping\n"
            f"Severity P1; services: {service}\n\nTemporal: {link}\n[firebreak:{incident}:opened]",
            "labels": ["firebreak", label],
        }
    }
    assert create.headers["authorization"] == receivers.jira_api.auth
    (key,) = receivers.jira_api.issues
    assert receivers.jira_api.issues[key]["labels"] == ["firebreak", label, "firebreak-remediated"]
    comments = receivers.jira_api.comments[key]
    assert [c.rsplit("\n", 1)[1] for c in comments] == [
        f"[firebreak:{incident}:approval_needed]",
        f"[firebreak:{incident}:closed]",
    ]
    assert (
        comments[0].split("\n")[0]
        == f"Approval needed for incident prod-{service} (approver group sre): {title}"
    )
    # The later events used the key from the first result: no second search.
    assert len(receivers.jira.calls("GET", "/rest/api/2/search/jql")) == 1
    assert result.tickets[NotifyChannel.JIRA] == key

    # ServiceNow: one incident correlated to ours, work notes per event, resolved on close.
    (snow_create,) = receivers.snow.calls("POST", "/api/now/table/incident")
    assert snow_create.body == {
        "short_description": f"Firebreak prod-{service}: {title}",
        "description": f"Incident prod-{service} opened: {title}\n{service} is crash-looping\n"
        f"Severity P1; services: {service}\n\nTemporal: {link}",
        "correlation_id": incident,
        "correlation_display": "Firebreak",
        "urgency": "1",
        "impact": "1",
        "work_notes": f"Incident prod-{service} opened: {title}\n{service} is crash-looping\n"
        f"Severity P1; services: {service}\n[firebreak:{incident}:opened]",
        "assignment_group": "sre",
    }
    (record,) = receivers.snow_api.incidents.values()
    assert record["state"] == "6" and record["close_code"] == "Solution provided"
    assert record["close_notes"] == "remediated: remediated and verified: alerts resolved"
    notes = [j["value"].rsplit("\n", 1)[1] for j in receivers.snow_api.journal]
    assert notes == [f"[firebreak:{incident}:{e}]" for e in ("opened", "approval_needed", "closed")]

    # Counted, and no credential anywhere: history, results, logs.
    after = counter("firebreak_notifications_total", channel="jira", event="opened", result="created")
    assert after == sent_before + 1
    logs = caplog.text
    for secret in receivers.secrets:
        assert secret not in history
        assert secret not in logs
        assert secret not in result.model_dump_json()


async def test_retry_after_a_lost_answer_never_opens_a_second_ticket(
    client: Client, receivers: Receivers
) -> None:
    # Each create/comment/note is made, then its answer is "lost" (500): Temporal retries.
    receivers.jira.lose_answers += [
        ("POST", "/rest/api/2/issue", 502),
        ("POST", r"/rest/api/2/issue/.+/comment", 500),
    ]
    receivers.snow.lose_answers += [
        ("POST", "/api/now/table/incident", 503),
        ("PATCH", "/api/now/table/incident/[0-9a-f]+", 500),
    ]
    state = incident_state(f"orders-{secrets.token_hex(3)}")
    result, _ = await run_probe(
        client,
        receivers.config(chat_webhook_url=None),
        ProbeInput(
            state=state,
            events=[NotifyEvent.OPENED],
            outcome=Outcome.ESCALATED,
            reason="no approval within 3600s; escalated to a human",
        ),
    )
    assert result.failures == []
    assert len(receivers.jira_api.issues) == 1, "the retry found the issue instead of opening another"
    assert len(receivers.jira.calls("POST", "/rest/api/2/issue")) == 1
    assert len(receivers.jira.calls("GET", "/rest/api/2/search/jql")) == 2, "the retry searched first"
    (key,) = receivers.jira_api.issues
    assert len(receivers.jira.calls("POST", r"/rest/api/2/issue/.+/comment")) == 1
    assert len(receivers.jira_api.comments[key]) == 1, "the comment was not written twice"
    assert receivers.jira_api.issues[key]["labels"][-1] == "firebreak-escalated"
    assert len(receivers.snow_api.incidents) == 1
    (record,) = receivers.snow_api.incidents.values()
    assert record["urgency"] == "1", "escalation raises the urgency"
    assert record["state"] == "1", "an escalated incident stays open for the human"
    notes = [j["value"].rsplit("\n", 1)[1] for j in receivers.snow_api.journal]
    assert notes == [f"[firebreak:{state.incident_id}:opened]", f"[firebreak:{state.incident_id}:escalated]"]
    statuses = {(r.channel.value, r.event.value): r.status for r in result.results}
    assert statuses == {
        # Each second attempt found what the first one did: by label, correlation_id, marker.
        ("jira", "opened"): "exists",
        ("jira", "escalated"): "exists",
        ("servicenow", "opened"): "exists",
        ("servicenow", "escalated"): "exists",
    }


async def test_receivers_down_never_block_the_workflow(client: Client, receivers: Receivers) -> None:
    for receiver in (receivers.jira, receivers.snow):
        receiver.stop()  # connection refused: retried, then given up
    state = incident_state(f"cart-{secrets.token_hex(3)}")
    started = datetime.now(UTC)
    result, history = await run_probe(
        client,
        # Wrong chat credentials: rejected (404 from the webhook), not retried.
        receivers.config(chat_webhook_url=SecretStr(receivers.chat.url + "/services/T0001/B0001/wrong")),
        ProbeInput(
            state=state, events=[NotifyEvent.OPENED], outcome=Outcome.REJECTED, reason="rejected by bob"
        ),
    )
    elapsed = (datetime.now(UTC) - started).total_seconds()
    assert result.results == []
    assert sorted(f.split(":")[0] for f in result.failures) == [
        "chat closed",
        "chat opened",
        "jira closed",
        "jira opened",
        "servicenow closed",
        "servicenow opened",
    ]
    assert all("unreachable: ConnectError" in f for f in result.failures if not f.startswith("chat"))
    assert all("HTTP 404" in f for f in result.failures if f.startswith("chat"))
    assert len(receivers.chat.calls("POST", "/services/T0001/B0001/wrong")) == 2, "a rejection is not retried"
    assert elapsed < 30
    assert "/services/T0001/B0001/wrong" not in history


async def test_no_channel_configured_costs_one_activity(client: Client) -> None:
    state = incident_state(f"auth-{secrets.token_hex(3)}")
    result, history = await run_probe(
        client,
        NotifyConfig(ui_url=UI),
        ProbeInput(
            state=state,
            events=[NotifyEvent.OPENED, NotifyEvent.APPROVAL_NEEDED],
            outcome=Outcome.REMEDIATED,
            reason="ok",
        ),
    )
    assert result.results == [] and result.failures == []
    scheduled = re.findall(r'"activityType":\s*\{\s*"name":\s*"([a-z_]+)"', history)
    assert scheduled == ["notify_channels"]


async def test_a_close_is_announced_only_after_an_open_but_an_escalation_always(
    client: Client, receivers: Receivers
) -> None:
    config = receivers.config(jira_url=None, servicenow_url=None)
    quiet, _ = await run_probe(
        client,
        config,
        ProbeInput(
            state=incident_state(f"quiet-{secrets.token_hex(3)}"),
            events=[],
            outcome=Outcome.TRANSIENT,
            reason="every alert resolved within the settle window",
        ),
    )
    assert quiet.results == [] and receivers.chat.requests == [], "nobody was told it opened"
    loud, _ = await run_probe(
        client,
        config,
        ProbeInput(
            state=incident_state(f"loud-{secrets.token_hex(3)}"),
            events=[],
            outcome=Outcome.ESCALATED,
            reason="no rule covers this alert; a human decides",
        ),
    )
    assert [(r.channel.value, r.event.value, r.status) for r in loud.results] == [
        ("chat", "escalated", "sent")
    ]
    (message,) = receivers.chat.requests
    assert message.body["text"].endswith("escalated to a human: no rule covers this alert; a human decides")
