"""Encrypted history: the server stores ciphertext; the codec server and old keys still open it."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from api.app import create_app
from models.constants import QUERY_STATE
from models.incident import IncidentResult, IncidentState, Outcome
from runtime.codec import CodecKeyError, EncryptionCodec, data_converter, generate_key
from runtime.codec_server import create_codec_app
from runtime.settings import Settings
from tests.conftest import VaultServer
from tests.integration.conftest import unique_service
from tests.payloads import alertmanager_alert, alertmanager_payload
from tests.secret_scan import plain_payload_text, stored_text
from worker import WORKFLOWS, build_worker

pytestmark = pytest.mark.integration

SECRET_TEXT = "rack 42 on fire near the badge reader"


async def test_history_is_ciphertext_and_codec_server_decodes_it(
    client: Client, settings: Settings, vault: VaultServer
) -> None:
    old_key, new_key = generate_key("k1"), generate_key("k2")
    target = client.service_client.config.target_host
    sealed_client = await Client.connect(target, data_converter=data_converter(old_key))
    configured = settings.model_copy(update={"approval_timeout_seconds": 1.0})
    worker = build_worker(sealed_client, configured)
    async with worker:

        async def factory() -> Client:
            return sealed_client

        app = create_app(configured, factory)
        assert configured.api_token is not None
        service = unique_service()
        alert = alertmanager_alert("KubePodCrashLooping", service, summary=SECRET_TEXT)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as http:
            response = await http.post(
                "/alerts/alertmanager",
                json=alertmanager_payload(alert),
                headers={"Authorization": f"Bearer {configured.api_token.get_secret_value()}"},
            )
        assert response.status_code == 202, response.text
        (incident_id,) = response.json()["incidents"]
        handle = sealed_client.get_workflow_handle(incident_id, result_type=IncidentResult)
        result = await asyncio.wait_for(handle.result(), timeout=60)
        assert result.outcome == Outcome.ESCALATED
        state = await handle.query(QUERY_STATE, result_type=IncidentState)
        assert any(a.summary == SECRET_TEXT for a in state.alerts.values()), "the codec round-trips"

    # What the server holds, read without the key: no alert text anywhere.
    raw_history = await client.get_workflow_handle(incident_id).fetch_history()
    raw_json = raw_history.to_json()
    # Every payload decoded as a reader without the key would (to_json() alone is base64, in
    # which no text could ever be found): ciphertext only.
    readable = await stored_text(raw_history)
    assert SECRET_TEXT not in readable and SECRET_TEXT not in plain_payload_text(json.loads(raw_json))
    assert "KubePodCrashLooping" not in readable
    # ... and with the key, it is all there (so the assertions above can fail).
    decrypted = await stored_text(raw_history, EncryptionCodec.from_spec(old_key))
    assert SECRET_TEXT in decrypted and "KubePodCrashLooping" in decrypted
    signal = next(
        e for e in raw_history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    )
    sealed = signal.workflow_execution_signaled_event_attributes.input
    assert all(p.metadata["encoding"] == b"binary/encrypted" for p in sealed.payloads)

    # The codec server (what the UI calls) opens it for whoever may reach it.
    codec_app = create_codec_app(
        EncryptionCodec.from_spec(old_key), ["http://127.0.0.1:8233"], token="ui-token"
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=codec_app), base_url="http://c") as http:
        body = json_format.MessageToJson(sealed)
        denied = await http.post("/decode", content=body, headers={"content-type": "application/json"})
        assert denied.status_code == 401
        opened = await http.post(
            "/decode",
            content=body,
            headers={"content-type": "application/json", "authorization": "Bearer ui-token"},
        )
        assert opened.status_code == 200, opened.text
        decoded = json_format.Parse(opened.content, Payloads())
        assert SECRET_TEXT in decoded.payloads[0].data.decode()
        preflight = await http.options(
            "/decode",
            headers={
                "origin": "http://127.0.0.1:8233",
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type,x-namespace",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == "http://127.0.0.1:8233"
        bad = await http.post("/decode", content=b"{nope", headers={"authorization": "Bearer ui-token"})
        assert bad.status_code == 400

    # Rotation: k2 is now active, k1 still listed -> old history decodes and replays.
    rotated = data_converter(f"{new_key},{old_key}")
    await Replayer(workflows=list(WORKFLOWS), data_converter=rotated).replay_workflow(raw_history)
    (payload,) = await EncryptionCodec.from_spec(f"{new_key},{old_key}").decode(list(sealed.payloads))
    assert SECRET_TEXT in payload.data.decode()
    resealed = await EncryptionCodec.from_spec(f"{new_key},{old_key}").encode([payload])
    assert resealed[0].metadata["encryption-key-id"] == b"k2"
    # Dropping the old key makes old payloads unreadable, loudly.
    with pytest.raises(CodecKeyError, match="k1"):
        await EncryptionCodec.from_spec(new_key).decode(list(sealed.payloads))


async def test_failure_messages_are_encrypted_too() -> None:
    converter = data_converter(generate_key("k1"))
    failure = Failure()
    await converter.encode_failure(ApplicationError(f"could not reach {SECRET_TEXT}"), failure)
    assert SECRET_TEXT not in json_format.MessageToJson(failure)
    assert failure.encoded_attributes.metadata["encoding"] == b"binary/encrypted"
    decoded = await converter.decode_failure(failure)
    assert SECRET_TEXT in str(decoded)


async def test_tampered_payload_is_refused() -> None:
    codec = EncryptionCodec.from_spec(generate_key("k1"))
    (sealed,) = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'{"a":1}')])
    tampered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(CodecKeyError, match="authentication"):
        await codec.decode([tampered])


@pytest.mark.parametrize(
    ("spec", "message"),
    [("", "no codec keys"), ("k1", "id:base64key"), ("k1:AAAA", "need 32"), ("k1:@@@@", "k1")],
)
def test_bad_key_config_is_refused(spec: str, message: str) -> None:
    with pytest.raises(CodecKeyError, match=message):
        EncryptionCodec.from_spec(spec)


def test_generated_keys_parse() -> None:
    spec = f"{generate_key('a')},{generate_key('b')}"
    assert EncryptionCodec.from_spec(spec).active_key_id == "a"
    assert json.dumps(spec)  # plain ASCII, safe for env files
