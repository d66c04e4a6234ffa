"""Untrusted JSON -> plain Python data, inside explicit bounds, before any model sees it.

Every ingress (the webhook API, the message-bus consumer) and every JSON file an operator
hands Firebreak parses through `parse_json`. The standard library's parser is fast (C) but
unbounded in the ways that matter here: nesting recurses until `RecursionError`, an integer
longer than 4,300 digits raises a bare `ValueError`, `NaN` and `Infinity` pass although
they are not JSON, and a repeated key silently keeps the last value. So:

1. the bytes must be UTF-8 (RFC 8259 says JSON exchanged between systems is);
2. a pre-scan at C speed (regex and `itertools.accumulate`) measures the nesting depth
   before the parser recurses;
3. the parser's hooks turn over-long numbers, non-JSON constants and duplicate keys into
   markers instead of raising, and a walk over the (now depth-bounded) result refuses the
   first marker, over-long string or over-full container with its field's path
   (`alerts.0.labels.team`, the dotted form pydantic's errors use).

Each refusal is a `BoundsError` whose message names the field and the limit; `status`
is the HTTP answer it maps to (413 when there is too much of something, else 400).
"""

from __future__ import annotations

import json
import re
from array import array
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

import yaml

# A JSON string, escapes included (unrolled so the regex engine never backtracks).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes


@dataclass(frozen=True)
class JsonLimits:
    """Bounds for one parse. The defaults are the webhook's: generous for any real alert."""

    max_depth: int = 32  # an Alertmanager body nests 4 deep
    max_items: int = 1000  # members of one array or object: at most 1000 alerts a request
    max_string: int = 65_536  # characters in one string or key
    max_number: int = 100  # characters in one number literal


WEBHOOK_LIMITS = JsonLimits()


class BoundsError(ValueError):
    """Input refused by a bound or by its syntax, with the field it concerns ('' = the whole)."""

    def __init__(self, problem: str, *, field: str = "", status: int = 400) -> None:
        self.field = field
        self.problem = problem
        self.status = status
        super().__init__(f"{field}: {problem}" if field else problem)


@dataclass(frozen=True)
class _Refused:
    """What a parser hook puts where a value was refused; the walk reports it with its path."""

    problem: str
    key: str | None = None  # for a duplicate key: the key, appended to the object's path


def parse_json(data: bytes | str, limits: JsonLimits = WEBHOOK_LIMITS) -> Any:
    """Parse untrusted JSON within `limits`; raise `BoundsError` naming the field and the limit."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BoundsError(f"not valid JSON: not UTF-8 at byte {exc.start} (JSON must be UTF-8)") from None
    else:
        text = data
    _check_depth(text, limits.max_depth)
    try:
        value = json.loads(
            text,
            parse_int=lambda s: _number(s, int, limits),
            parse_float=lambda s: _number(s, float, limits),
            parse_constant=lambda s: _Refused(f"{s} is not JSON"),
            object_pairs_hook=_object,
        )
    except json.JSONDecodeError as exc:
        raise BoundsError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:  # the pre-scan should have caught it; never a 500 all the same
        raise BoundsError(f"nesting deeper than {limits.max_depth} levels") from None
    _walk(value, limits)
    return value


def _check_depth(text: str, max_depth: int) -> None:
    # Brackets inside strings do not nest: drop the strings, then everything but brackets.
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if len(brackets) <= max_depth:
        return
    steps = array("b", brackets.encode("ascii").translate(_DEPTH_STEP))
    depth = max(accumulate(steps))
    if depth > max_depth:
        raise BoundsError(f"nesting deeper than {max_depth} levels (the limit); this body nests {depth}")


def _number(literal: str, kind: type[int] | type[float], limits: JsonLimits) -> Any:
    if len(literal) > limits.max_number:
        what = "digits" if kind is int else "characters"
        return _Refused(f"a number of {len(literal)} {what}; the limit is {limits.max_number} characters")
    value = kind(literal)
    if kind is float and value in (float("inf"), float("-inf")):
        return _Refused(f"number {literal} is out of range")
    return value


def _object(pairs: list[tuple[str, Any]]) -> Any:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                return _Refused(
                    "duplicate key; the rule: a key may appear once per object, never 'last wins'",
                    key=key,
                )
            seen.add(key)
    return obj


def _walk(root: Any, limits: JsonLimits) -> None:
    """Refuse the first marker, long string or over-full container, in document order."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(root, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if len(value) > limits.max_string:
                raise BoundsError(
                    f"a string of {len(value)} characters; the limit is {limits.max_string}",
                    field=_dotted(path),
                )
        elif isinstance(value, dict):
            if len(value) > limits.max_items:
                raise BoundsError(
                    f"an object of {len(value)} members; the limit is {limits.max_items}",
                    field=_dotted(path),
                    status=413,
                )
            for key in value:
                if len(key) > limits.max_string:
                    raise BoundsError(
                        f"a key of {len(key)} characters; the limit is {limits.max_string}",
                        field=_dotted(path),
                    )
            stack.extend((v, (*path, k)) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            if len(value) > limits.max_items:
                raise BoundsError(
                    f"an array of {len(value)} items; the limit is {limits.max_items} "
                    f"(at most {limits.max_items} alerts per request)",
                    field=_dotted(path),
                    status=413,
                )
            stack.extend((v, (*path, i)) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, _Refused):
            field = _dotted((*path, value.key) if value.key is not None else path)
            raise BoundsError(value.problem, field=field)


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path)


