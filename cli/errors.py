"""How a `firebreak` command fails: the message in red on stderr, and an exit code."""

from __future__ import annotations

import typer


def fail(message: str, code: int = 1) -> typer.Exit:
    """The exit to raise: 1 when the operation failed, 2 when the input was wrong."""
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)
