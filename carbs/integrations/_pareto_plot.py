"""The performance-cost plot the W&B logger attaches to a run, drawn with matplotlib."""

from __future__ import annotations

import io
from collections.abc import Sequence

Point = tuple[float, float]  # (cost, output)


def observed_front(points: Sequence[Point], sign: int) -> list[Point]:
    """The cheapest-first staircase of points that beat every cheaper one.

    ``sign`` is ``1`` when a higher output is better, ``-1`` when lower is.
    """
    front: list[Point] = []
    for cost, output in sorted(points, key=lambda p: (p[0], -p[1] * sign)):
        if not front or output * sign > front[-1][1] * sign:
            front.append((cost, output))
    return front


def render_png(points: Sequence[Point], front: Sequence[Point]) -> bytes:
    """Observations as dots and the Pareto set as a staircase, as PNG bytes.

    Raises ``ImportError`` without matplotlib. The cost axis turns
    logarithmic when the costs span more than a decade.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A bare Figure with its own canvas: no pyplot, no global state, no GUI backend.
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if points:
        ax.scatter([c for c, _ in points], [o for _, o in points], s=12, alpha=0.5, label="observations")
    ordered = sorted(front)
    if ordered:
        ax.step([c for c, _ in ordered], [o for _, o in ordered], where="post", color="C3")
        ax.scatter([c for c, _ in ordered], [o for _, o in ordered], color="C3", s=30, label="Pareto set")
    costs = [c for c, _ in [*points, *ordered]]
    if costs and min(costs) > 0 and max(costs) / min(costs) > 10:
        ax.set_xscale("log")
    ax.set_xlabel("cost")
    ax.set_ylabel("output")
    ax.set_title("performance vs cost")
    if points or ordered:
        ax.legend(loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
