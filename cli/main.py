"""The `firebreak` command: approve, audit and list incidents, bootstrap Vault, run the dev stack."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from enum import StrEnum
from typing import Annotated

import hvac
import typer
from temporalio.client import Client
from temporalio.service import RPCError

from cli.audit import build_timeline, render_text
from firebreak.temporal import connect
from models.constants import (
    INCIDENT_WORKFLOW,
    INCIDENT_WORKFLOW_ID_PREFIX,
    QUERY_STATE,
    SIGNAL_APPROVE,
    SIGNAL_REJECT,
)
from models.incident import ApprovalSignal, IncidentState, Phase

app = typer.Typer(help="Firebreak incident response.", no_args_is_help=True, add_completion=False)


class AuditFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def incident_id(name: str) -> str:
    """Accept either the incident key (`prod-checkout`) or the workflow id."""
    return name if name.startswith(INCIDENT_WORKFLOW_ID_PREFIX) else INCIDENT_WORKFLOW_ID_PREFIX + name


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


async def _client() -> Client:
    try:
        return await connect()
    except RuntimeError as exc:
        raise fail(f"cannot reach Temporal: {exc}") from None


@app.command()
def approve(
    incident: Annotated[str, typer.Argument(help="incident key or workflow id")],
    by: Annotated[str, typer.Option(help="who decides (recorded in the audit)")],
    reason: Annotated[str, typer.Option(help="why (recorded in the audit)")] = "",
    reject: Annotated[bool, typer.Option("--reject", help="reject the plan instead")] = False,
    plan_hash: Annotated[
        str | None, typer.Option(help="approve only this plan (default: the pending one)")
    ] = None,
) -> None:
    """Approve (or reject) the pending plan: the same signal the Temporal UI sends."""

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
        signal = SIGNAL_REJECT if reject else SIGNAL_APPROVE
        await handle.signal(signal, ApprovalSignal(by=by, reason=reason, plan_hash=chosen))
        typer.echo(f"sent {signal} to {handle.id} as {by}")

    asyncio.run(run())


@app.command()
def audit(
    incident: Annotated[str, typer.Argument(help="incident key or workflow id")],
    format: Annotated[AuditFormat, typer.Option("--format", help="text or json")] = AuditFormat.TEXT,
    run_id: Annotated[str | None, typer.Option(help="a specific run (default: the latest)")] = None,
) -> None:
    """Print the incident's timeline from its workflow history (works after it closed)."""

    async def run() -> None:
        client = await _client()
        handle = client.get_workflow_handle(incident_id(incident), run_id=run_id)
        try:
            history = await handle.fetch_history()
        except RPCError as exc:
            raise fail(f"{handle.id}: {exc.message}") from None
        entries = await build_timeline(history, client.data_converter)
        if format == AuditFormat.JSON:
            typer.echo(
                json.dumps(
                    {
                        "incident": handle.id,
                        "entries": [e.model_dump(mode="json") for e in entries],
                    },
                    indent=2,
                )
            )
        else:
            typer.echo(render_text(handle.id, entries))

    asyncio.run(run())


@app.command()
def incidents(
    phase: Annotated[str | None, typer.Option(help="e.g. awaiting_approval, closed")] = None,
    severity: Annotated[str | None, typer.Option(help="P1..P4")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """List incidents, newest first, through Temporal's visibility API."""

    async def run() -> None:
        client = await _client()
        clauses = [f"WorkflowType = '{INCIDENT_WORKFLOW}'"]
        for key, value in (("FirebreakPhase", phase), ("FirebreakSeverity", severity)):
            if value is not None:
                if not value.replace("_", "").isalnum():
                    raise fail(f"bad value for {key}: {value!r}")
                clauses.append(f"{key} = '{value}'")
        count = 0
        async for wf in client.list_workflows(" AND ".join(clauses), limit=limit):
            attrs = wf.search_attributes
            typer.echo(
                f"{wf.id:<50} {attrs.get('FirebreakPhase', ['?'])[0]!s:<18} "
                f"{attrs.get('FirebreakSeverity', ['-'])[0]!s:<4} "
                f"{attrs.get('FirebreakOutcome', ['-'])[0]!s:<14} {wf.start_time:%Y-%m-%d %H:%M}"
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
    from activities.credentials import bootstrap_vault
    from models.catalog import Catalog
    from models.settings import Settings

    settings = Settings()
    client = hvac.Client(url=addr, token=root_token)
    if not client.is_authenticated():
        raise fail(f"the root token is not valid at {addr}")
    token = bootstrap_vault(client, Catalog.load(settings.playbooks_dir))
    typer.echo("Vault is configured. The worker's token (set FIREBREAK_VAULT_TOKEN):", err=True)
    typer.echo(token.get_secret_value())


@app.command()
def dev(demo: Annotated[bool, typer.Option(help="fire a demo alert once up")] = False) -> None:
    """Run the embedded stack (Temporal, OpenBao, worker, API) until Ctrl-C."""
    from firebreak.devstack import main as devstack_main

    raise typer.Exit(devstack_main(["--demo"] if demo else []))


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
