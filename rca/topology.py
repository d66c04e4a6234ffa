"""The service dependency graph, loaded from a CMDB export (YAML).

Edges point from caller to callee: `checkout -> payments` means checkout depends on
payments, so a fault in payments shows up in checkout (and in checkout's callers).

Two shapes of export are accepted, because CMDBs produce both:

    services:                          services:
      checkout:                          - name: checkout
        kind: service                      kind: service
        tier: 1                            depends_on: [payments]
        owner: team-shop
        depends_on: [payments, orders-db]

Every problem raises `TopologyError` with the file and the service named: an unknown
service in `depends_on`, a cycle (unless the file says `allow_cycles: true`), a bad kind,
bad YAML.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import networkx as nx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from runtime.bounded import load_yaml_text


class ServiceKind(StrEnum):
    SERVICE = "service"
    DATABASE = "database"
    QUEUE = "queue"
    LB = "lb"
    EXTERNAL = "external"


class TopologyError(ValueError):
    """The topology does not load or validate; the message names the file and the service."""


class ServiceSpec(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(min_length=1, max_length=256)
    kind: ServiceKind = ServiceKind.SERVICE
    tier: int | None = Field(default=None, ge=0, le=99)
    owner: str | None = Field(default=None, max_length=256)
    depends_on: tuple[str, ...] = ()

    @field_validator("depends_on", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        return value


class Topology:
    """An immutable view of the dependency graph with the walks diagnosis needs."""

    def __init__(
        self, services: Iterable[ServiceSpec], *, source: str = "<memory>", allow_cycles: bool = False
    ):
        self.source = source
        self.allow_cycles = allow_cycles
        self.services: dict[str, ServiceSpec] = {}
        graph: nx.DiGraph[str] = nx.DiGraph()
        for spec in services:
            if spec.name in self.services:
                raise TopologyError(f"{source}: service {spec.name!r} is defined twice")
            self.services[spec.name] = spec
            graph.add_node(spec.name)
        for spec in self.services.values():
            for callee in spec.depends_on:
                if callee not in self.services:
                    raise TopologyError(
                        f"{source}: service {spec.name!r} depends on unknown service {callee!r}"
                    )
                if callee == spec.name:
                    raise TopologyError(f"{source}: service {spec.name!r} depends on itself")
                graph.add_edge(spec.name, callee)
        if not allow_cycles:
            try:
                cycle = nx.find_cycle(graph)
            except nx.NetworkXNoCycle:
                cycle = None
            if cycle:
                path = " -> ".join([edge[0] for edge in cycle] + [cycle[0][0]])
                raise TopologyError(
                    f"{source}: dependency cycle {path} (service {cycle[0][0]!r}); "
                    "set allow_cycles: true if this is intended"
                )
        self.graph: nx.DiGraph[str] = graph
        self._ranks: dict[str, int] | None = None  # dependency_rank, computed on first use
        self._undirected: dict[str, set[str]] = {
            n: set(graph.successors(n)) | set(graph.predecessors(n)) for n in graph
        }

    # --- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> Topology:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TopologyError(f"{path}: cannot read: {exc.strerror or exc}") from None
        try:
            raw = load_yaml_text(text, str(path))  # bounded: aliases, depth, sizes (runtime/bounded.py)
        except yaml.YAMLError as exc:
            raise TopologyError(f"{path}: not valid YAML: {exc}") from None
        return cls.from_data(raw, source=str(path))

    @classmethod
    def from_data(cls, raw: Any, *, source: str = "<memory>") -> Topology:
        if not isinstance(raw, Mapping) or "services" not in raw:
            raise TopologyError(f"{source}: expected a mapping with a 'services' key")
        allow_cycles = raw.get("allow_cycles", False)
        if not isinstance(allow_cycles, bool):
            raise TopologyError(f"{source}: allow_cycles must be true or false")
        entries = raw["services"]
        items: list[tuple[str, Any]] = []
        if isinstance(entries, Mapping):
            for name, body in entries.items():
                if body is not None and not isinstance(body, Mapping):
                    raise TopologyError(f"{source}: service {name!r}: expected a mapping, got {body!r}")
                items.append((str(name), {**(body or {}), "name": str(name)}))
        elif isinstance(entries, list):
            for index, body in enumerate(entries):
                if not isinstance(body, Mapping) or not body.get("name"):
                    raise TopologyError(f"{source}: services[{index}]: expected a mapping with a 'name'")
                items.append((str(body["name"]), dict(body)))
        else:
            raise TopologyError(f"{source}: 'services' must be a mapping or a list")
        specs: list[ServiceSpec] = []
        for name, body in items:
            try:
                specs.append(ServiceSpec.model_validate(body))
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or '(service)'}: {e['msg']}"
                    for e in exc.errors(include_url=False)
                )
                raise TopologyError(f"{source}: service {name!r}: {problems}") from None
        return cls(specs, source=source, allow_cycles=allow_cycles)

    def reload(self) -> Topology:
        """Load the file again; the current topology stays in use if the new one is invalid."""
        if self.source.startswith("<"):
            raise TopologyError(f"{self.source}: not loaded from a file, nothing to reload")
        return Topology.load(Path(self.source))

    def to_data(self) -> dict[str, Any]:
        return {
            "allow_cycles": self.allow_cycles,
            "services": {
                name: spec.model_dump(mode="json", exclude={"name"}, exclude_none=True)
                | {"depends_on": list(spec.depends_on)}
                for name, spec in self.services.items()
            },
        }

    # --- walks -----------------------------------------------------------------------------

    def __contains__(self, service: object) -> bool:
        return service in self.services

    def __len__(self) -> int:
        return len(self.services)

    def kind(self, service: str) -> ServiceKind | None:
        spec = self.services.get(service)
        return spec.kind if spec else None

    def dependencies(self, service: str) -> list[str]:
        """Direct callees of a service (what it depends on)."""
        return sorted(self.graph.successors(service)) if service in self.graph else []

    def callers(self, service: str) -> list[str]:
        """Direct callers of a service (who depends on it)."""
        return sorted(self.graph.predecessors(service)) if service in self.graph else []

    def downstream(self, service: str) -> set[str]:
        """Everything a service depends on, transitively (excluding itself)."""
        if service not in self.graph:
            return set()
        return set(nx.descendants(self.graph, service)) - {service}

    def blast_radius(self, service: str) -> set[str]:
        """Services that depend on `service`, transitively: who is hurt when it is hurt."""
        if service not in self.graph:
            return set()
        return set(nx.ancestors(self.graph, service)) - {service}

    def depth_from(self, service: str) -> dict[str, int]:
        """Hop count along dependency edges from `service` to everything it depends on."""
        if service not in self.graph:
            return {}
        return dict(nx.single_source_shortest_path_length(self.graph, service))

    def dependency_rank(self, service: str) -> int:
        """How many dependency levels lie below a service: 0 for what depends on nothing, one
        more than its deepest dependency otherwise (a dependency cycle shares one rank). Causes
        tend to sit below their symptoms, so correlation joins towards the lower rank."""
        if self._ranks is None:
            condensed = nx.condensation(self.graph)
            heights: dict[int, int] = {}
            for component in reversed(list(nx.topological_sort(condensed))):
                below = [heights[c] + 1 for c in condensed.successors(component)]
                heights[component] = max(below, default=0)
            mapping = condensed.graph["mapping"]
            self._ranks = {name: heights[mapping[name]] for name in self.graph}
        return self._ranks.get(service, 0)

    def within(self, service: str, hops: int) -> set[str]:
        """Services connected to `service` by at most `hops` edges, in either direction."""
        return set(self.within_distances(service, hops))

    def within_distances(self, service: str, hops: int) -> dict[str, int]:
        """Like `within`, with each service's hop count (0 for `service` itself)."""
        seen = {service: 0}
        if service not in self._undirected:
            return seen
        frontier: deque[str] = deque([service])
        while frontier:
            node = frontier.popleft()
            if seen[node] == hops:
                continue
            for nxt in sorted(self._undirected[node]):
                if nxt not in seen:
                    seen[nxt] = seen[node] + 1
                    frontier.append(nxt)
        return seen
