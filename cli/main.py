"""The `firebreak` command: approve, audit and list incidents, bootstrap Vault, run the dev stack."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import httpx
import hvac
import typer
import yaml
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from audit.chain import export, verify_export
from audit.render import render_html, render_text
from audit.timeline import build_timeline, run_id_of
from cli.errors import fail
from models.constants import (
    INCIDENT_WORKFLOW,
    INCIDENT_WORKFLOW_ID_PREFIX,
    QUERY_STATE,
    SA_OUTCOME,
    SA_PHASE,
    SA_SERVICE,
    SA_SEVERITY,
    UPDATE_APPROVE,
    UPDATE_REJECT,
)
from models.incident import ApprovalRecord, ApprovalSignal, IncidentState, Phase
from runtime.bounded import FileLimits, UnsafeFileError, load_json_file
from runtime.temporal import connect

app = typer.Typer(help="Firebreak incident response.", no_args_is_help=True, add_completion=False)


class AuditFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    HTML = "html"


# Values compared in visibility queries: no quotes or operators can get in.
_QUERY_VALUE = re.compile(r"^[A-Za-z0-9_.:/@-]{1,256}$")
# An export of a long incident runs to megabytes; past this it is not one of ours.
AUDIT_EXPORT_LIMITS = FileLimits(max_bytes=64 * 1024 * 1024, max_scalar=1024 * 1024)


def incident_id(name: str) -> str:
    """Accept either the incident key (`prod-checkout`) or the workflow id."""
    return name if name.startswith(INCIDENT_WORKFLOW_ID_PREFIX) else INCIDENT_WORKFLOW_ID_PREFIX + name


async def _client() -> Client:
    try:
        return await connect()
    except RuntimeError as exc:
        raise fail(f"cannot reach Temporal: {exc}") from None


def _api_url() -> str:
    return os.environ.get("FIREBREAK_API_URL", "http://127.0.0.1:8000").rstrip("/")


def _fetch_code(workflow_id: str, token: str) -> dict[str, object]:
    """Ask the API for an approval code with the approver's personal token."""
    try:
        response = httpx.post(
            f"{_api_url()}/approvals/{workflow_id}/code",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the Firebreak API at {_api_url()}: {type(exc).__name__}") from None
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise fail(f"no approval code ({response.status_code}): {detail}")
    body: dict[str, object] = response.json()
    return body


@app.command()
def approve(
    incident: Annotated[str, typer.Argument(help="incident key or workflow id")],
    by: Annotated[str, typer.Option(help="who decides (must be who the approval code was issued to)")],
    reason: Annotated[str, typer.Option(help="why (recorded in the audit)")] = "",
    reject: Annotated[bool, typer.Option("--reject", help="reject the plan instead")] = False,
    plan_hash: Annotated[
        str | None, typer.Option(help="approve only this plan (default: the pending one)")
    ] = None,
    code: Annotated[
        str | None,
        typer.Option(
            help="an approval code (default: fetched from the API with $FIREBREAK_APPROVER_TOKEN, if set)"
        ),
    ] = None,
) -> None:
    """Approve (or reject) the pending plan, as an update: it answers whether the answer was admitted."""

    async def run() -> None:
        client = await _client()
        handle = client.get_workflow_handle(incident_id(incident))
        try:
            state = await handle.query(QUERY_STATE, result_type=IncidentState)
        except RPCError as exc:
            raise fail(f"{handle.id}: {exc.message}") from None
        if state.phase != Phase.AWAITING_APPROVAL:
            raise fail(f"{handle.id} is {state.phase.value}, not awaiting approval")
        chosen = plan_hash or state.plan_hash
        if state.plan:
            for action in state.plan.actions:
                typer.echo(
                    f"plan {state.plan_hash}: {action.action} on {action.target} {json.dumps(action.params)}"
                )
        approval_code = code
        token = os.environ.get("FIREBREAK_APPROVER_TOKEN")
        if approval_code is None and token:
            approval_code = str(_fetch_code(handle.id, token)["code"])
        update = UPDATE_REJECT if reject else UPDATE_APPROVE
        answer = ApprovalSignal(by=by, reason=reason, plan_hash=chosen, code=approval_code)
        try:
            # An update, not the UI's signal: the workflow refuses at once what its gate would.
            record = await handle.execute_update(update, answer, result_type=ApprovalRecord)
        except WorkflowUpdateFailedError as exc:
            why = getattr(exc.cause, "message", None) or str(exc.cause or exc)
            raise fail(f"{handle.id}: {'rejection' if reject else 'approval'} refused: {why}") from None
        except RPCError as exc:
            raise fail(f"{handle.id}: {exc.message}") from None
        typer.echo(
            f"{record.decision}: {handle.id} as {record.by} (authenticated by {record.authenticated_by})"
            + ("" if approval_code else " (no approval code)")
        )

    asyncio.run(run())


@app.command(name="approval-code")
def approval_code(
    incident: Annotated[str, typer.Argument(help="incident key or workflow id")],
) -> None:
    """Print the signal data (with an approval code) to paste into the Temporal UI's Send a Signal.

    Authenticates with your personal token from $FIREBREAK_APPROVER_TOKEN.
    """
    token = os.environ.get("FIREBREAK_APPROVER_TOKEN")
    if not token:
        raise fail("FIREBREAK_APPROVER_TOKEN is not set: your personal approver token")
    body = _fetch_code(incident_id(incident), token)
    typer.echo(f"code for {body['approver']}, plan {body['plan_hash']}, valid until {body['expires_at']}")
    typer.echo("Temporal UI: More Actions -> Send a Signal -> approve (or reject), with data:")
    typer.echo(json.dumps(body["signal"]))


@app.command(name="approver-token")
def approver_token(
    person: Annotated[str, typer.Argument(help="the approver, as named in the policy roster")],
) -> None:
    """Make a personal approver token: give the token to the person, the line to the API's tokens file."""
    token = secrets.token_urlsafe(32)
    typer.echo(f"token (give it to {person}; shown once): {token}")
    typer.echo("line for FIREBREAK_APPROVER_TOKENS_FILE:")
    typer.echo(yaml.safe_dump({person: hashlib.sha256(token.encode()).hexdigest()}).rstrip())


@app.command()
def audit(
    incident: Annotated[str | None, typer.Argument(help="incident key or workflow id")] = None,
    format: Annotated[
        AuditFormat, typer.Option("--format", help="text, json (hash-chained export) or html")
    ] = AuditFormat.TEXT,
    run_id: Annotated[str | None, typer.Option(help="a specific run (default: the latest)")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to this file instead of stdout")
    ] = None,
    verify: Annotated[
        Path | None,
        typer.Option("--verify", help="check an exported JSON audit's hash chain instead", exists=True),
    ] = None,
    expect_head: Annotated[
        str | None, typer.Option(help="with --verify: the head hash published when it was exported")
    ] = None,
) -> None:
    """Print the incident's timeline from its workflow history (works after it closed).

    `--format json` is tamper-evident: each entry's hash covers it and the previous hash.
    `firebreak audit --verify FILE` exits 1 and names the first entry that was changed.
    """
    if verify is not None:
        try:
            document = load_json_file(verify, AUDIT_EXPORT_LIMITS)  # bounded (runtime/bounded.py)
        except (OSError, UnsafeFileError) as exc:
            raise fail(f"{verify}: not readable JSON: {exc}") from None
        result = verify_export(document, expect_head)
        if not result.ok:
            raise fail(f"{verify}: TAMPERED or damaged: {result.problem}")
        typer.echo(f"{verify}: OK, {result.count} entries, head {result.head}")
        return
    if incident is None:
        raise fail("name an incident (or give --verify FILE)", code=2)

    async def run() -> str:
        client = await _client()
        handle = client.get_workflow_handle(incident_id(incident), run_id=run_id)
        try:
            history = await handle.fetch_history()
        except RPCError as exc:
            raise fail(f"{handle.id}: {exc.message}") from None
        entries = await build_timeline(history, client.data_converter)
        document = export(handle.id, run_id_of(history), entries)
        if format == AuditFormat.JSON:
            return json.dumps(document, indent=2, ensure_ascii=False)
        if format == AuditFormat.HTML:
            return render_html(document)
        return render_text(handle.id, entries, document["head"])

    text = asyncio.run(run())
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text if text.endswith("\n") else text + "\n")
        typer.echo(f"wrote {output}", err=True)


