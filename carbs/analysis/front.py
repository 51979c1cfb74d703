"""A saturating power law for the Pareto front: best output against cost.

Minimising, the front is fitted as ``L(C) = E + A * C**-alpha`` (the form of
neural scaling laws: an irreducible value ``E`` approached as a power of
cost); maximising, as ``L(C) = E - A * C**-alpha``. ``A >= 0`` and
``alpha > 0``. For a fixed ``alpha`` the model is linear in ``E`` and ``A``,
so the fit scans ``alpha`` on a log grid (solving the linear part exactly at
each point) and then refines it; the bootstrap reuses the grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from carbs.analysis.regression import percentile_interval
from carbs.analysis.scaling import InsufficientDataError
from carbs.optimizer.types import ParetoPoint

ALPHA_BOUNDS = (1e-3, 3.0)
_GRID = np.geomspace(ALPHA_BOUNDS[0], ALPHA_BOUNDS[1], 160)


@dataclass(frozen=True)
class FrontFit:
    """The fitted Pareto front ``L(C) = E - sign * A * C**-alpha``.

    Attributes:
        better_direction_sign: ``-1`` minimising (``E + A C^-alpha``), ``1`` maximising.
        irreducible: ``E``, the output approached as cost grows.
        amplitude: ``A`` for cost in the caller's units.
        alpha: the decay exponent.
        irreducible_interval, amplitude_interval, alpha_interval: bootstrap intervals.
        r_squared: weighted coefficient of determination.
        n_points: Pareto points used.
        cost_range: ``(min, max)`` cost of the points used.
        confidence: the level of the intervals.
        reference_cost: costs are divided by this inside the fit (conditioning).
        boot_params: bootstrap replicates, rows of ``(E, A_at_reference, alpha)``.
        is_alpha_at_bound: ``alpha`` ended at an end of its search range
            (``ALPHA_BOUNDS``): the front does not look like a saturating
            power law and the fit should not be trusted far from the data.
    """

    better_direction_sign: int
    irreducible: float
    amplitude: float
    alpha: float
    irreducible_interval: tuple[float, float]
    amplitude_interval: tuple[float, float]
    alpha_interval: tuple[float, float]
    r_squared: float
    n_points: int
    cost_range: tuple[float, float]
    confidence: float
    reference_cost: float
    boot_params: np.ndarray
    is_alpha_at_bound: bool = False

    def predict(self, cost: float | np.ndarray) -> np.ndarray:
        """Predicted best output at ``cost``."""
        c = np.asarray(cost, dtype=float)
        return self.irreducible - self.better_direction_sign * self.amplitude * np.power(
            c, -self.alpha
        )

    def predict_interval(self, cost: float | np.ndarray) -> np.ndarray:
        """Bootstrap ``[low, high]`` interval of the best output at ``cost``: shape ``(2, n)``."""
        c = np.atleast_1d(np.asarray(cost, dtype=float)) / self.reference_cost
        if self.boot_params.shape[0] < 2:
            p = self.predict(c * self.reference_cost)
            return np.vstack([p, p])
        e, a, alpha = (self.boot_params[:, i : i + 1] for i in range(3))
        boot = e - self.better_direction_sign * a * np.power(c[None, :], -alpha)
        return percentile_interval(boot, self.confidence)

    def formula(self) -> str:
        """The fit as text, e.g. ``L(C) = 1.71 + 310 * C^-0.153``."""
        op = "+" if self.better_direction_sign < 0 else "-"
        return f"L(C) = {self.irreducible:.4g} {op} {self.amplitude:.4g} * C^-{self.alpha:.3f}"

    def to_dict(self) -> dict[str, object]:
        """JSON-compatible summary (without the bootstrap samples)."""
        return {
            "formula": self.formula(),
            "irreducible": self.irreducible,
            "irreducible_interval": list(self.irreducible_interval),
            "amplitude": self.amplitude,
            "amplitude_interval": list(self.amplitude_interval),
            "alpha": self.alpha,
            "alpha_interval": list(self.alpha_interval),
            "r_squared": self.r_squared,
            "n_points": self.n_points,
            "cost_range": list(self.cost_range),
            "confidence": self.confidence,
            "is_alpha_at_bound": self.is_alpha_at_bound,
        }


def _linear_part(
    z: np.ndarray, y: np.ndarray, w: np.ndarray, sign: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``y ~ E + B z`` over the last axis with ``-sign * B >= 0``: (E, B, weighted SSE)."""
    sw = w.sum(axis=-1)
    zm = (w * z).sum(axis=-1) / sw
    ym = (w * y).sum(axis=-1) / sw
    dz = z - zm[..., None]
    dy = y - ym[..., None]
    szz = (w * dz * dz).sum(axis=-1)
    szy = (w * dz * dy).sum(axis=-1)
    syy = (w * dy * dy).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.where(szz > 0, szy / szz, 0.0)
    # The front must improve with cost; a fit that would not is clamped flat.
    b = np.where(-sign * b >= 0, b, 0.0)
    sse = syy - 2 * b * szy + b * b * szz
    return ym - b * zm, b, sse


def _parabola_min(log_grid: np.ndarray, sse: np.ndarray) -> np.ndarray:
    """Per row of ``sse``, the minimising log alpha refined by a parabola.

    ``log_grid`` is evenly spaced, shared by all rows (shape ``(G,)``) or one
    per row (``(B, G)``). Minima on the edge of the grid stay there.
    """
    grid = np.broadcast_to(log_grid, sse.shape)
    rows = np.arange(sse.shape[0])
    best = np.argmin(sse, axis=1)
    inner = np.clip(best, 1, sse.shape[1] - 2)
    s0, s1, s2 = sse[rows, inner - 1], sse[rows, inner], sse[rows, inner + 1]
    curv = s0 - 2 * s1 + s2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curv > 0, 0.5 * (s0 - s2) / curv, 0.0)
    step = grid[:, 1] - grid[:, 0]
    refined = grid[rows, inner] + np.clip(shift, -1.0, 1.0) * step
    return np.where(best == inner, refined, grid[rows, best])


