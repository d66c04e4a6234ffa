"""The inventory file is validated like the catalog: a clear refusal naming the field, and a
target outside it is refused with the reason (integrations/inventory.py, models/inventory.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from integrations.inventory import load_inventory
from models.inventory import Inventory, InventoryError
from policies.catalog import load_catalog
from runtime.settings import PROJECT_ROOT
from tests.unit.test_operator_files import HOSTILE

ACTIONS = set(load_catalog(PROJECT_ROOT / "playbooks").actions)
EXAMPLE = PROJECT_ROOT / "playbooks" / "inventory.example.yaml"


def example() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return loaded


def test_the_documented_example_loads() -> None:
    inventory = load_inventory(EXAMPLE, ACTIONS)
    ((name, host),) = inventory.resolve("checkout", "restart_service")
    assert (name, host.users["restart_service"], host.port) == ("app-1", "fb-restart", 22)


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (["hosts", "app-1", "colour"], "blue", "hosts.app-1.colour"),
        (["hosts", "app-1", "address"], "{{ lookup('pipe', 'id') }}", "hosts.app-1.address"),
        (["hosts", "app-1", "address"], "all,evil", "hosts.app-1.address"),
        (["hosts", "app-1", "port"], 70000, "hosts.app-1.port"),
        (["hosts", "app-1", "host_key"], "ssh-ed25519 AAAA {{ x }}", "hosts.app-1.host_key"),
        (["hosts", "app-1", "python"], "python3", "hosts.app-1.python"),
        (["hosts", "app-1", "state_dir"], "/var/lib/../../etc", "hosts.app-1.state_dir"),
        (["hosts", "app-1", "users", "restart_service"], "root;id", "hosts.app-1.users.restart_service"),
        (["services", "checkout", "hosts"], ["app-2"], "services.checkout.hosts"),
        (["services", "checkout", "hosts"], [], "services.checkout.hosts"),
        (["services", "checkout", "log_dir"], "var/log", "services.checkout.log_dir"),
        (["services", "Checkout!"], {"hosts": ["app-1"]}, "services.Checkout!"),
    ],
)
def test_a_bad_field_is_refused_naming_it(tmp_path: Path, path: list[str], value: Any, named: str) -> None:
    raw = example()
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    file = tmp_path / "inventory.yaml"
    file.write_text(yaml.safe_dump(raw))
    with pytest.raises(InventoryError) as refused:
        load_inventory(file, ACTIONS)
    assert str(file) in str(refused.value) and named in str(refused.value), refused.value


def test_a_user_for_an_action_not_in_the_catalog_is_refused(tmp_path: Path) -> None:
    raw = example()
    raw["hosts"]["app-1"]["users"]["reboot_host"] = "fb-reboot"
    file = tmp_path / "inventory.yaml"
    file.write_text(yaml.safe_dump(raw))
    with pytest.raises(
        InventoryError, match=r"hosts\.app-1\.users\.reboot_host: not an action in the catalog"
    ):
        load_inventory(file, ACTIONS)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_yaml_is_refused_in_bounded_time(tmp_path: Path, case: str) -> None:
    text, words = HOSTILE[case]
    file = tmp_path / "inventory.yaml"
    file.write_text(text)
    started = time.monotonic()
    with pytest.raises(InventoryError) as refused:
        load_inventory(file, ACTIONS)
    assert time.monotonic() - started < 5
    assert "inventory.yaml" in str(refused.value)
    for word in words:
        assert word in str(refused.value), (word, refused.value)


def test_a_target_outside_the_inventory_is_refused_with_the_reason() -> None:
    inventory = Inventory.model_validate(example())
    for target in ("payments", "app-1", "all", "localhost"):
        with pytest.raises(
            InventoryError, match=r"action\.target: .* is not in the inventory; nothing was run"
        ):
            inventory.resolve(target, "restart_service")
    raw = example()
    del raw["hosts"]["app-1"]["users"]["clear_disk_space"]
    with pytest.raises(InventoryError, match=r"hosts\.app-1\.users: no user for action 'clear_disk_space'"):
        Inventory.model_validate(raw).resolve("checkout", "clear_disk_space")
