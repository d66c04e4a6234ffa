"""`firebreak kb ...` (the knowledge base) and `firebreak feedback` (judge a closed incident).

Both talk to Qdrant directly, not through Temporal. In local mode the storage folder admits
one process at a time: these commands wait for a running worker to finish its current
memory call (up to --wait seconds), then hold the folder only while they work.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from cli.errors import fail
from models.constants import INCIDENT_WORKFLOW_ID_PREFIX

if TYPE_CHECKING:
    from memory.service import Memory

kb_app = typer.Typer(
    help="The knowledge base: runbooks and post-mortems in Qdrant.",
    no_args_is_help=True,
    add_completion=False,
)

Embeddings = Literal["auto", "dense", "sparse"]
WaitOption = Annotated[float, typer.Option(help="seconds to wait for a worker holding local Qdrant storage")]
EmbeddingsOption = Annotated[
    str | None,
    typer.Option(help="auto, dense or sparse (default: FIREBREAK_EMBEDDINGS)", show_default=False),
]



def _memory(embeddings: str | None, wait: float) -> Memory:
    from memory.errors import MemoryStoreError
    from memory.service import Memory
    from runtime.settings import Settings

    if embeddings not in (None, "auto", "dense", "sparse"):
        raise fail(f"--embeddings must be auto, dense or sparse, not {embeddings!r}", code=2)
    try:
        mode: Embeddings | None = embeddings  # type: ignore[assignment]
        return Memory.from_settings(Settings(), embeddings=mode, lock_timeout=wait)
    except MemoryStoreError as exc:
        raise fail(str(exc), code=2) from None


def _incident_id(name: str) -> str:
    return name if name.startswith(INCIDENT_WORKFLOW_ID_PREFIX) else INCIDENT_WORKFLOW_ID_PREFIX + name


@kb_app.command()
def ingest(
    path: Annotated[
        Path | None, typer.Argument(help="a folder or one file (default: FIREBREAK_KNOWLEDGE_DIR)")
    ] = None,
    embeddings: EmbeddingsOption = None,
    wait: WaitOption = 60.0,
) -> None:
    """Chunk, embed and upsert runbooks and post-mortems; only what changed is written.

    A file that does not parse is reported with its path and skipped (its previous version,
    if any, stays); the others are ingested and the exit code is 1.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from memory.errors import MemoryStoreError
    from models.catalog import CatalogError
    from policies.catalog import load_catalog
    from runtime.settings import Settings

    settings = Settings()
    root = path or settings.knowledge_dir
    if not root.exists():
        raise fail(f"{root}: no such file or folder", code=2)
    try:
        actions = load_catalog(settings.playbooks_dir).actions
    except CatalogError as exc:
        raise fail(f"cannot check actions against the catalog: {exc}", code=2) from None
    memory = _memory(embeddings, wait)
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"ingest {root} ({memory.mode})", total=None)

        def advance(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total)

        try:
            report = memory.knowledge.ingest(root, known_actions=actions, progress=advance)
        except MemoryStoreError as exc:
            raise fail(str(exc), code=2) from None
    for problem in report.skipped:
        typer.secho(f"skipped {problem}", fg=typer.colors.YELLOW, err=True)
    typer.echo(
        f"{len(report.added)} added, {len(report.updated)} updated, {len(report.unchanged)} unchanged, "
        f"{len(report.deleted)} deleted, {len(report.skipped)} skipped; "
        f"{report.chunks_written} chunks written, {report.chunks_deleted} deleted; "
        f"{report.points} in {memory.knowledge.collection} ({memory.mode})"
    )
    for label, ids in (("added", report.added), ("updated", report.updated), ("deleted", report.deleted)):
        for doc_id in ids:
            typer.echo(f"  {label} {doc_id}")
    if report.skipped:
        raise typer.Exit(1)


