"""Name-valued CLI options checked against their registry: an unknown name is a usage error (exit code 2)
that lists the valid names, raised before the command starts anything (no stack, no files)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Optional

import typer


def _reject(unknown: list[str], valid: list[str], option: str, what: Optional[str]) -> typer.BadParameter:
    noun = what or option.lstrip("-").lower()
    return typer.BadParameter(f"unknown {noun} {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}",
                              param_hint=option)


def one_of(value: str, valid: Iterable[str], option: str, what: Optional[str] = None) -> str:
    """`value` if it is one of `valid`, else typer.BadParameter naming `option` and listing `valid`."""
    valid = list(valid)
    if value not in valid:
        raise _reject([value], valid, option, what)
    return value


def each_one_of(csv: Optional[str], valid: Iterable[str], option: str, what: Optional[str] = None) -> list[str]:
    """The comma-separated names in `csv` (blanks dropped), each checked like one_of (all unknown ones named)."""
    valid = list(valid)
    names = [n.strip() for n in (csv or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise _reject(unknown, valid, option, what)
    return names
