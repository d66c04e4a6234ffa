"""runtime.bounded.parse_json: each bound holds exactly at its limit and names the field past it."""

from __future__ import annotations

import json

import pytest

from runtime.bounded import WEBHOOK_LIMITS, BoundsError, JsonLimits, parse_json


def refused(data: bytes | str, limits: JsonLimits = WEBHOOK_LIMITS) -> BoundsError:
    with pytest.raises(BoundsError) as caught:
        parse_json(data, limits)
    return caught.value


@pytest.mark.parametrize("shape", [("[", "]"), ('{"x":', "}")])
def test_depth_is_bounded_at_the_limit(shape: tuple[str, str]) -> None:
    opening, closing = shape
    depth = WEBHOOK_LIMITS.max_depth
    assert parse_json(opening * depth + "1" + closing * depth) is not None
    error = refused(opening * (depth + 1) + "1" + closing * (depth + 1))
    assert error.status == 400 and f"deeper than {depth}" in str(error)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"summary": "[[[[{{{{" * 100, "escaped": 'a\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['})
    assert parse_json(text)["summary"].startswith("[[[[")


def test_unclosed_deep_input_is_refused_before_the_parser_recurses() -> None:
    assert "deeper than" in str(refused(b'{"alerts": [' * 100_000))


def test_numbers_are_bounded_and_named() -> None:
    limit = WEBHOOK_LIMITS.max_number
    assert parse_json('{"n": ' + "9" * limit + "}")["n"] == int("9" * limit)
    error = refused(b'{"alerts": [{"labels": {"replicas": ' + b"7" * 5000 + b"}}]}")
    assert error.field == "alerts.0.labels.replicas" and "5000 digits" in error.problem
    assert refused(b'{"f": 1e999999}').field == "f"
    assert refused(b'{"f": ' + b"1." + b"1" * 200 + b"}").field == "f"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_refused(constant: str) -> None:
    error = refused(f'{{"a": [1, {constant}]}}')
    assert error.field == "a.1" and "not JSON" in error.problem


def test_duplicate_keys_are_refused_with_their_path() -> None:
    error = refused(b'{"labels": {"team": "a", "team": "b"}}')
    assert error.field == "labels.team" and "duplicate key" in error.problem and error.status == 400


def test_items_and_members_are_bounded_with_413() -> None:
    limit = WEBHOOK_LIMITS.max_items
    assert len(parse_json(json.dumps([0] * limit))) == limit
    error = refused(json.dumps([0] * (limit + 1)))
    assert error.status == 413 and error.field == "" and f"limit is {limit}" in error.problem
    error = refused(json.dumps({"labels": {f"k{i}": "v" for i in range(limit + 1)}}))
    assert error.status == 413 and error.field == "labels"


def test_strings_and_keys_are_bounded() -> None:
    limit = WEBHOOK_LIMITS.max_string
    assert parse_json(json.dumps({"s": "a" * limit}))
    assert refused(json.dumps({"s": ["a" * (limit + 1)]})).field == "s.0"
    assert "key of" in refused(json.dumps({"k" * (limit + 1): 1})).problem


def test_only_utf8_is_json() -> None:
    assert parse_json('{"name": "é☃"}'.encode()) == {"name": "é☃"}
    for data in ('{"a": 1}'.encode("utf-16"), b'{"a": "\xff"}', '{"a": "é"}'.encode("latin-1")):
        assert "not UTF-8" in str(refused(data))


def test_syntax_errors_say_where() -> None:
    error = refused(b'{"a": [1, 2')
    assert error.status == 400 and "line 1" in error.problem


def test_custom_limits_apply() -> None:
    small = JsonLimits(max_depth=2, max_items=2, max_string=3, max_number=2)
    assert parse_json('[["abc", 12]]', small) == [["abc", 12]]
    assert refused("[[[1]]]", small).problem.startswith("nesting")
    assert refused('["abcd"]', small).field == "0"
    assert refused("[123]", small).field == "0"
