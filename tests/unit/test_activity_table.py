"""The activity table and the worker's registration from it."""

from __future__ import annotations

import pytest
from temporalio import activity

from activities import table
from models.memory import RetrievedContext, RetrieveInput
from models.notify import ChannelsResult, NotifyInput, NotifyResult
from worker import INCIDENT_SPECS, MEMORY_SPECS, ConfigurationError, registration


class Channels:
    @activity.defn
    async def notify_channels(self) -> ChannelsResult:
        return ChannelsResult(channels=[])


class Chat:
    @activity.defn(name="notify_chat")
    async def post(self, input: NotifyInput) -> NotifyResult:
        raise NotImplementedError


class Stray:
    @activity.defn
    async def notify_pager(self, input: NotifyInput) -> NotifyResult:
        raise NotImplementedError


class WrongResult:
    @activity.defn(name="notify_chat")
    async def post(self, input: NotifyInput) -> str:
        return ""


def test_registration_finds_each_entry_by_activity_name_in_table_order() -> None:
    chat, channels = Chat(), Channels()
    found = registration([chat, channels], [table.NOTIFY_CHANNELS, table.NOTIFY_CHAT])
    assert found == [channels.notify_channels, chat.post]


def test_registration_names_a_missing_activity() -> None:
    with pytest.raises(ConfigurationError, match="notify_chat: in the activity table"):
        registration([Channels()], [table.NOTIFY_CHANNELS, table.NOTIFY_CHAT])


def test_registration_names_an_activity_the_table_does_not_list() -> None:
    with pytest.raises(
        ConfigurationError, match=r"notify_pager \(Stray.notify_pager\) is not in the activity table"
    ):
        registration([Channels(), Stray()], [table.NOTIFY_CHANNELS])


def test_registration_refuses_a_result_type_other_than_the_tables() -> None:
    with pytest.raises(ConfigurationError, match=r"notify_chat .* the activity table says NotifyResult"):
        registration([WrongResult()], [table.NOTIFY_CHAT])


def test_registration_refuses_an_activity_implemented_twice() -> None:
    with pytest.raises(ConfigurationError, match="notify_chat is implemented twice"):
        registration([Chat(), Chat()], [table.NOTIFY_CHAT])


def test_table_names_are_unique_and_non_retryable_types_are_class_names() -> None:
    names = [spec.name for spec in table.ACTIVITIES]
    assert len(names) == len(set(names)) == len(table.BY_NAME)
    assert table.PLAYBOOK_RETRY.non_retryable_error_types == [
        "CatalogError",
        "CredentialDenied",
        "NotAdmitted",
    ]
    assert table.NOTIFY_RETRY.non_retryable_error_types == ["NotifyRejected"]
    assert table.LLM_FAULTS == ("LLMUnavailable", "LLMRequestRejected")
    assert table.result_types()["run_playbook"] is table.RUN_PLAYBOOK.result_type
    assert all(spec.summary and spec.config.get("retry_policy") for spec in table.ACTIVITIES)


class Retrieval:
    @activity.defn
    async def retrieve_context(self, input: RetrieveInput) -> RetrievedContext:
        raise NotImplementedError


def test_each_role_registers_its_queues_activities_and_refuses_the_others() -> None:
    assert {s.name for s in MEMORY_SPECS} == {"retrieve_context", "action_track_record", "record_incident"}
    assert not {s.name for s in INCIDENT_SPECS} & {s.name for s in MEMORY_SPECS}
    assert {s.name for s in INCIDENT_SPECS + MEMORY_SPECS} | {"request_lock"} == set(table.BY_NAME)
    with pytest.raises(
        ConfigurationError,
        match=r"retrieve_context \(Retrieval.retrieve_context\) is served on the memory task queue, not this",
    ):
        registration([Channels(), Retrieval()], [table.NOTIFY_CHANNELS])
    missing = "retrieve_context, action_track_record, record_incident: in the activity table"
    with pytest.raises(ConfigurationError, match=missing):
        registration([], MEMORY_SPECS)