@app.command()
def incidents(
    phase: Annotated[str | None, typer.Option(help="e.g. awaiting_approval, closed")] = None,
    severity: Annotated[str | None, typer.Option(help="P1..P4")] = None,
    service: Annotated[str | None, typer.Option(help="affected service (as triage named it)")] = None,
    outcome: Annotated[str | None, typer.Option(help="e.g. remediated, escalated, rejected")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """List incidents, newest first, through Temporal's visibility API."""

    async def run() -> None:
        clauses = [f"WorkflowType = '{INCIDENT_WORKFLOW}'"]
        for key, value in (
            (SA_PHASE.name, phase),
            (SA_SEVERITY.name, severity),
            (SA_SERVICE.name, service),
            (SA_OUTCOME.name, outcome),
        ):
            if value is not None:
                if not _QUERY_VALUE.match(value):
                    raise fail(f"bad value for {key}: {value!r}")
                clauses.append(f"{key} = '{value}'")
        client = await _client()
        count = 0
        async for wf in client.list_workflows(" AND ".join(clauses), limit=limit):
            attrs = wf.typed_search_attributes
            typer.echo(
                f"{wf.id:<50} {attrs.get(SA_PHASE) or '?':<18} "
                f"{attrs.get(SA_SEVERITY) or '-':<4} "
                f"{attrs.get(SA_OUTCOME) or '-':<14} {wf.start_time:%Y-%m-%d %H:%M}  "
                f"{attrs.get(SA_SERVICE) or ''}"
            )
            count += 1
        if count == 0:
            typer.echo("no incidents match")

    asyncio.run(run())


@app.command("vault-bootstrap")
def vault_bootstrap(
    addr: Annotated[str, typer.Option(envvar="FIREBREAK_VAULT_ADDR")] = "http://127.0.0.1:8200",
    root_token: Annotated[
        str, typer.Option(envvar="FIREBREAK_VAULT_ROOT_TOKEN", prompt=True, hide_input=True)
    ] = "",
) -> None:
    """Create the secrets engine, policies and roles for the catalog; print a worker token."""
    from integrations.vault import bootstrap_vault
    from policies.catalog import load_catalog
    from runtime.settings import Settings

    settings = Settings()
    client = hvac.Client(url=addr, token=root_token)
    if not client.is_authenticated():
        raise fail(f"the root token is not valid at {addr}")
    catalog = load_catalog(settings.playbooks_dir)
    token = bootstrap_vault(client, catalog)
    if settings.inventory_file is not None:
        from integrations.inventory import load_inventory
        from integrations.ssh_ca import bootstrap_ssh_ca

        ca_key = bootstrap_ssh_ca(
            client, catalog, load_inventory(settings.inventory_file, set(catalog.actions))
        )
        typer.echo("SSH CA ready; each inventory host's TrustedUserCAKeys file holds:", err=True)
        typer.echo(ca_key, err=True)
    typer.echo("Vault is configured. The worker's token (set FIREBREAK_VAULT_TOKEN):", err=True)
    typer.echo(token.get_secret_value())


@app.command()
def dev(demo: Annotated[bool, typer.Option(help="fire a demo alert once up")] = False) -> None:
    """Run the embedded stack (Temporal, OpenBao, worker, API) until Ctrl-C."""
    from devstack.stack import main as devstack_main

    raise typer.Exit(devstack_main(["--demo"] if demo else []))


@app.command()
def consume(
    url: Annotated[
        str | None, typer.Option(help="NATS server (default: FIREBREAK_BUS_URL)", show_default=False)
    ] = None,
) -> None:
    """Take alerts from the NATS JetStream bus into incidents until stopped (SIGTERM / Ctrl-C)."""
    from pydantic import ValidationError

    from consumer.__main__ import main as consume_main
    from runtime.settings import Settings

    try:
        settings = Settings() if url is None else Settings(bus_url=url)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "FIREBREAK_" + ".".join(str(p) for p in first["loc"]).upper()
        raise fail(f"invalid setting {name}: {first['msg']}", code=2) from None
    raise typer.Exit(consume_main(settings))


from cli.kb import feedback, kb_app  # noqa: E402 - sub-commands of the app defined above

app.add_typer(kb_app, name="kb")
app.command()(feedback)


from cli.rca import rca_app, simulate  # noqa: E402 - sub-commands of the app defined above

app.add_typer(rca_app, name="rca")
app.command()(simulate)


def main() -> None:
    """Console entry point.

    Exits with os._exit after flushing: the Temporal client's native threads can race
    interpreter finalization and abort a CLI that has already done its work (seen as
    "PyGILState_Release" at exit), which would turn a delivered approval into exit 134.
    """
    code: int
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
