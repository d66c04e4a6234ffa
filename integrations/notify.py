"""Chat (a Slack-compatible webhook), Jira and ServiceNow over HTTP: one client per channel.

Idempotent per incident, because the activity that calls a client can run twice (a retry
after a lost answer):

- Jira: the issue carries the label `firebreak-<incident id>`; an event searches it by
  JQL before creating, and each comment carries a marker `[firebreak:<incident>:<event>]`
  that is looked for before commenting. The issue key also travels back in the result,
  and later events pass it in (`NotifyInput.ticket`), so updates never depend on search.
- ServiceNow: `correlation_id` is the incident id (searched before creating); work notes
  carry the same marker, looked up in `sys_journal_field` before writing.
- Chat: a webhook cannot be searched; a message is re-sent only when its first POST got
  no success answer.

Failures raise `NotifyUnavailable` (connection errors, 408, 409, 425, 429, 5xx; `Retry-After`
honoured) or `NotifyRejected` (other 4xx, e.g. bad credentials), from integrations/errors.py.
Credentials are `SecretStr` and leave this module only as HTTP auth; the chat webhook URL is
itself a credential, so no error, log line or result names a URL it was given, and httpx's
own per-request log (which prints URLs) is kept at WARNING.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from integrations.errors import NotifyRejected, NotifyUnavailable
from models.constants import SIGNAL_APPROVE, SIGNAL_REJECT
from models.notify import NotifyChannel, NotifyEvent, NotifyInput, NotifyResult, NotifyStatus
from runtime.settings import Settings

# httpx logs every request's URL at INFO; a chat webhook's URL is a secret.
logging.getLogger("httpx").setLevel(logging.WARNING)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
MAX_RETRY_AFTER_SECONDS = 300.0
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
# ServiceNow incident fields: urgency/impact 1 (high) .. 3 (low); state 6 = Resolved.
_SNOW_PRIORITY = {"P1": ("1", "1"), "P2": ("2", "1"), "P3": ("2", "2"), "P4": ("3", "3")}
_SNOW_RESOLVED = "6"
_SNOW_CLOSE_CODES = {
    "remediated": "Solution provided",
    "transient": "Resolved by caller",
    "self_resolved": "Resolved by caller",
}
_SNOW_NO_RESOLUTION = "No resolution provided"


@dataclass(frozen=True)
class NotifyConfig:
    ui_url: str
    timeout_seconds: float = 10.0
    chat_webhook_url: SecretStr | None = None
    jira_url: str | None = None
    jira_user: str | None = None
    jira_api_token: SecretStr | None = None
    jira_project: str = "OPS"
    jira_issue_type: str = "Task"
    servicenow_url: str | None = None
    servicenow_user: str | None = None
    servicenow_password: SecretStr | None = None
    servicenow_assignment_group: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> NotifyConfig:
        return cls(
            ui_url=(settings.notify_ui_url or f"http://127.0.0.1:{settings.temporal_ui_port}").rstrip("/"),
            timeout_seconds=settings.notify_timeout_seconds,
            chat_webhook_url=settings.notify_slack_webhook_url,
            jira_url=settings.notify_jira_url.rstrip("/") if settings.notify_jira_url else None,
            jira_user=settings.notify_jira_user,
            jira_api_token=settings.notify_jira_api_token,
            jira_project=settings.notify_jira_project,
            jira_issue_type=settings.notify_jira_issue_type,
            servicenow_url=settings.notify_servicenow_url.rstrip("/")
            if settings.notify_servicenow_url
            else None,
            servicenow_user=settings.notify_servicenow_user,
            servicenow_password=settings.notify_servicenow_password,
            servicenow_assignment_group=settings.notify_servicenow_assignment_group,
        )

    def channels(self) -> list[NotifyChannel]:
        configured = []
        if self.chat_webhook_url is not None:
            configured.append(NotifyChannel.CHAT)
        if self.jira_url and self.jira_api_token is not None:
            configured.append(NotifyChannel.JIRA)
        if self.servicenow_url and self.servicenow_user and self.servicenow_password is not None:
            configured.append(NotifyChannel.SERVICENOW)
        return configured


def marker(input: NotifyInput) -> str:
    """Written into every comment / work note, and looked for before writing one."""
    return f"[firebreak:{input.incident_id}:{input.event.value}]"


def jira_label(incident_id: str) -> str:
    return _LABEL_UNSAFE.sub("-", f"firebreak-{incident_id}")[:255]


def ui_link(ui_url: str, namespace: str, incident_id: str) -> str:
    return f"{ui_url}/namespaces/{quote(namespace, safe='')}/workflows/{quote(incident_id, safe='')}"


def message_lines(input: NotifyInput) -> list[str]:
    """The event in plain lines; each channel formats them its own way."""
    key = input.key
    if input.event == NotifyEvent.OPENED:
        lines = [f"Incident {key} opened: {input.title}"]
        if input.summary:
            lines.append(input.summary)
        lines.append(f"Severity {input.severity or '?'}; services: {', '.join(input.services) or '?'}")
    elif input.event == NotifyEvent.APPROVAL_NEEDED:
        group = f" (approver group {input.approver_group})" if input.approver_group else ""
        payload = json.dumps({"by": "YOUR NAME", "reason": "WHY", "plan_hash": input.plan_hash})
        lines = [f"Approval needed for incident {key}{group}: {input.title}"]
        lines += [f"Plan {input.plan_hash}: {step}" for step in input.plan]
        if input.policy:
            lines.append(f"Policy: {input.policy}")
        lines.append(
            f"Approve in the Temporal UI: More Actions > Send a Signal > {SIGNAL_APPROVE} "
            f"(or {SIGNAL_REJECT}) with data {payload}"
        )
        lines.append(f"Or: firebreak approve {key} --by NAME --reason TEXT")
    elif input.event == NotifyEvent.ESCALATED:
        lines = [f"Incident {key} escalated to a human: {input.reason or input.title}"]
        if input.summary:
            lines.append(input.summary)
    else:
        lines = [f"Incident {key} closed: {input.outcome or '?'}: {input.reason or ''}".rstrip(": ")]
    if input.llm_cost_usd:
        lines.append(f"LLM cost so far: ${input.llm_cost_usd:.4f}")
    return lines


def _escape_mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chat_payload(input: NotifyInput, link: str) -> dict[str, Any]:
    """Slack's incoming-webhook format (Mattermost and others read `text`)."""
    lines = message_lines(input)
    body = "\n".join(_escape_mrkdwn(line) for line in lines)
    return {
        "text": lines[0],
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": body}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"<{link}|Open {input.incident_id} in Temporal>"}],
            },
        ],
    }


