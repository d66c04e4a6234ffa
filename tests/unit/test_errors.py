"""The one error mapper: every domain error becomes the ApplicationError retry policies name."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationErrorCategory

from activities.errors import DOMAIN_ERRORS, PolicyError, to_application_error
from agents.errors import LLMRequestRejected, LLMUnavailable
from integrations.errors import (
    CredentialDenied,
    NotifyRejected,
    NotifyUnavailable,
    PlaybookError,
    VaultUnavailable,
)
from memory.errors import DocumentError, RecordNotFound, SchemaMismatch, StoreBusy, StoreUnavailable
from models.catalog import CatalogError
from policies.admission import NotAdmitted

BENIGN = ApplicationErrorCategory.BENIGN
PLAIN = ApplicationErrorCategory.UNSPECIFIED


@pytest.mark.parametrize(
    ("error", "type_", "retryable", "category"),
    [
        (CatalogError("unknown action"), "CatalogError", False, PLAIN),
        (NotAdmitted("no admission"), "NotAdmitted", False, PLAIN),
        (PolicyError("policy cannot decide"), "PolicyError", False, PLAIN),
        (VaultUnavailable("down"), "VaultUnavailable", True, PLAIN),
        (CredentialDenied("refused"), "CredentialDenied", False, PLAIN),
        (PlaybookError("cannot start"), "PlaybookError", True, PLAIN),
        (NotifyUnavailable("jira 503"), "NotifyUnavailable", True, BENIGN),
        (NotifyRejected("jira 401"), "NotifyRejected", False, PLAIN),
        (LLMUnavailable("Anthropic API 529"), "LLMUnavailable", True, BENIGN),
        (LLMRequestRejected("Anthropic API 400"), "LLMRequestRejected", False, PLAIN),
        (StoreBusy("held"), "StoreBusy", True, PLAIN),
        (StoreUnavailable("down"), "StoreUnavailable", True, PLAIN),
        (DocumentError("runbook.md", "no title"), "DocumentError", False, PLAIN),
        (SchemaMismatch("dimensions"), "SchemaMismatch", False, PLAIN),
        (RecordNotFound("inc-1"), "RecordNotFound", False, PLAIN),
    ],
)
def test_each_domain_error_maps_by_its_class(
    error: Exception, type_: str, retryable: bool, category: ApplicationErrorCategory
) -> None:
    assert isinstance(error, DOMAIN_ERRORS)
    mapped = to_application_error(error)
    assert mapped.type == type_
    assert mapped.non_retryable is not retryable
    assert mapped.category == category
    assert mapped.message == str(error)
    assert mapped.next_retry_delay is None


@pytest.mark.parametrize(
    "error", [NotifyUnavailable("429", retry_after=7.5), LLMUnavailable("429", retry_after=7.5)]
)
def test_retry_after_becomes_the_next_retry_delay(error: Exception) -> None:
    assert to_application_error(error).next_retry_delay == timedelta(seconds=7.5)
