"""Topology-aware diagnosis: dependency graph, alert correlation, root-cause ranking, evaluation.

Entry points:

- `rca.topology.Topology.load(path)`: a CMDB export (YAML) as a validated graph; blast radius.
- `rca.correlation.Correlator`: streaming alert -> incident grouping over the topology.
- `rca.ranking.rank_root_causes(topology, metrics, symptom, normal, anomalous, alerts=...)`:
  ranked `Candidate`s with `Evidence` (pure, no I/O).
- `activities.telemetry.TelemetryActivities.gather_telemetry`: the same ranking on metrics
  queried from Prometheus, degrading gracefully when it is unavailable.
- Tooling lives outside the runtime: `evals.rca` has the scenario format, simulator,
  baselines and the harness behind `firebreak rca eval` and `firebreak simulate`.

`rca/examples/` has a topology and a scenario to try the commands on.
"""
