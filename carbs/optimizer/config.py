"""The optimizer's settings (``CARBSParams``), with the reference's names and defaults."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any


class OutstandingSuggestionEstimatorEnum(str, Enum):
    """How pending (handed out, not yet observed) suggestions are filled in.

    * ``THOMPSON``: a joint sample of the output model's posterior at all
      pending points, so parallel workers are steered apart at random.
    * ``MEAN``: the posterior mean ("kriging believer").
    * ``CONSTANT``: the worst output seen so far ("constant liar"), the most
      pessimistic choice, which pushes parallel workers furthest apart.
    """

    MEAN = "MEAN"
    CONSTANT = "CONSTANT"
    THOMPSON = "THOMPSON"


@dataclass
class WandbLoggingParams:
    """Accepted for compatibility with the reference; used by ``carbs.integrations.wandb``."""

    project_name: str | None = None
    group_name: str | None = None
    run_name: str | None = None
    run_id: str | None = None
    is_suggestion_logged: bool = True
    is_observation_logged: bool = True
    is_search_space_logged: bool = True
    root_dir: str = "."


@dataclass
class CARBSParams:
    """Settings of a CARBS run. The defaults are the paper's and the reference's.

    Attributes:
        better_direction_sign: ``1`` to maximise the output, ``-1`` to minimise it.
        seed: seeds the optimizer's own random generator (never the global ones).
        num_random_samples: successful observations gathered by sampling around
            the search center before the models take over.
        initial_search_radius: standard deviation of the local search, in basic units.
        exploration_bias: subtracted from the improvement in expected improvement,
            in units of the warped output (about one standard deviation).
        num_candidates_for_suggestion_per_dim: candidates scored per basic dimension.
        resample_frequency: re-run a Pareto point every this many observations
            (0 disables resampling).
        max_suggestion_cost: candidates predicted to cost more are excluded.
        min_pareto_cost_fraction: the cheapest this fraction of observations is
            lumped together when choosing the Pareto set.
        is_pareto_group_selection_conservative: a single noisy sample must beat the
            best sample (not the mean) of a cheaper Pareto group to join the set.
        is_expected_improvement_pareto_value_clamped: clamp the Pareto value at a
            random cost threshold, which pushes the search toward higher cost.
        outstanding_suggestion_estimator: how pending suggestions are filled in.
        is_wandb_logging_enabled: log to Weights & Biases (needs ``carbs-tuner[wandb]``).
        is_saved_on_every_observation: write the state to ``checkpoint_dir`` after
            every observation.
        checkpoint_dir: where automatic checkpoints go.
    """

    better_direction_sign: int = 1
    seed: int = 0
    num_random_samples: int = 4
    is_wandb_logging_enabled: bool = False
    wandb_params: WandbLoggingParams = field(default_factory=WandbLoggingParams)
    checkpoint_dir: str = "checkpoints/"
    is_saved_on_every_observation: bool = False
    initial_search_radius: float = 0.3
    exploration_bias: float = 1.0
    num_candidates_for_suggestion_per_dim: int = 100
    resample_frequency: int = 5
    max_suggestion_cost: float | None = None
    min_pareto_cost_fraction: float = 0.2
    is_pareto_group_selection_conservative: bool = True
    is_expected_improvement_pareto_value_clamped: bool = True
    is_expected_improvement_value_always_max: bool = False
    outstanding_suggestion_estimator: OutstandingSuggestionEstimatorEnum = (
        OutstandingSuggestionEstimatorEnum.THOMPSON
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first setting that is out of range."""

        def bad(name: str, want: str) -> ValueError:
            return ValueError(f"CARBSParams.{name} must be {want}, got {getattr(self, name)!r}")

        if self.better_direction_sign not in (1, -1) or isinstance(self.better_direction_sign, bool):
            raise bad("better_direction_sign", "1 (maximise) or -1 (minimise)")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise bad("seed", "a non-negative integer")
        for name in ("num_random_samples", "resample_frequency"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise bad(name, "a non-negative integer")
        n = self.num_candidates_for_suggestion_per_dim
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise bad("num_candidates_for_suggestion_per_dim", "a positive integer")
        r = self.initial_search_radius
        # Basic space is scaled so that useful radii are about 0.1-1; the upper
        # limit keeps radius**2 (in the search density) far from overflow.
        if not isinstance(r, (int, float)) or isinstance(r, bool) or not 0 < r <= 1e6:
            raise bad("initial_search_radius", "a number in (0, 1e6]")
        b = self.exploration_bias
        if not isinstance(b, (int, float)) or not math.isfinite(b):
            raise bad("exploration_bias", "a finite number")
        f = self.min_pareto_cost_fraction
        if not isinstance(f, (int, float)) or not 0.0 <= f <= 1.0:
            raise bad("min_pareto_cost_fraction", "a number in [0, 1]")
        m = self.max_suggestion_cost
        if m is not None and (not isinstance(m, (int, float)) or not math.isfinite(m) or m <= 0):
            raise bad("max_suggestion_cost", "None or a finite number > 0")
        est = self.outstanding_suggestion_estimator
        if not isinstance(est, OutstandingSuggestionEstimatorEnum):
            try:
                self.outstanding_suggestion_estimator = OutstandingSuggestionEstimatorEnum(est)
            except ValueError:
                raise bad(
                    "outstanding_suggestion_estimator",
                    f"one of {[e.value for e in OutstandingSuggestionEstimatorEnum]}",
                ) from None
        if isinstance(self.wandb_params, dict):
            self.wandb_params = WandbLoggingParams(**self.wandb_params)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible copy of the settings."""
        out = asdict(self)
        out["outstanding_suggestion_estimator"] = self.outstanding_suggestion_estimator.value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CARBSParams:
        """Rebuild settings from :meth:`to_dict` output; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"CARBSParams: unknown setting(s) {unknown}")
        return cls(**data)
