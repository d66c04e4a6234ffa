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


def unsafe_vars_yaml(values: Mapping[str, Any]) -> str:
    """A YAML vars document whose root mapping is tagged `!unsafe`.

    Ansible marks everything under an `!unsafe` node untrusted, however deep. The tag sits on
    the root mapping, not on each string: ansible-core 2.19 re-resolves an `!unsafe` scalar as
    if it were plain, which turns "123" into an int and fails outright on "*", "&" or "!";
    under an unsafe mapping, quoted strings stay strings.
    """
    for name in values:
        if PLAIN_IDENTIFIER.fullmatch(name) is None or not name.isidentifier():
            raise CatalogError(f"{name!r}: not a valid Ansible variable name")
        _check_plain_data(name, values[name])
    body = yaml.safe_dump(dict(values), allow_unicode=True, sort_keys=True, width=1 << 30)
    return "!unsafe\n" + body


def _check_plain_data(name: str, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_plain_data(f"{name}.{key}", item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_plain_data(f"{name}[{index}]", item)
    elif not (value is None or isinstance(value, str | bool | int | float)):
        raise CatalogError(f"{name}: a value of type {type(value).__name__} cannot be passed to Ansible")
