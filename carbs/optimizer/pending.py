"""Pending suggestions: points handed out and not yet observed.

The models treat them as observed with a guessed output (see
``OutstandingSuggestionEstimatorEnum``: a Thompson sample by default), so that
parallel workers are steered apart; resampling counts them as runs in flight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from carbs.optimizer.types import SuggestionInBasic

# Inputs closer than this in every basic coordinate are the same point.
SAME_POINT_ATOL = 1e-8


def pending_inputs(outstanding: Mapping[str, SuggestionInBasic], dim: int) -> np.ndarray:
    """Basic rows ``(k, dim)`` of the pending suggestions, in the order they were made."""
    if not outstanding:
        return np.empty((0, dim))
    return np.stack([s.real_number_input for s in outstanding.values()])


def pending_count_at(pending: Sequence[np.ndarray] | np.ndarray, x: np.ndarray) -> int:
    """How many pending suggestions are the point ``x``."""
    return sum(1 for p in pending if np.allclose(p, x, atol=SAME_POINT_ATOL))
