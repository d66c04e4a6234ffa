"""`firebreak rca ...` and `firebreak simulate`: diagnosis offline, on scenario directories.

firebreak simulate scenarios/ --count 300 --seed 42
firebreak rca eval scenarios/ [--json] [--robustness]
firebreak rca eval datasets/nezha/*/ --robustness
firebreak rca rank scenarios/s000-cpu_saturation
firebreak rca topology topology.yaml --blast-radius orders-db
firebreak rca correlate alerts.json --topology topology.yaml
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from cli.errors import fail
from evals.rca.evaluate import CaseResult, evaluate, rank_candidates, render
from evals.rca.scenario import ScenarioError, find_scenarios, load_scenario, parse_alerts
from evals.rca.simulate import FAULTS
from evals.rca.simulate import simulate as generate
from rca.correlation import Correlator
from rca.topology import Topology, TopologyError

rca_app = typer.Typer(
    help="Root-cause analysis: rank, evaluate, correlate, check topologies.", no_args_is_help=True
)



@rca_app.command("eval")
def eval_command(
    dirs: Annotated[list[Path], typer.Argument(help="scenario directories, or folders of them")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="one line per scenario")] = False,
    robustness: Annotated[
        bool,
        typer.Option(
            "--robustness",
            help="also rank every scenario with the incident window shifted by -15/-5/+5/+15 min, "
            "the symptom off the root cause's call path, and traces, logs or both removed",
        ),
    ] = False,
) -> None:
    """AC@1, AC@3 and Avg@5 per dataset/system and fault kind, beside the baselines and floors."""
    try:
        paths = find_scenarios(dirs)
    except ScenarioError as exc:
        raise fail(str(exc), code=2) from None
    if not paths:
        raise fail("no scenarios found (a scenario is a directory with incident.json)", code=2)

    def progress(case: CaseResult) -> None:
        if verbose:
            where = case.positions["rca"]
            typer.echo(
                f"{case.name:<40} {case.fault:<18} truth={case.root_cause:<20} "
                f"rank={where if where is not None else '-'} top={','.join(case.top[:3])}",
                err=as_json,
            )

    try:
        report = evaluate(paths, progress, robustness=robustness)
    except (ScenarioError, TopologyError) as exc:
        raise fail(str(exc), code=2) from None
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        typer.echo(render(report))


@rca_app.command("rank")
def rank_command(
    scenario: Annotated[Path, typer.Argument(help="one scenario directory")],
    top: Annotated[int, typer.Option(min=1, max=50)] = 5,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Rank one scenario's root-cause candidates, with their evidence (truth.json is not read)."""
    try:
        loaded = load_scenario(scenario)
    except (ScenarioError, TopologyError) as exc:
        raise fail(str(exc), code=2) from None
    candidates = rank_candidates(loaded, limit=top)
    if as_json:
        typer.echo(json.dumps([c.model_dump(mode="json") for c in candidates], indent=2))
        return
    typer.echo(f"symptom: {loaded.symptom.service} {loaded.symptom.metric or ''}")
    for c in candidates:
        anomaly = "no data" if c.anomaly is None else f"anomaly {c.anomaly:.2f}"
        typer.echo(
            f"{c.rank}. {c.service} ({c.service_kind or '?'}) confidence {c.confidence:.2f}, {anomaly}"
        )
        for e in c.evidence:
            typer.echo(f"     [{e.source}/{e.kind}] {e.summary}")


@rca_app.command("topology")
def topology_command(
    file: Annotated[Path, typer.Argument(help="CMDB export (YAML)")],
    blast_radius: Annotated[
        str | None, typer.Option(help="print who depends on this service, transitively")
    ] = None,
) -> None:
    """Validate a topology file; optionally print a service's blast radius."""
    try:
        topo = Topology.load(file)
    except TopologyError as exc:
        raise fail(str(exc), code=2) from None
    kinds: dict[str, int] = {}
    for spec in topo.services.values():
        kinds[spec.kind.value] = kinds.get(spec.kind.value, 0) + 1
    typer.echo(
        f"{file}: {len(topo)} services ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}), "
        f"{topo.graph.number_of_edges()} dependencies"
    )
    if blast_radius is not None:
        if blast_radius not in topo:
            raise fail(f"{file}: no service {blast_radius!r}", code=2)
        hit = sorted(topo.blast_radius(blast_radius))
        typer.echo(f"blast radius of {blast_radius}: {len(hit)} services: {', '.join(hit) or '(none)'}")


@rca_app.command("correlate")
def correlate_command(
    alerts_file: Annotated[Path, typer.Argument(help="Alertmanager alerts (webhook payload or list)")],
    topology: Annotated[Path | None, typer.Option(help="CMDB export (YAML)")] = None,
    hops: Annotated[int, typer.Option(min=0, max=10)] = 1,
    window_minutes: Annotated[float, typer.Option(min=0.1)] = 15.0,
) -> None:
    """Group alerts into incidents (same or nearby services, within the time window)."""
    try:
        topo = Topology.load(topology) if topology else None
        alerts = parse_alerts(json.loads(alerts_file.read_text()), str(alerts_file))
    except (TopologyError, ScenarioError) as exc:
        raise fail(str(exc), code=2) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise fail(f"{alerts_file}: {exc}", code=2) from None
    correlator = Correlator(topo, hops=hops, window=timedelta(minutes=window_minutes))
    correlator.extend(sorted(alerts, key=lambda a: a.starts_at))
    incidents = [i.summary() for i in correlator.incidents.values()]
    typer.echo(
        json.dumps(
            {"alerts": len(alerts), "incidents": len(incidents), "groups": incidents}, indent=2, default=str
        )
    )


def simulate(
    out: Annotated[Path, typer.Argument(help="folder to write scenario directories into")],
    count: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
    seed: Annotated[int, typer.Option(help="same seed, same scenarios")] = 0,
    fault: Annotated[
        list[str] | None, typer.Option(help=f"only these faults (default: all, in turn): {', '.join(FAULTS)}")
    ] = None,
) -> None:
    """Generate scenarios by fault injection (topology, metrics, incident, alerts, truth)."""
    faults = tuple(fault or FAULTS)
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        raise fail(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(FAULTS)}", code=2)
    generate(out, count, seed=seed, faults=faults)
    typer.echo(f"wrote {count} scenarios to {out}")