class ChannelClient:
    """A channel's HTTP calls: failures become NotifyUnavailable / NotifyRejected."""

    channel: ClassVar[NotifyChannel]

    def __init__(self, config: NotifyConfig, http: httpx.AsyncClient) -> None:
        self._config = config
        self._http = http

    @property
    def configured(self) -> bool:
        return self.channel in self._config.channels()

    async def send(self, input: NotifyInput, link: str) -> NotifyResult:
        """Deliver one event (only on a configured channel); `link` opens the incident in the UI."""
        raise NotImplementedError

    async def _call(
        self, method: str, url: str, *, missing_ok: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """One request; failures become NotifyUnavailable / NotifyRejected, never naming the URL.

        With `missing_ok`, a 404 raises `_NotFound` for the caller to try something else.
        """
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise NotifyUnavailable(f"{self.channel.value} unreachable: {type(exc).__name__}") from None
        status = response.status_code
        if status < 300:
            return response
        if status == 404 and missing_ok:
            raise _NotFound()
        detail = f"{self.channel.value} answered {method} with HTTP {status}{_error_text(response)}"
        if status in RETRYABLE_STATUS or status >= 500:
            raise NotifyUnavailable(detail, retry_after=_retry_after(response))
        raise NotifyRejected(detail)


class ChatClient(ChannelClient):
    channel = NotifyChannel.CHAT

    async def send(self, input: NotifyInput, link: str) -> NotifyResult:
        """Post the event to the Slack-compatible webhook."""
        url = self._config.chat_webhook_url
        assert url is not None, "send only to a configured channel"
        payload = chat_payload(input, link)
        await self._call("POST", url.get_secret_value(), json=payload)
        return NotifyResult(channel=NotifyChannel.CHAT, event=input.event, status="sent")


class JiraClient(ChannelClient):
    channel = NotifyChannel.JIRA

    async def send(self, input: NotifyInput, link: str) -> NotifyResult:
        """Open the incident's Jira issue once; comment each later event once."""
        cfg = self._config
        assert cfg.jira_url, "send only to a configured channel"
        base = cfg.jira_url
        auth = self._jira_auth()
        label = jira_label(input.incident_id)
        key = input.ticket or await self._jira_find(base, auth, label)
        status: NotifyStatus = "exists"
        lines = message_lines(input)
        if key is None:
            created = await self._call(
                "POST",
                f"{base}/rest/api/2/issue",
                auth=auth,
                json={
                    "fields": {
                        "project": {"key": cfg.jira_project},
                        "issuetype": {"name": cfg.jira_issue_type},
                        "summary": f"Firebreak {input.key}: {input.title}"[:255],
                        "description": "\n".join([*lines, "", f"Temporal: {link}", marker(input)]),
                        "labels": ["firebreak", label],
                    }
                },
            )
            key = str(_json(created, NotifyChannel.JIRA).get("key") or "")
            if not key:
                raise NotifyUnavailable("jira created an issue but answered without its key")
            status = "created"
        elif input.event != NotifyEvent.OPENED:
            status = await self._jira_comment(base, auth, key, input, lines)
        if input.event in (NotifyEvent.ESCALATED, NotifyEvent.CLOSED):
            tag = _LABEL_UNSAFE.sub("-", f"firebreak-{input.outcome or input.event.value}")
            await self._call(
                "PUT",
                f"{base}/rest/api/2/issue/{quote(key, safe='')}",
                auth=auth,
                json={"update": {"labels": [{"add": tag}]}},
            )
        return NotifyResult(
            channel=NotifyChannel.JIRA,
            event=input.event,
            status=status,
            ticket=key,
            number=key,
            url=f"{base}/browse/{quote(key, safe='')}",
        )

    def _jira_auth(self) -> httpx.Auth:
        cfg = self._config
        assert cfg.jira_api_token is not None
        token = cfg.jira_api_token.get_secret_value()
        if cfg.jira_user:
            return httpx.BasicAuth(cfg.jira_user, token)  # Jira Cloud: email + API token
        return _Bearer(token)  # Jira Data Center: personal access token

    async def _jira_find(self, base: str, auth: httpx.Auth, label: str) -> str | None:
        params = {"jql": f'labels = "{label}" ORDER BY created ASC', "fields": "key", "maxResults": "1"}
        try:
            found = await self._call(
                "GET",
                f"{base}/rest/api/2/search/jql",
                auth=auth,
                params=params,
                missing_ok=True,
            )
        except _NotFound:
            # Jira Data Center has no enhanced search: the classic endpoint.
            found = await self._call("GET", f"{base}/rest/api/2/search", auth=auth, params=params)
        issues = _json(found, NotifyChannel.JIRA).get("issues") or []
        if issues and isinstance(issues[0], dict) and issues[0].get("key"):
            return str(issues[0]["key"])
        return None

    async def _jira_comment(
        self, base: str, auth: httpx.Auth, key: str, input: NotifyInput, lines: list[str]
    ) -> NotifyStatus:
        url = f"{base}/rest/api/2/issue/{quote(key, safe='')}/comment"
        existing = (
            _json(
                await self._call("GET", url, auth=auth, params={"maxResults": "1000"}),
                NotifyChannel.JIRA,
            ).get("comments")
            or []
        )
        tag = marker(input)
        if any(isinstance(c, dict) and tag in str(c.get("body", "")) for c in existing):
            return "exists"
        await self._call("POST", url, auth=auth, json={"body": "\n".join([*lines, tag])})
        return "updated"


class ServiceNowClient(ChannelClient):
    channel = NotifyChannel.SERVICENOW

    async def send(self, input: NotifyInput, link: str) -> NotifyResult:
        """Open the incident's ServiceNow incident once; work-note each later event once."""
        cfg = self._config
        assert cfg.servicenow_url and cfg.servicenow_user and cfg.servicenow_password is not None
        base = cfg.servicenow_url
        auth = httpx.BasicAuth(cfg.servicenow_user, cfg.servicenow_password.get_secret_value())
        correlation = _snow_value(input.incident_id)[:100]
        table = f"{base}/api/now/table/incident"
        sys_id, number = (
            (input.ticket, None) if input.ticket else await self._snow_find(table, auth, correlation)
        )
        lines = message_lines(input)
        status: NotifyStatus = "exists"
        if sys_id is None:
            urgency, impact = _SNOW_PRIORITY.get(input.severity or "", ("3", "3"))
            record: dict[str, Any] = {
                "short_description": f"Firebreak {input.key}: {input.title}"[:160],
                "description": "\n".join([*lines, "", f"Temporal: {link}"]),
                "correlation_id": correlation,
                "correlation_display": "Firebreak",
                "urgency": urgency,
                "impact": impact,
                "work_notes": "\n".join([*lines, marker(input)]),
            }
            if cfg.servicenow_assignment_group:
                record["assignment_group"] = cfg.servicenow_assignment_group
            created = _json(
                await self._call(
                    "POST",
                    table,
                    auth=auth,
                    json=record,
                    params={"sysparm_fields": "sys_id,number"},
                ),
                NotifyChannel.SERVICENOW,
            ).get("result")
            if not isinstance(created, dict) or not created.get("sys_id"):
                raise NotifyUnavailable("servicenow created an incident but answered without its sys_id")
            sys_id, number = str(created["sys_id"]), str(created.get("number") or "") or None
            status = "created"
        if input.event != NotifyEvent.OPENED:
            update: dict[str, Any] = {}
            if status != "created" and not await self._snow_noted(base, auth, sys_id, marker(input)):
                update["work_notes"] = "\n".join([*lines, marker(input)])
                status = "updated"
            if input.event == NotifyEvent.ESCALATED:
                update["urgency"] = "1"
            elif input.event == NotifyEvent.CLOSED:
                update.update(
                    {
                        "state": _SNOW_RESOLVED,
                        "close_code": _SNOW_CLOSE_CODES.get(input.outcome or "", _SNOW_NO_RESOLUTION),
                        "close_notes": f"{input.outcome}: {input.reason or ''}"[:4000],
                    }
                )
            if update:
                # Setting state/urgency again is harmless; the work note is guarded above.
                await self._call(
                    "PATCH",
                    f"{table}/{quote(sys_id, safe='')}",
                    auth=auth,
                    json=update,
                    params={"sysparm_fields": "sys_id"},
                )
        return NotifyResult(
            channel=NotifyChannel.SERVICENOW,
            event=input.event,
            status=status,
            ticket=sys_id,
            number=number,
            url=f"{base}/nav_to.do?uri=incident.do?sys_id={quote(sys_id, safe='')}",
        )

    async def _snow_find(
        self, table: str, auth: httpx.Auth, correlation: str
    ) -> tuple[str | None, str | None]:
        found = (
            _json(
                await self._call(
                    "GET",
                    table,
                    auth=auth,
                    params={
                        "sysparm_query": f"correlation_id={correlation}",
                        "sysparm_fields": "sys_id,number",
                        "sysparm_limit": "1",
                    },
                ),
                NotifyChannel.SERVICENOW,
            ).get("result")
            or []
        )
        if found and isinstance(found[0], dict) and found[0].get("sys_id"):
            return str(found[0]["sys_id"]), str(found[0].get("number") or "") or None
        return None, None

    async def _snow_noted(self, base: str, auth: httpx.Auth, sys_id: str, tag: str) -> bool:
        found = _json(
            await self._call(
                "GET",
                f"{base}/api/now/table/sys_journal_field",
                auth=auth,
                params={
                    "sysparm_query": f"element_id={_snow_value(sys_id)}^element=work_notes"
                    f"^valueLIKE{_snow_value(tag)}",
                    "sysparm_fields": "sys_id",
                    "sysparm_limit": "1",
                },
            ),
            NotifyChannel.SERVICENOW,
        ).get("result")
        return bool(found)


class _NotFound(Exception):
    """A GET answered 404 (an endpoint this server lacks)."""


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def _snow_value(value: str) -> str:
    """A value safe inside an encoded query: `^` separates terms, so it may not appear."""
    if "^" in value or "\n" in value:
        raise NotifyRejected("servicenow: value not allowed in a query")
    return value


def _json(response: httpx.Response, channel: NotifyChannel) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise NotifyUnavailable(f"{channel.value} answered with something that is not JSON") from None
    if not isinstance(data, dict):
        raise NotifyUnavailable(f"{channel.value} answered with unexpected JSON")
    return data


def _error_text(response: httpx.Response) -> str:
    """Jira's / ServiceNow's own short error message, when they give one."""
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()
        return f": {text[:120]}" if text and len(text) < 120 and "\n" not in text else ""
    messages: list[str] = []
    if isinstance(data, dict):
        messages += [str(m) for m in data.get("errorMessages") or []]
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            messages.append(str(error["message"]))
    return f": {'; '.join(messages)[:200]}" if messages else ""


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    try:
        seconds = float(raw) if raw is not None else None
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS) if seconds is not None else None
