"""What Firebreak hands to Ansible is data, never a template.

ansible-core renders Jinja in variables it trusts, and it trusts extra vars: an
`incident_id` of `{{ lookup('pipe', ...) }}` would run on the worker host, even in check
mode. So every value goes to Ansible in a vars file (`-e @file`) in which each string is
tagged `!unsafe`: Ansible substitutes it where a playbook names it and never renders what
is inside. Identifiers that playbooks use in paths and records must also be plain tokens;
the catalog's schema already bounds every param (models/catalog.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from models.catalog import CatalogError

# Workflow ids, idempotency keys, targets: letters, digits and . _ : @ -, first one alphanumeric.
PLAIN_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,254}")


def plain_identifiers(values: Mapping[str, str | None]) -> None:
    """Raise CatalogError naming the first value that is not a plain identifier."""
    for name, value in values.items():
        if value is not None and PLAIN_IDENTIFIER.fullmatch(value) is None:
            shown = value if len(value) <= 60 else value[:57] + "..."
            raise CatalogError(
                f"{name}: {shown!r} is not a plain identifier (letters, digits, . _ : @ -; at most 255)"
            )


class _UnsafeText(str):
    __slots__ = ()


class _UnsafeDumper(yaml.SafeDumper):
    pass


def _represent_unsafe(dumper: yaml.SafeDumper, value: _UnsafeText) -> yaml.ScalarNode:
    # Double-quoted: any character (newlines, control characters) survives as an escape.
    return dumper.represent_scalar("!unsafe", str(value), style='"')


_UnsafeDumper.add_representer(_UnsafeText, _represent_unsafe)


def _mark(value: Any) -> Any:
    if isinstance(value, str):
        return _UnsafeText(value)
    if isinstance(value, Mapping):
        return {str(k): _mark(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mark(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    raise CatalogError(f"value of type {type(value).__name__} cannot be passed to Ansible")


def unsafe_vars_yaml(values: Mapping[str, Any]) -> str:
    """A YAML vars document in which every string is `!unsafe`."""
    for name in values:
        if PLAIN_IDENTIFIER.fullmatch(name) is None or not name.isidentifier():
            raise CatalogError(f"{name!r}: not a valid Ansible variable name")
    return yaml.dump(
        _mark(dict(values)), Dumper=_UnsafeDumper, allow_unicode=True, sort_keys=True, width=1 << 30
    )