def _bootstrap_alphas(
    xb: np.ndarray, yb: np.ndarray, wb: np.ndarray, sign: int
) -> np.ndarray:
    """Best alpha of every bootstrap replicate (rows of ``xb``), vectorised.

    A coarse scan of ``_GRID`` and a parabola, then a second scan on a fine
    local grid: a single parabola on the coarse grid leaves a bias that is
    visible when the front is nearly noise-free (the interval would then miss
    the point estimate).
    """
    log_grid = np.log(_GRID)
    sse = _linear_part(np.exp(-_GRID[None, :, None] * xb[:, None, :]), yb[:, None, :],
                       wb[:, None, :], sign)[2]
    coarse = _parabola_min(log_grid, sse)
    step = log_grid[1] - log_grid[0]
    fine = np.clip(coarse[:, None] + np.linspace(-step, step, 17)[None, :],
                   log_grid[0], log_grid[-1])
    alphas = np.exp(fine)
    sse = _linear_part(np.exp(-alphas[:, :, None] * xb[:, None, :]), yb[:, None, :],
                       wb[:, None, :], sign)[2]
    # Rows clipped at a bound have uneven spacing; keep their coarse value.
    even = np.isclose(fine[:, 1] - fine[:, 0], fine[:, -1] - fine[:, -2])
    return np.exp(np.where(even, _parabola_min(fine, sse), coarse))


def fit_pareto_front(
    pareto_points: Sequence[ParetoPoint],
    better_direction_sign: int,
    weights: np.ndarray | None = None,
    confidence: float = 0.9,
    n_bootstrap: int = 500,
    seed: int = 0,
) -> FrontFit:
    """Fit ``L(C) = E - sign * A * C**-alpha`` to Pareto points.

    Raises:
        InsufficientDataError: fewer than 4 weighted points or fewer than 3 distinct costs.
    """
    if better_direction_sign not in (-1, 1):
        raise ValueError(f"better_direction_sign must be 1 or -1, got {better_direction_sign!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    costs = np.array([p.cost for p in pareto_points], dtype=float)
    y = np.array([p.output for p in pareto_points], dtype=float)
    w = np.ones_like(costs) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != costs.shape:
        raise ValueError(f"weights has shape {w.shape}, expected {costs.shape}")
    keep = w > 0
    if int(keep.sum()) < 4 or np.unique(costs[keep]).size < 3:
        raise InsufficientDataError(
            f"the Pareto front has {int(keep.sum())} usable point(s); "
            "its fit needs at least 4 at 3 or more distinct costs"
        )
    costs, y, w = costs[keep], y[keep], w[keep]
    sign = better_direction_sign
    ref = float(np.exp(np.mean(np.log(costs))))
    lc = np.log(costs / ref)

    def sse_at(log_alpha: float) -> float:
        z = np.exp(-math.exp(log_alpha) * lc)
        return float(_linear_part(z, y, w, sign)[2])

    z_grid = np.exp(-_GRID[:, None] * lc[None, :])  # (G, n)
    sse_grid = _linear_part(z_grid, y[None, :], w[None, :], sign)[2]
    g = int(np.argmin(sse_grid))
    lo = math.log(_GRID[max(g - 1, 0)])
    hi = math.log(_GRID[min(g + 1, _GRID.size - 1)])
    res = minimize_scalar(sse_at, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    alpha = math.exp(float(res.x)) if res.fun <= sse_grid[g] else float(_GRID[g])
    z = np.exp(-alpha * lc)
    e_hat, b_hat, sse = (float(v) for v in _linear_part(z, y, w, sign))
    a_ref = -sign * b_hat
    ym = float((w * y).sum() / w.sum())
    ss_tot = float((w * (y - ym) ** 2).sum())
    r2 = 1.0 - sse / ss_tot if ss_tot > 0 else 1.0

    boot = np.empty((0, 3))
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, costs.size, size=(n_bootstrap, costs.size))
        ok = np.array([np.unique(lc[i]).size >= 3 for i in idx])
        idx = idx[ok]
        xb, yb, wb = lc[idx], y[idx], w[idx]
        alphas = _bootstrap_alphas(xb, yb, wb, sign)
        eb, bb, _ = _linear_part(np.exp(-alphas[:, None] * xb), yb, wb, sign)
        boot = np.column_stack([eb, -sign * bb, alphas])

    def interval(samples: np.ndarray, point: float) -> tuple[float, float]:
        if samples.size < 2:
            return (point, point)
        lo_, hi_ = percentile_interval(samples, confidence)
        return (float(lo_), float(hi_))

    amp_samples = boot[:, 1] * np.power(ref, boot[:, 2]) if boot.size else np.empty(0)
    return FrontFit(
        better_direction_sign=sign,
        irreducible=e_hat,
        amplitude=a_ref * ref**alpha,
        alpha=alpha,
        irreducible_interval=interval(boot[:, 0], e_hat),
        amplitude_interval=interval(amp_samples, a_ref * ref**alpha),
        alpha_interval=interval(boot[:, 2], alpha),
        r_squared=r2,
        n_points=int(costs.size),
        cost_range=(float(costs.min()), float(costs.max())),
        confidence=confidence,
        reference_cost=ref,
        boot_params=boot,
        is_alpha_at_bound=bool(
            alpha <= ALPHA_BOUNDS[0] * 1.05 or alpha >= ALPHA_BOUNDS[1] / 1.05
        ),
    )
