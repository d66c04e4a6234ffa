"""Load the inventory file (models/inventory.py), validated like the catalog.

The Ansible inventory a run over SSH uses, with its per-action key and certificate, is
written by integrations/ansible_ssh.py into the run's private directory.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from models.inventory import Inventory, InventoryError
from runtime.bounded import load_yaml_file


def load_inventory(path: Path, actions: set[str] | None = None) -> Inventory:
    """Parse `path`; InventoryError naming the file and the field on anything invalid.

    With `actions` (the catalog's), every per-action user must name a catalog action.
    """
    try:
        raw = load_yaml_file(path)  # bounded: aliases, depth, sizes (runtime/bounded.py)
    except (OSError, yaml.YAMLError) as exc:
        raise InventoryError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise InventoryError(f"{path}: expected a mapping with 'hosts' and 'services'")
    try:
        inventory = Inventory.model_validate(raw)
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise InventoryError(f"{path}: {detail}") from None
    if actions is not None:
        try:
            inventory.check_actions(actions)
        except InventoryError as exc:
            raise InventoryError(f"{path}: {exc}") from None
    return inventory
