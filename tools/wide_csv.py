"""What the converters of wide metric files share: one row per sample time, one column per
series, the time first. Tooling, not runtime."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path


class ConvertError(ValueError):
    """The raw data is not what a converter reads; the message names the file."""


def open_csv(path: Path) -> Iterator[list[str]]:
    """The rows of a CSV file; a file that cannot be read is refused naming it."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ConvertError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        yield from csv.reader(handle)


def timed_rows(
    rows: Iterator[list[str]], path: Path, width: int, first_line: int
) -> Iterator[tuple[int, float, list[str]]]:
    """(line number, time, the row's cells after the time) for each non-empty data row; a
    ragged row or a time that is not a number is refused naming the file and line."""
    for line_no, row in enumerate(rows, start=first_line):
        if not row:
            continue
        if len(row) != width:
            raise ConvertError(f"{path}:{line_no}: expected {width} columns, got {len(row)}")
        try:
            ts = float(row[0])
        except ValueError:
            raise ConvertError(f"{path}:{line_no}: time {row[0]!r} is not a number") from None
        yield line_no, ts, row[1:]
