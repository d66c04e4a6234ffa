"""Topology: loading both export shapes, validation errors that name file and service, walks."""

from __future__ import annotations

from pathlib import Path

import pytest

from rca.topology import ServiceKind, Topology, TopologyError

GOOD = """
services:
  edge-lb: {kind: lb, tier: 0, owner: team-edge, depends_on: [frontend]}
  frontend: {tier: 1, owner: team-web, depends_on: [checkout, catalog]}
  checkout: {depends_on: [payments, orders-db]}
  catalog: {depends_on: orders-db}
  payments: {depends_on: [stripe-api, orders-db]}
  orders-db: {kind: database}
  stripe-api: {kind: external}
"""


def write(tmp_path: Path, text: str, name: str = "topology.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_loads_mapping_form_with_kinds_and_edges(tmp_path: Path) -> None:
    topo = Topology.load(write(tmp_path, GOOD))
    assert len(topo) == 7
    assert topo.kind("orders-db") == ServiceKind.DATABASE
    assert topo.kind("checkout") == ServiceKind.SERVICE
    assert topo.services["frontend"].owner == "team-web"
    assert topo.dependencies("checkout") == ["orders-db", "payments"]
    assert topo.callers("orders-db") == ["catalog", "checkout", "payments"]
    assert topo.dependencies("catalog") == ["orders-db"]  # a single string is one dependency


def test_loads_list_form(tmp_path: Path) -> None:
    topo = Topology.load(
        write(
            tmp_path,
            "services:\n  - name: api\n    depends_on: [db]\n  - name: db\n    kind: database\n",
        )
    )
    assert topo.dependencies("api") == ["db"]
    assert topo.kind("db") == ServiceKind.DATABASE


def test_blast_radius_is_everyone_that_depends_on_the_target_transitively(tmp_path: Path) -> None:
    topo = Topology.load(write(tmp_path, GOOD))
    assert topo.blast_radius("orders-db") == {"catalog", "checkout", "payments", "frontend", "edge-lb"}
    assert topo.blast_radius("stripe-api") == {"payments", "checkout", "frontend", "edge-lb"}
    assert topo.blast_radius("edge-lb") == set()
    assert topo.blast_radius("not-there") == set()
    assert topo.downstream("checkout") == {"payments", "orders-db", "stripe-api"}


def test_dependency_rank_counts_the_levels_below_and_a_cycle_shares_one(tmp_path: Path) -> None:
    topo = Topology.load(write(tmp_path, GOOD))
    ranks = {name: topo.dependency_rank(name) for name in topo.services}
    assert ranks == {
        "orders-db": 0,
        "stripe-api": 0,
        "catalog": 1,
        "payments": 1,
        "checkout": 2,
        "frontend": 3,
        "edge-lb": 4,
    }
    assert topo.dependency_rank("not-in-the-file") == 0
    cyclic = Topology.from_data(
        {
            "allow_cycles": True,
            "services": {"a": {"depends_on": ["b"]}, "b": {"depends_on": ["a", "c"]}, "c": {}},
        }
    )
    assert [cyclic.dependency_rank(n) for n in "abc"] == [1, 1, 0]


def test_within_hops_goes_both_directions(tmp_path: Path) -> None:
    topo = Topology.load(write(tmp_path, GOOD))
    assert topo.within("payments", 1) == {"payments", "checkout", "stripe-api", "orders-db"}
    assert topo.within_distances("payments", 2)["frontend"] == 2
    assert topo.within("unknown", 3) == {"unknown"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "services:\n  api: {depends_on: [dbx]}\n  db: {}\n",
            "service 'api' depends on unknown service 'dbx'",
        ),
        (
            "services:\n  a: {depends_on: [b]}\n  b: {depends_on: [c]}\n  c: {depends_on: [a]}\n",
            "dependency cycle a -> b -> c -> a",
        ),
        ("services:\n  a: {depends_on: [a]}\n", "service 'a' depends on itself"),
        ("services:\n  a: {kind: mainframe}\n", "service 'a': kind:"),
        ("services:\n  a: {tier: high}\n", "service 'a': tier:"),
        ("services:\n  a: [b]\n", "service 'a': expected a mapping"),
        ("services:\n  - name: a\n  - name: a\n", "service 'a' is defined twice"),
        ("services:\n  - depends_on: [a]\n", "services[0]: expected a mapping with a 'name'"),
        ("services: 3\n", "'services' must be a mapping or a list"),
        ("- just\n- a list\n", "expected a mapping with a 'services' key"),
        ("services:\n  a: {depends_on: [b]\n", "not valid YAML"),
        ("allow_cycles: maybe\nservices: {}\n", "allow_cycles must be true or false"),
    ],
)
def test_validation_errors_name_the_file_and_the_service(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text, "cmdb-export.yaml")
    with pytest.raises(TopologyError) as caught:
        Topology.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:"), message
    assert expected in message, message


def test_cycles_are_accepted_when_the_file_allows_them(tmp_path: Path) -> None:
    topo = Topology.load(
        write(tmp_path, "allow_cycles: true\nservices:\n  a: {depends_on: [b]}\n  b: {depends_on: [a]}\n")
    )
    assert topo.blast_radius("a") == {"b"}


def test_missing_file_is_a_topology_error(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read"):
        Topology.load(tmp_path / "nope.yaml")


def test_reload_picks_up_changes_and_keeps_the_old_graph_on_error(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    topo = Topology.load(path)
    path.write_text(GOOD + "  search: {depends_on: [catalog]}\n")
    reloaded = topo.reload()
    assert "search" in reloaded and "search" not in topo
    path.write_text(GOOD + "  search: {depends_on: [elastic]}\n")
    with pytest.raises(TopologyError, match="unknown service 'elastic'"):
        reloaded.reload()
    assert "search" in reloaded  # still usable
    with pytest.raises(TopologyError, match="not loaded from a file"):
        Topology.from_data({"services": {}}).reload()


def test_round_trips_through_data(tmp_path: Path) -> None:
    topo = Topology.load(write(tmp_path, GOOD))
    again = Topology.from_data(topo.to_data())
    assert sorted(again.graph.edges) == sorted(topo.graph.edges)
    assert again.kind("stripe-api") == ServiceKind.EXTERNAL
