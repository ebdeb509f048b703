"""The Markdown tables the benchmarks print (padded, so that they also read in a terminal)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: bool = True) -> str:
    """A Markdown table; with ``numeric`` every column but the first is right-aligned (numbers),
    else all are left-aligned."""
    cells = [list(map(str, r)) for r in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def right(i: int) -> bool:
        return numeric and i > 0

    def line(row: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if right(i) else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|" + "|".join("-" * (w + 1) + ":" if right(i) else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    )
    return "\n".join([line(headers), rule, *map(line, cells)])
