"""What every ``litmus`` command prints the same way: durations and aligned tables (not a command: ``_``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["format_duration", "format_table"]


def format_duration(seconds: float | None) -> str:
    """``2.1ms``, ``250ms``, ``4.25s``, ``5m03s``, ``2h04m``; ``-`` for none.

    Three significant digits under a minute (milliseconds under a second), then
    minutes and seconds, and from an hour on hours and minutes.
    """
    if seconds is None:
        return "-"
    if seconds <= 0:
        return "0ms"
    if seconds < 1:
        text = f"{seconds * 1000:.3g}"
        if float(text) < 1000:
            return f"{text}ms"
    if seconds < 59.95:
        return f"{seconds:.3g}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Rows under a header, columns left-aligned and two spaces apart, no trailing blanks."""
    table = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table)
