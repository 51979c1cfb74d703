"""Scoring candidates: expected improvement, search density, and their product.

Everything is computed in log space so that candidates far from the Pareto
front still rank correctly instead of all underflowing to zero.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erfcx, ndtr

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def log_expected_improvement(
    mean: np.ndarray, variance: np.ndarray, best: np.ndarray | float, exploration_bias: float
) -> np.ndarray:
    """log E[max(f - best - bias, 0)] for ``f ~ N(mean, variance)``, elementwise.

    Uses ``EI = sigma * (phi(z) + z * Phi(z))``. For ``z >= 0`` both terms are
    positive and it is computed as it stands (the ratio form below would
    overflow past ``z`` of about 37, where a confident model predicts a
    candidate far ahead of the target). For ``z < 0`` it is written as
    ``sigma * phi(z) * (1 + z * Phi(z) / phi(z))`` with the ratio through
    ``erfcx`` (stable for large negative ``z``), and an asymptotic series
    below ``z = -25`` (where the direct form would cancel).
    """
    sigma = np.sqrt(np.maximum(variance, 1e-18))
    z = np.asarray((mean - best - exploration_bias) / sigma, dtype=float)
    log_phi = -0.5 * z * z - _LOG_SQRT_2PI
    out = np.empty_like(z)
    ahead = z >= 0.0
    za = z[ahead]
    out[ahead] = np.log(np.exp(log_phi[ahead]) + za * ndtr(za))
    mid = ~ahead & (z > -25.0)
    zm = z[mid]
    # Phi(z)/phi(z) = sqrt(pi/2) * erfcx(-z / sqrt(2))
    ratio = math.sqrt(math.pi / 2.0) * erfcx(-zm / math.sqrt(2.0))
    out[mid] = log_phi[mid] + np.log(np.maximum(1.0 + zm * ratio, 1e-300))
    low = z <= -25.0
    z2 = z[low] ** 2
    # 1 + z*Phi/phi ~ 1/z^2 - 3/z^4 + 15/z^6 as z -> -inf
    out[low] = log_phi[low] + np.log(1.0 / z2 - 3.0 / z2**2 + 15.0 / z2**3)
    return np.log(sigma) + out


def search_log_density(candidates: np.ndarray, origins: np.ndarray, radius: float) -> np.ndarray:
    """Log density of the search distribution at each candidate, up to a constant.

    Candidates ``(m, d)`` were drawn around origins ``(k, d)`` with a normal
    of standard deviation ``radius``; the density of the nearest origin
    counts, as a function of the distance to it.
    """
    d2 = (
        np.einsum("ij,ij->i", candidates, candidates)[:, None]
        + np.einsum("ij,ij->i", origins, origins)[None, :]
        - 2.0 * candidates @ origins.T
    )
    nearest = np.maximum(d2.min(axis=1), 0.0)
    return -0.5 * nearest / radius**2


def clamp_pareto_value(pareto_values: np.ndarray, value_at_threshold: float) -> np.ndarray:
    """Raise Pareto values below the value at a random cost threshold to it.

    Candidates predicted to be cheaper than the threshold must then beat the
    front at the threshold, which moves the search toward higher cost.
    """
    return np.maximum(pareto_values, value_at_threshold)


def acquisition_scores(
    log_ei: np.ndarray,
    log_density: np.ndarray,
    success_probability: np.ndarray,
    cost_ok: np.ndarray,
) -> np.ndarray:
    """log(EI * density * P(success)), with excluded candidates at ``-inf``."""
    with np.errstate(divide="ignore"):
        score = log_ei + log_density + np.log(np.clip(success_probability, 0.0, 1.0))
    return np.where(cost_ok, score, -np.inf)
