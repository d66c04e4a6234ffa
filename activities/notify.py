"""Notifications: a Slack-compatible chat message, a Jira issue, a ServiceNow incident.

One activity per channel, so a channel that is down is retried alone and never re-sends
on the others. The incident workflow starts them through `workflows.notifier`
without waiting on them, so a notification never holds an incident up.

The HTTP clients, their idempotency per incident and their errors are
integrations/notify.py; here a channel that is not configured is skipped, and a failure
becomes a Temporal error (activities/errors.py): `NotifyUnavailable` (retryable, benign,
`Retry-After` honoured) or `NotifyRejected` (non-retryable).
"""

from __future__ import annotations

import httpx
from temporalio import activity

from activities.errors import to_application_error
from integrations.errors import NotifyError
from integrations.notify import (
    ChannelClient,
    ChatClient,
    JiraClient,
    NotifyConfig,
    ServiceNowClient,
    ui_link,
)
from models.notify import ChannelsResult, NotifyInput, NotifyResult


class NotifyActivities:
    def __init__(self, config: NotifyConfig, http: httpx.AsyncClient | None = None) -> None:
        self._config = config
        self._http = http or httpx.AsyncClient(timeout=config.timeout_seconds, follow_redirects=False)
        self._chat = ChatClient(config, self._http)
        self._jira = JiraClient(config, self._http)
        self._servicenow = ServiceNowClient(config, self._http)

    async def aclose(self) -> None:
        await self._http.aclose()

    @activity.defn(name="notify_channels")
    async def notify_channels(self) -> ChannelsResult:
        """The channels this worker has configured."""
        return ChannelsResult(channels=self._config.channels())

    @activity.defn(name="notify_chat")
    async def notify_chat(self, input: NotifyInput) -> NotifyResult:
        """Post the event to the Slack-compatible webhook."""
        result = await self._send(self._chat, input)
        if result.status != "skipped":
            activity.logger.info("chat notified of %s %s", input.incident_id, input.event.value)
        return result

    @activity.defn(name="notify_jira")
    async def notify_jira(self, input: NotifyInput) -> NotifyResult:
        """Open the incident's Jira issue once; comment each later event once."""
        result = await self._send(self._jira, input)
        if result.status != "skipped":
            activity.logger.info(
                "jira %s for %s %s: %s", result.ticket, input.incident_id, input.event.value, result.status
            )
        return result

    @activity.defn(name="notify_servicenow")
    async def notify_servicenow(self, input: NotifyInput) -> NotifyResult:
        """Open the incident's ServiceNow incident once; work-note each later event once."""
        result = await self._send(self._servicenow, input)
        if result.status != "skipped":
            activity.logger.info(
                "servicenow %s for %s %s: %s",
                result.number or result.ticket,
                input.incident_id,
                input.event.value,
                result.status,
            )
        return result

    async def _send(self, client: ChannelClient, input: NotifyInput) -> NotifyResult:
        if not client.configured:
            return NotifyResult(channel=client.channel, event=input.event, status="skipped")
        link = ui_link(self._config.ui_url, activity.info().namespace, input.incident_id)
        try:
            return await client.send(input, link)
        except NotifyError as exc:
            raise to_application_error(exc) from None
