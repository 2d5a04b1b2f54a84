"""The last hour of a GPU's figures as a line: one way of drawing it, for the GPU page and JupyterLab's GPU panel.

Both draw an SVG ``<polyline>`` of these points in a box of ``WIDTH`` × ``HEIGHT`` (0 % at the bottom, now at the
right edge), the page in its template, the panel in the lab extension."""

from __future__ import annotations

from gpudockerspawner.figures import HOUR

WIDTH, HEIGHT = 160, 28


def polyline(points: list[tuple[float, float | None]], now: float, width: int = WIDTH, height: int = HEIGHT) -> str:
    """Percentages over the last hour as an SVG polyline's points ("x,y ..."); a sample without a value is left
    out (a MIG device has no utilisation figure)."""
    coords = []
    for at, value in points:
        if value is None or at < now - HOUR:
            continue
        x = width * (1 - (now - at) / HOUR)
        y = height - height * min(100.0, max(0.0, value)) / 100
        coords.append(f"{x:.1f},{y:.1f}")
    return " ".join(coords)
