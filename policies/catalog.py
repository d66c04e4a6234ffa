"""Load the action catalog (`playbooks/catalog.yaml`) and check that its playbooks exist."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml
from pydantic import ValidationError

from models.catalog import ActionSpec, Catalog, CatalogError
from runtime.bounded import load_yaml_file


def load_catalog(directory: Path) -> Catalog:
    """The catalog in `directory`; raises CatalogError naming the file and the action."""
    path = directory / "catalog.yaml"
    try:
        raw = load_yaml_file(path)  # bounded: aliases, depth, sizes (runtime/bounded.py)
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("actions"), dict):
        raise CatalogError(f"{path}: expected a mapping with an 'actions' mapping")
    actions: dict[str, ActionSpec] = {}
    for name, body in raw["actions"].items():
        try:
            spec = ActionSpec.model_validate({"name": name, **(body or {})})
        except (ValidationError, jsonschema.SchemaError) as exc:
            raise CatalogError(f"{path}: action {name!r}: {exc}") from exc
        if not (directory / spec.playbook).is_file():
            raise CatalogError(f"{path}: action {name!r}: no playbook {spec.playbook}")
        if spec.rollback is not None and not (directory / spec.rollback).is_file():
            raise CatalogError(f"{path}: action {name!r}: no rollback playbook {spec.rollback}")
        # Over SSH (an inventory is configured) the same action runs these instead.
        for playbook in (spec.ssh_playbook, spec.ssh_rollback):
            if playbook is not None and not (directory / playbook).is_file():
                raise CatalogError(f"{path}: action {name!r}: no playbook {playbook}")
        actions[name] = spec
    return Catalog(actions=actions, directory=directory)
