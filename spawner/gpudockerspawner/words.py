"""How the hub's messages say a time span and a place in line: one way everywhere a person reads one."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """``0.2 seconds``, ``45 seconds``, ``30 minutes``, ``2 hours 5 minutes``: whole units (tenths under ten
    seconds), the minutes dropped from two hours up where they are zero."""
    if seconds < 120:
        shown = round(seconds, 1) if seconds < 10 else round(seconds)
        return f"{shown:g} second{'s' if shown != 1 else ''}"
    seconds = int(round(seconds))
    if seconds < 7200:
        return f"{seconds // 60} minutes"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} hours" + (f" {minutes} minute{'s' if minutes != 1 else ''}" if minutes else "")


def ordinal(place: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st."""
    suffix = "th" if 10 <= place % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(place % 10, "th")
    return f"{place}{suffix}"