# --- Operator files: YAML (and JSON) that people hand Firebreak ---------------------------------


@dataclass(frozen=True)
class FileLimits:
    """Bounds for a file an operator gives Firebreak (catalog, policy data, topology, rules...)."""

    max_bytes: int = 4 * 1024 * 1024
    max_depth: int = 32
    max_nodes: int = 200_000  # YAML nodes, each alias counted as the nodes it stands for
    max_scalar: int = 65_536  # characters in one scalar
    max_number: int = 100  # characters in one integer or float scalar


FILE_LIMITS = FileLimits()
_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


class UnsafeFileError(yaml.YAMLError):
    """An operator file refused by a bound: `source` names the file, `key` the dotted key path.

    A `yaml.YAMLError`, so every loader's existing `except yaml.YAMLError` reports it with
    the file's name; `problem` and `problem_mark` read like PyYAML's own errors.
    """

    def __init__(self, source: str, key: str, problem: str, mark: yaml.Mark | None = None) -> None:
        self.source = source
        self.key = key
        self.problem = f"{key or '(top level)'}: {problem}"
        self.problem_mark = mark
        where = f" (line {mark.line + 1})" if mark is not None else ""
        super().__init__(f"{source}: {self.problem}{where}")

    def __str__(self) -> str:
        where = f" (line {self.problem_mark.line + 1})" if self.problem_mark is not None else ""
        return f"{self.problem}{where}"


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting depth, nodes (aliases expanded), scalar sizes, duplicate keys."""

    def __init__(self, stream: str, source: str, limits: FileLimits) -> None:
        super().__init__(stream)
        self._source = source
        self._limits = limits
        self._path: list[str] = []
        self._nodes = 0
        self._sizes: dict[int, int] = {}  # id(node) -> nodes it holds, for the aliases to it

    def _refuse(self, problem: str, mark: yaml.Mark | None) -> UnsafeFileError:
        return UnsafeFileError(self._source, ".".join(p for p in self._path if p), problem, mark)

    def _count(self, nodes: int, mark: yaml.Mark | None) -> None:
        self._nodes += nodes
        if self._nodes > self._limits.max_nodes:
            raise self._refuse(
                f"more than {self._limits.max_nodes} nodes with aliases expanded (an alias bomb?)", mark
            )

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if isinstance(index, yaml.ScalarNode):
            self._path.append(str(index.value)[:64])
        elif isinstance(index, int):
            self._path.append(str(index))
        else:
            self._path.append("(key)" if parent is not None else "")
        try:
            return self._compose(parent, index)
        finally:
            self._path.pop()

    def _compose(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self._count(self._sizes.get(id(node), 1), mark)
            return node
        if len(self._path) > self._limits.max_depth:
            raise self._refuse(f"nesting deeper than {self._limits.max_depth} levels (the limit)", mark)
        start = self._nodes
        node = super().compose_node(parent, index)
        self._count(1, mark)
        self._sizes[id(node)] = self._nodes - start
        if isinstance(node, yaml.ScalarNode):
            value = str(node.value)
            if len(value) > self._limits.max_scalar:
                raise self._refuse(
                    f"a value of {len(value)} characters; the limit is {self._limits.max_scalar}", mark
                )
            if node.tag in _NUMBER_TAGS and len(value) > self._limits.max_number:
                raise self._refuse(
                    f"a number of {len(value)} characters; the limit is {self._limits.max_number}", mark
                )
        elif isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    if key.value in seen:
                        self._path.append(str(key.value)[:64])
                        raise self._refuse("duplicate key; a key may appear once per mapping", key.start_mark)
                    seen.add(key.value)
        return node


def load_yaml_text(text: str, source: str, limits: FileLimits = FILE_LIMITS) -> Any:
    """Parse YAML an operator wrote, within `limits`; `UnsafeFileError` names `source` and the key."""
    if len(text) > limits.max_bytes:
        raise UnsafeFileError(source, "", f"larger than {limits.max_bytes} bytes (the limit)")
    loader = _BoundedLoader(text, source, limits)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_yaml_file(path: Path, limits: FileLimits = FILE_LIMITS) -> Any:
    """Read and parse an operator's YAML file within `limits` (size read first, UTF-8 only)."""
    return load_yaml_text(_read_text(path, limits), str(path), limits)


def load_json_file(path: Path, limits: FileLimits = FILE_LIMITS) -> Any:
    """Read and parse an operator's JSON file (e.g. an audit export) with `parse_json`'s bounds."""
    text = _read_text(path, limits)
    bounds = JsonLimits(
        max_depth=limits.max_depth,
        max_items=limits.max_nodes,
        max_string=limits.max_scalar,
        max_number=limits.max_number,
    )
    try:
        return parse_json(text, bounds)
    except BoundsError as exc:
        raise UnsafeFileError(str(path), exc.field, exc.problem) from None


def _read_text(path: Path, limits: FileLimits) -> str:
    with path.open("rb") as handle:  # OSError is the caller's to report, as before
        data = handle.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise UnsafeFileError(str(path), "", f"larger than {limits.max_bytes} bytes (the limit)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeFileError(str(path), "", f"not UTF-8 (byte {exc.start})") from None
