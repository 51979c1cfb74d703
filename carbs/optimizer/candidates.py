"""Candidate generation: points drawn around search origins in basic space.

Origins are the members of the Pareto set and, for a cost level, *cost-shifted*
copies of them: each Pareto point moved along the cost model's gradient to
where the model predicts the level's cost. Those copies are the cheaper (or
costlier) variants of good settings, e.g. the best learning rate at fewer
epochs, which local sampling around the originals would reach only by chance.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from carbs.optimizer.acquisition import search_log_density
from carbs.optimizer.space import SearchSpace

# Most candidates drawn per requested one before falling back to clipping.
_MAX_OVERSAMPLE = 64
# A cost-shifted origin moves at most this many search radii from its source.
_MAX_SHIFT_RADII = 4.0
_FD_STEP = 1e-3


def sample_around(
    space: SearchSpace,
    origins: np.ndarray,
    n: int,
    radius: float,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rounded in-bounds samples around ``origins`` ``(k, d)`` and their log search density.

    Each sample picks an origin (uniformly, or with probabilities ``weights``
    ``(k,)``) and adds normal noise of standard deviation ``radius``.
    Out-of-bounds samples are rejected (keeping the search distribution); when
    bounds reject nearly everything, the shortfall is made up by projecting
    samples onto the bounds.
    """
    p = None if weights is None else weights / weights.sum()
    kept: list[np.ndarray] = []
    dens: list[np.ndarray] = []
    count = drawn = 0
    batch = max(n, 32)
    while count < n and drawn < _MAX_OVERSAMPLE * max(n, 32):
        raw = origins[rng.choice(len(origins), size=batch, p=p)] + rng.normal(0.0, radius, size=(batch, space.dim))
        drawn += batch
        rounded = space.round(raw)
        mask = space.in_bounds(rounded)
        if mask.any():
            kept.append(rounded[mask])
            dens.append(search_log_density(raw[mask], origins, radius))
            count += int(mask.sum())
        batch = min(batch * 2, 8 * max(n, 32))
    if count < n:
        raw = origins[rng.choice(len(origins), size=n - count, p=p)] + rng.normal(
            0.0, radius, size=(n - count, space.dim)
        )
        clipped = space.clip(raw)
        kept.append(clipped)
        dens.append(search_log_density(clipped, origins, radius))
    return np.concatenate(kept)[:n], np.concatenate(dens)[:n]


def log_cost_gradient(predict_log_cost: Callable[[np.ndarray], np.ndarray], X: np.ndarray) -> np.ndarray:
    """Central finite-difference gradient ``(k, d)`` of the predicted log cost at rows of ``X``."""
    k, d = X.shape
    steps = np.eye(d) * _FD_STEP
    plus = (X[:, None, :] + steps[None]).reshape(k * d, d)
    minus = (X[:, None, :] - steps[None]).reshape(k * d, d)
    values = predict_log_cost(np.vstack([plus, minus]))
    return ((values[: k * d] - values[k * d :]) / (2 * _FD_STEP)).reshape(k, d)


def cost_shifted(
    space: SearchSpace,
    X: np.ndarray,
    log_costs: np.ndarray,
    gradient: np.ndarray,
    target_log_cost: float,
    radius: float,
) -> np.ndarray:
    """Rows of ``X`` moved along their log-cost gradient to the target log cost.

    A first-order step ``(target - log_cost) * g / |g|^2``, at most
    ``_MAX_SHIFT_RADII`` search radii long, projected onto the bounds. Rows
    whose cost does not depend on the inputs stay where they are.
    """
    norm2 = np.einsum("ij,ij->i", gradient, gradient)
    safe = norm2 > 1e-12
    step = np.zeros_like(X)
    scale = np.where(safe, (target_log_cost - log_costs) / np.where(safe, norm2, 1.0), 0.0)
    step[safe] = scale[safe, None] * gradient[safe]
    length = np.linalg.norm(step, axis=1)
    limit = _MAX_SHIFT_RADII * radius
    too_far = length > limit
    step[too_far] *= (limit / length[too_far])[:, None]
    return space.clip(X + step)


def origin_weights(origin_log_costs: np.ndarray, target_log_cost: float, half_width: float) -> np.ndarray:
    """Sampling weights of origins: half uniform, half by closeness in log cost to the target."""
    near = np.exp(-0.5 * ((origin_log_costs - target_log_cost) / max(half_width, 1e-6)) ** 2)
    total = near.sum()
    uniform = np.full(len(origin_log_costs), 1.0 / len(origin_log_costs))
    return 0.5 * uniform + (0.5 * near / total if total > 0 else 0.5 * uniform)
