"""Matplotlib figures of a :class:`~carbs.analysis.ScalingAnalysis`.

Figures are built on :class:`matplotlib.figure.Figure` directly, never
through ``pyplot``, so nothing here touches global state or needs a display:
it works in threads, on servers and in notebooks alike. Every function takes
an optional ``ax`` to draw into an existing figure.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from carbs._extras import require
from carbs.analysis.analyze import ScalingAnalysis, is_success
from carbs.analysis.scaling import POWER
from carbs.optimizer.space import ChoiceSpace, LogitSpace, LogSpace, Param

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

FORMATS = ("png", "svg")


def require_matplotlib() -> ModuleType:
    """``matplotlib.figure``, or a :class:`MissingExtraError` naming the ``plot`` extra."""
    return require("matplotlib.figure", library="matplotlib", extra="plot", what="plotting (carbs plot, carbs report)")

_FRONT_COLOR = "#c0392b"
_FIT_COLOR = "#1f3b73"
_FAIL_COLOR = "#d35400"


def _figure(figsize: tuple[float, float]) -> Figure:
    figure = require_matplotlib()
    return figure.Figure(figsize=figsize, layout="constrained")


def _new_or_existing(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.get_figure(), ax  # type: ignore[return-value]
    fig = _figure(figsize)
    return fig, fig.add_subplot()


def _robust_limits(core: np.ndarray, others: np.ndarray, pad: float = 0.08) -> tuple[float, float]:
    """Limits that show all of ``core`` and the central 90% of ``others``."""
    vals = [core] if core.size else []
    if others.size:
        vals.append(np.percentile(others, [5, 95]))
    if not vals:
        return (0.0, 1.0)
    allv = np.concatenate(vals)
    lo, hi = float(allv.min()), float(allv.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
    return lo - pad * span, hi + pad * span


def _cost_grid(analysis: ScalingAnalysis, target_cost: float | None) -> np.ndarray:
    lo, hi = analysis.observed_cost_range
    if target_cost is not None:
        lo, hi = min(lo, target_cost), max(hi, target_cost)
    return np.geomspace(lo, hi, 200)


def plot_pareto_front(
    analysis: ScalingAnalysis, ax: Axes | None = None, target_cost: float | None = None
) -> Figure:
    """All trials (cost on a log axis vs output) coloured by order, failures marked,
    the Pareto set as a staircase and the fitted front with its interval."""
    fig, ax = _new_or_existing(ax, (7.5, 4.6))
    obs = analysis.observations
    order = np.array([analysis.trial_number(i) for i in range(len(obs))])
    ok = np.array([is_success(o) for o in obs], dtype=bool)
    costs = np.array([float(o.cost) for o in obs])
    outputs = np.array([float(o.output) if is_success(o) else np.nan for o in obs])
    if ok.any():
        sc = ax.scatter(costs[ok], outputs[ok], c=order[ok], cmap="viridis", s=16, alpha=0.85,
                        vmin=0, vmax=max(int(order.max()), 1), linewidths=0, label="trial")
        fig.colorbar(sc, ax=ax, label="trial number", pad=0.01)
    pareto = analysis.pareto_points
    p_cost = np.array([p.cost for p in pareto])
    p_out = np.array([p.output for p in pareto])
    if pareto:
        ax.step(p_cost, p_out, where="post", color=_FRONT_COLOR, lw=1.4, alpha=0.8)
        low = analysis.pareto_weights < 1
        ax.scatter(p_cost[~low], p_out[~low], s=52, facecolors="none", edgecolors=_FRONT_COLOR,
                   linewidths=1.6, label="Pareto set", zorder=3)
        if low.any():
            ax.scatter(p_cost[low], p_out[low], s=52, facecolors="none", edgecolors="0.55",
                       linewidths=1.4, linestyle="--", label="Pareto (down-weighted)", zorder=3)
    front = analysis.front
    if front is not None:
        grid = _cost_grid(analysis, target_cost)
        band = front.predict_interval(grid)
        ax.fill_between(grid, band[0], band[1], color=_FIT_COLOR, alpha=0.15, lw=0)
        ax.plot(grid, front.predict(grid), color=_FIT_COLOR, lw=1.6, ls="--",
                label=front.formula())
        if target_cost is not None:
            ax.axvline(target_cost, color="0.4", ls=":", lw=1)
    n_fail = int((~ok).sum())
    if n_fail:
        # Failures have no output: mark their cost along the worse edge.
        y_frac = 0.04 if analysis.better_direction_sign > 0 else 0.96
        ax.scatter(costs[~ok], np.full(n_fail, y_frac), transform=ax.get_xaxis_transform(),
                   marker="x", color=_FAIL_COLOR, s=30, lw=1.4, label=f"failed ({n_fail})",
                   clip_on=False, zorder=4)
    ax.set_xscale("log")
    finite = outputs[ok]
    if finite.size:
        ax.set_ylim(*_robust_limits(p_out, finite))
    ax.set_xlabel("cost")
    ax.set_ylabel("output")
    goal = "lower" if analysis.better_direction_sign < 0 else "higher"
    ax.set_title(f"Pareto front ({goal} is better)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.85)
    return fig


def numeric_params(params: Sequence[Param]) -> list[Param]:
    """The parameters that can have a scaling law (all but categorical ones)."""
    return [p for p in params if not isinstance(p.space, ChoiceSpace)]


def plot_parameter(
    analysis: ScalingAnalysis, param: str, ax: Axes | None = None,
    target_cost: float | None = None,
) -> Figure:
    """One parameter against cost: every trial, the Pareto set and the fitted law."""
    by_name = {p.name: p for p in analysis.params}
    if param not in by_name:
        raise ValueError(f"param {param!r} is not one of {sorted(by_name)}")
    spec = by_name[param]
    if isinstance(spec.space, ChoiceSpace):
        raise ValueError(f"param {param!r} is categorical and has no scaling law to plot")
    fig, ax = _new_or_existing(ax, (4.6, 3.6))
    succ = analysis.successes
    ax.scatter([float(o.cost) for o in succ], [float(o.input[param]) for o in succ], s=9,
               color="0.72", linewidths=0, label="trials")
    pareto = analysis.pareto_points
    if pareto:
        pc = np.array([p.cost for p in pareto])
        pv = np.array([float(p.input[param]) for p in pareto])
        low = analysis.pareto_weights < 1
        ax.scatter(pc[~low], pv[~low], s=34, color=_FRONT_COLOR, zorder=3, label="Pareto set")
        if low.any():
            ax.scatter(pc[low], pv[low], s=34, facecolors="none", edgecolors=_FRONT_COLOR,
                       zorder=3, label="down-weighted")
    law = analysis.laws.get(param)
    if law is not None:
        grid = _cost_grid(analysis, target_cost)
        band = law.predict_interval(grid)
        ax.fill_between(grid, band[0], band[1], color=_FIT_COLOR, alpha=0.15, lw=0)
        ax.plot(grid, law.predict(grid), color=_FIT_COLOR, lw=1.6, ls="--")
        lo, hi = law.exponent_interval
        label = "e" if law.form == POWER else "slope"
        ax.text(0.03, 0.97, f"{label} = {law.exponent:+.3f} [{lo:+.3f}, {hi:+.3f}]",
                transform=ax.transAxes, va="top", fontsize=8,
                bbox={"boxstyle": "round", "fc": "white", "ec": "0.8", "alpha": 0.9})
        if target_cost is not None:
            v = float(law.predict(target_cost))
            iv = law.predict_interval(target_cost)[:, 0]
            ax.errorbar([target_cost], [v], yerr=[[v - iv[0]], [iv[1] - v]], fmt="*",
                        color=_FIT_COLOR, ms=11, capsize=3, zorder=4, label="extrapolated")
            ax.axvline(target_cost, color="0.4", ls=":", lw=1)
    else:
        reason = analysis.skipped.get(param, "no law")
        ax.text(0.03, 0.97, f"no law: {reason[:60]}", transform=ax.transAxes, va="top",
                fontsize=7, color="0.35")
    ax.set_xscale("log")
    if isinstance(spec.space, LogSpace):
        ax.set_yscale("log")
    elif isinstance(spec.space, LogitSpace):
        ax.set_yscale("logit")
    ax.set_xlabel("cost")
    ax.set_ylabel(param)
    ax.set_title(param if law is None else law.formula(), fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower right", fontsize=7, framealpha=0.85)
    return fig


def plot_scaling_laws(
    analysis: ScalingAnalysis, params: Sequence[str] | None = None,
    target_cost: float | None = None, ncols: int = 3,
) -> Figure:
    """A grid with one :func:`plot_parameter` panel per numeric parameter."""
    names = [p.name for p in numeric_params(analysis.params)] if params is None else list(params)
    if not names:
        raise ValueError("the study has no numeric parameter to plot")
    ncols = max(1, min(ncols, len(names)))
    nrows = math.ceil(len(names) / ncols)
    fig = _figure((4.4 * ncols, 3.5 * nrows))
    for i, name in enumerate(names):
        plot_parameter(analysis, name, ax=fig.add_subplot(nrows, ncols, i + 1),
                       target_cost=target_cost)
    fig.suptitle("Best settings against cost (Pareto set) with fitted laws", fontsize=11)
    return fig


def plot_best_so_far(analysis: ScalingAnalysis, ax: Axes | None = None) -> Figure:
    """Best output so far against cumulative cost (failures count toward the cost)."""
    fig, ax = _new_or_existing(ax, (7.5, 4.0))
    obs = analysis.observations
    if not obs:
        raise ValueError("no finished trials to plot")
    cum = np.cumsum([float(o.cost) for o in obs])
    ok = np.array([is_success(o) for o in obs], dtype=bool)
    sign = analysis.better_direction_sign
    outputs = np.array([float(o.output) if ok[i] else np.nan for i, o in enumerate(obs)])
    best = np.full(len(obs), np.nan)
    running = -math.inf
    for i, v in enumerate(outputs):
        if ok[i] and v * sign > running:
            running = v * sign
        best[i] = running * sign if math.isfinite(running) else np.nan
    ax.scatter(cum[ok], outputs[ok], s=10, color="0.65", linewidths=0, label="trial output")
    ax.step(cum, best, where="post", color=_FRONT_COLOR, lw=1.8, label="best so far")
    n_fail = int((~ok).sum())
    if n_fail:
        y_frac = 0.04 if sign > 0 else 0.96
        ax.scatter(cum[~ok], np.full(n_fail, y_frac), transform=ax.get_xaxis_transform(),
                   marker="x", color=_FAIL_COLOR, s=26, lw=1.3, label=f"failed ({n_fail})",
                   clip_on=False)
    finite_best = best[np.isfinite(best)]
    if ok.any():
        ax.set_ylim(*_robust_limits(finite_best, outputs[ok]))
    ax.set_xscale("log")
    ax.set_xlabel("cumulative cost")
    ax.set_ylabel("output")
    ax.set_title("Best output against cumulative cost")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.85)
    return fig


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    """Render a figure to PNG or SVG bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"format": fmt, "dpi": dpi}
    if fmt == "svg":
        # Keep text as glyph paths so the SVG needs no fonts; no metadata dates
        # so that the same analysis renders to the same bytes.
        kwargs["metadata"] = {"Date": None}
    fig.savefig(buf, **kwargs)
    return buf.getvalue()


def save_plots(
    analysis: ScalingAnalysis,
    out_dir: str | Path,
    formats: Sequence[str] = ("png",),
    target_cost: float | None = None,
    dpi: int = 110,
) -> list[Path]:
    """Write the Pareto front, scaling-law and best-so-far plots; returns the paths written.

    Files are named ``pareto_front.<fmt>``, ``scaling_laws.<fmt>`` and
    ``best_so_far.<fmt>``. The scaling-law plot is skipped when no parameter
    is numeric.
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {list(formats)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = {"pareto_front": plot_pareto_front(analysis, target_cost=target_cost)}
    if numeric_params(analysis.params):
        figures["scaling_laws"] = plot_scaling_laws(analysis, target_cost=target_cost)
    figures["best_so_far"] = plot_best_so_far(analysis)
    written: list[Path] = []
    for name, fig in figures.items():
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            path.write_bytes(figure_bytes(fig, fmt, dpi))
            written.append(path)
            logger.info("wrote %s", path)
    return written
