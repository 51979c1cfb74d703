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


class CostTargetingEnum(str, Enum):
    """How a model suggestion chooses the cost it aims at.

    * ``FRONT``: each suggestion aims at one cost level of the current Pareto
      front (levels spread evenly in log cost, a share of them one growth step
      beyond the costliest point), so effort covers the whole front and the
      front grows outwards gradually.
    * ``CLAMP``: the paper's rule: expected improvement is measured against the
      front clamped at a random cost threshold, which favours costlier
      candidates on every suggestion.
    """

    FRONT = "FRONT"
    CLAMP = "CLAMP"


class ResamplingEnum(str, Enum):
    """When a Pareto point is run again.

    * ``NOISE``: when the measured noise is comparable to the gaps between
      neighbouring Pareto groups (rarely when it is not).
    * ``FIXED``: the paper's rule, one resample every ``resample_frequency``
      observations.
    """

    NOISE = "NOISE"
    FIXED = "FIXED"


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
    """Settings of a CARBS run.

    The names and most defaults are the paper's and the reference's; the
    settings after ``outstanding_suggestion_estimator`` (and the default
    ``exploration_bias``) change how cost is targeted, capped and resampled.
    :meth:`paper` gives the paper's algorithm exactly.

    Attributes:
        better_direction_sign: ``1`` to maximise the output, ``-1`` to minimise it.
        seed: seeds the optimizer's own random generator (never the global ones).
        num_random_samples: successful observations gathered by sampling around
            the search center before the models take over.
        initial_search_radius: standard deviation of the local search, in basic units.
        exploration_bias: subtracted from the improvement in expected improvement,
            in units of the warped output (about one standard deviation). The
            paper's 1.0 makes every candidate whose output is predicted near the
            front's an exploration of its variance; with cost levels aimed
            across the front that wastes most runs, so the default is 0.0 (plain
            expected improvement).
        num_candidates_for_suggestion_per_dim: candidates scored per basic dimension.
        resample_frequency: re-run a Pareto point every this many observations
            (0 disables resampling).
        max_suggestion_cost: candidates predicted to cost more are excluded.
        min_pareto_cost_fraction: the cheapest this fraction of observations is
            lumped together when choosing the Pareto set.
        is_pareto_group_selection_conservative: a single noisy sample must beat the
            best sample (not the mean) of a cheaper Pareto group to join the set.
        is_expected_improvement_pareto_value_clamped: with ``cost_targeting=CLAMP``,
            clamp the Pareto value at a random cost threshold (the paper's rule).
        cost_targeting: how model suggestions choose their cost level
            (``FRONT``, the default, or the paper's ``CLAMP``).
        max_cost_growth: no candidate's upper-quantile predicted cost may exceed
            this multiple of the growth base (see
            ``min_runs_near_top_before_expansion``; ``None``: no limit, as in the
            paper).
        cost_expansion_probability: with ``FRONT``, the share of model
            suggestions that aim beyond the costliest Pareto point while the
            front improves at its top as fast as on average (in output units
            per growth step); a top that pays more gets more, up to
            ``2 * cost_expansion_probability - min_cost_expansion_probability``
            at twice the average.
        min_cost_expansion_probability: with ``FRONT``, the share used once the
            front has stopped improving at its top (``None``: half of
            ``cost_expansion_probability``); in between, the share is
            interpolated by how much the top still pays. It keeps probing whether
            more cost pays without betting on it, and slows growth where returns
            diminish (a power law in cost).
        min_runs_near_top_before_expansion: growth base: no candidate's
            upper-quantile predicted cost may exceed ``max_cost_growth`` times the
            cost that this many successful runs have reached (the k-th costliest
            run), so a new maximum needs several runs near the last one, and a
            front whose top collapsed to a cheap point can still grow from the
            costs already run. Expansions aim at the upper half of that step,
            strictly above the costliest Pareto point.
        cost_growth_window: after the first this many successful runs, the
            growth base is also at most the costliest run made before the last
            this many, so the costliest run grows by at most ``max_cost_growth``
            per window of runs whatever the front says (``None``, the default:
            no window, as in the paper). A hard bound for fixed-length sweeps:
            with 15 and ``max_cost_growth=3``, 75 runs never cost more than 81
            times the costliest of the first 15. It costs front quality where
            the loss keeps improving with cost (see docs/benchmarks.md).
        cost_quantile: the quantile of the cost model's predictive distribution
            that caps and budgets are checked against (0.5 = the median, as in
            the paper).
        max_budget_fraction: when a cost budget is set (``set_cost_budget``), no
            suggestion's upper-quantile predicted cost may exceed this fraction
            of the budget left.
        min_success_probability: candidates predicted to succeed less often than
            this are excluded (0: failures only down-weight, as in the paper).
        resampling: when Pareto points are run again (``NOISE`` or the paper's
            ``FIXED``).
        cheap_probe_fraction: share of the random phase (after its first two
            runs) spent one growth step cheaper than the search center (0 in the
            paper).
        is_pareto_cheap_grouping_within_noise: cheap observations are lumped into
            one Pareto slot only where their outputs are equal within the measured
            noise (``False``: the cheapest ``min_pareto_cost_fraction`` of costs
            always share one slot, as in the paper).
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
    exploration_bias: float = 0.0
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
    cost_targeting: CostTargetingEnum = CostTargetingEnum.FRONT
    max_cost_growth: float | None = 3.0
    cost_expansion_probability: float = 0.3
    min_cost_expansion_probability: float | None = None
    min_runs_near_top_before_expansion: int = 3
    cost_growth_window: int | None = None
    cost_quantile: float = 0.9
    max_budget_fraction: float = 0.25
    min_success_probability: float = 0.1
    resampling: ResamplingEnum = ResamplingEnum.NOISE
    cheap_probe_fraction: float = 0.5
    is_pareto_cheap_grouping_within_noise: bool = True

    @classmethod
    def paper(cls, **overrides: Any) -> CARBSParams:
        """Settings that reproduce the paper's algorithm (and the reference's defaults).

        Every behaviour added since is switched to its paper-faithful option;
        ``overrides`` set anything else (``better_direction_sign``, ``seed``...).
        """
        settings: dict[str, Any] = {
            "exploration_bias": 1.0,
            "cost_targeting": CostTargetingEnum.CLAMP,
            "max_cost_growth": None,
            "min_runs_near_top_before_expansion": 0,
            "cost_quantile": 0.5,
            "min_success_probability": 0.0,
            "resampling": ResamplingEnum.FIXED,
            "cheap_probe_fraction": 0.0,
            "is_pareto_cheap_grouping_within_noise": False,
        }
        settings.update(overrides)
        return cls(**settings)

    @property
    def effective_min_cost_expansion_probability(self) -> float:
        """``min_cost_expansion_probability``, or half of ``cost_expansion_probability`` when unset."""
        if self.min_cost_expansion_probability is None:
            return 0.5 * self.cost_expansion_probability
        return float(self.min_cost_expansion_probability)

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
        for name in ("num_random_samples", "resample_frequency", "min_runs_near_top_before_expansion"):
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
        g = self.max_cost_growth
        if g is not None and (not _is_real(g) or not math.isfinite(g) or g <= 1):
            raise bad("max_cost_growth", "None or a finite number > 1")
        for name, lo, hi, closed in (
            ("cost_expansion_probability", 0.0, 1.0, True),
            ("min_success_probability", 0.0, 1.0, False),
            ("cheap_probe_fraction", 0.0, 1.0, True),
        ):
            v = getattr(self, name)
            if not _is_real(v) or not (lo <= v <= hi if closed else lo <= v < hi):
                raise bad(name, f"a number in [{lo:g}, {hi:g}{']' if closed else ')'}")
        w = self.cost_growth_window
        if w is not None and (not isinstance(w, int) or isinstance(w, bool) or w < 1):
            raise bad("cost_growth_window", "None or a positive integer")
        lo_share = self.min_cost_expansion_probability
        if lo_share is not None and (not _is_real(lo_share) or not 0.0 <= lo_share <= self.cost_expansion_probability):
            raise bad(
                "min_cost_expansion_probability",
                f"None or a number in [0, cost_expansion_probability={self.cost_expansion_probability!r}]",
            )
        q = self.cost_quantile
        if not _is_real(q) or not 0.5 <= q < 1.0:
            raise bad("cost_quantile", "a number in [0.5, 1)")
        fr = self.max_budget_fraction
        if not _is_real(fr) or not 0.0 < fr <= 1.0:
            raise bad("max_budget_fraction", "a number in (0, 1]")
        for name, enum in (
            ("outstanding_suggestion_estimator", OutstandingSuggestionEstimatorEnum),
            ("cost_targeting", CostTargetingEnum),
            ("resampling", ResamplingEnum),
        ):
            value = getattr(self, name)
            if not isinstance(value, enum):
                try:
                    setattr(self, name, enum(value))
                except ValueError:
                    raise bad(name, f"one of {[e.value for e in enum]}") from None
        if isinstance(self.wandb_params, dict):
            self.wandb_params = WandbLoggingParams(**self.wandb_params)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible copy of the settings."""
        out = asdict(self)
        out["outstanding_suggestion_estimator"] = self.outstanding_suggestion_estimator.value
        out["cost_targeting"] = self.cost_targeting.value
        out["resampling"] = self.resampling.value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CARBSParams:
        """Rebuild settings from :meth:`to_dict` output; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"CARBSParams: unknown setting(s) {unknown}")
        return cls(**data)