@kb_app.command()
def search(
    query: Annotated[str, typer.Argument(help="alert text, symptoms, a question")],
    alert: Annotated[list[str] | None, typer.Option(help="alert name (repeatable)")] = None,
    service: Annotated[list[str] | None, typer.Option(help="service (repeatable)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=50)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="the whole retrieved context as JSON")] = False,
    embeddings: EmbeddingsOption = None,
    wait: WaitOption = 30.0,
) -> None:
    """Show what an incident with this text would retrieve: passages, past incidents, ranked actions."""
    from memory.errors import MemoryStoreError
    from models.memory import RetrieveInput

    memory = _memory(embeddings, wait)
    request = RetrieveInput(
        text=query, alert_names=alert or [], services=service or [], runbook_limit=limit, incident_limit=limit
    )
    try:
        context = memory.retrieve(request)
    except MemoryStoreError as exc:
        raise fail(str(exc), code=2) from None
    if as_json:
        typer.echo(context.model_dump_json(indent=2))
        return
    typer.echo(f"mode: {context.mode}")
    for p in context.passages:
        typer.echo(f"{p.score:8.3f}  {p.id:<55} {p.title} — {p.section}")
    for i in context.incidents:
        typer.echo(f"{i.score:8.3f}  {i.id:<55} {i.record.outcome}: {i.record.summary[:60]}")
    for s in context.suggestions:
        typer.echo(f"{s.score:+8.2f}  {s.action:<20} cites {', '.join(s.cited[:4])}")


@kb_app.command()
def status(embeddings: EmbeddingsOption = None, wait: WaitOption = 30.0) -> None:
    """Where memory lives, and how many chunks and incident records it holds."""
    from memory.errors import MemoryStoreError

    memory = _memory(embeddings, wait)
    try:
        chunks, records = memory.knowledge.count(), memory.episodes.count()
    except MemoryStoreError as exc:
        raise fail(str(exc), code=2) from None
    typer.echo(f"store: {memory.store.config.describe()}")
    typer.echo(f"retrieval: {memory.mode}")
    typer.echo(f"{memory.knowledge.collection}: {chunks} chunks")
    typer.echo(f"{memory.episodes.collection}: {records} incident records")


@kb_app.command("track-record")
def track_record(
    action: Annotated[list[str] | None, typer.Argument(help="actions (default: every one seen)")] = None,
    wait: WaitOption = 30.0,
) -> None:
    """Per action class: incidents, successes, failures, rejections, approvals, feedback (JSON)."""
    from memory.errors import MemoryStoreError

    memory = _memory("sparse", wait)
    try:
        records = memory.track_record(action or [])
    except MemoryStoreError as exc:
        raise fail(str(exc), code=2) from None
    typer.echo(json.dumps({name: r.model_dump() for name, r in records.items()}, indent=2))


def feedback(
    incident: Annotated[str, typer.Argument(help="incident key or workflow id")],
    useful: Annotated[
        bool | None,
        typer.Option("--useful/--wrong", help="was the response useful, or wrong?", show_default=False),
    ] = None,
    note: Annotated[str, typer.Option(help="why (shown to the planner next time)")] = "",
    by: Annotated[str | None, typer.Option(help="who judges (default: your user name)")] = None,
    action: Annotated[str | None, typer.Option(help="judge one action of the plan (default: all)")] = None,
    run_id: Annotated[str | None, typer.Option(help="a specific run (default: the latest record)")] = None,
    wait: WaitOption = 30.0,
) -> None:
    """Judge a closed incident's response after the fact; the memory and track records learn from it."""
    from memory.errors import MemoryStoreError
    from models.memory import FeedbackInput

    if useful is None:
        raise fail("say --useful or --wrong", code=2)
    memory = _memory("sparse", wait)  # feedback changes a payload, no vectors: no model to load
    request = FeedbackInput(
        incident_id=_incident_id(incident),
        useful=useful,
        by=by or getpass.getuser(),
        note=note,
        action=action,
        run_id=run_id,
    )
    try:
        result = memory.feedback(request)
    except MemoryStoreError as exc:
        raise fail(str(exc)) from None
    typer.echo(
        f"{result.record_id}: recorded {'useful' if useful else 'wrong'} from {request.by}"
        + (f" about {action}" if action else "")
        + f" ({len(result.feedback)} feedback note(s))"
    )
