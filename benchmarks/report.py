"""Markdown tables and plots from a set of run traces."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from benchmarks.harness import RunTrace
from benchmarks.metrics import (
    BUDGET_FRACTIONS,
    EARLY_TRIALS,
    FrontReference,
    RunScores,
    best_in_first,
    best_so_far_curve,
    counted_trials,
    front_at,
    front_points,
    knows_true_front,
    score_run,
)
from benchmarks.problems import make_problem
from benchmarks.tuners import TUNERS


def _label(tuner: str) -> str:
    spec = TUNERS.get(tuner)
    return spec.label if spec else tuner


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values (nan if none)."""
    arr = np.array([v for v in values if math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def _fmt(value: float, digits: int = 4) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}"


def _fmt_plain(value: float) -> str:
    """Three significant digits without exponent notation for everyday magnitudes."""
    if not math.isfinite(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}" if abs(value) >= 0.01 else f"{value:.2g}"


def _fmt_ms(mean: float, std: float, digits: int = 4) -> str:
    if not math.isfinite(mean):
        return "-"
    return f"{_fmt(mean, digits)} ± {_fmt(std, 2)}"


def group_by_problem(traces: Sequence[RunTrace]) -> dict[str, dict[str, list[RunTrace]]]:
    """``{problem: {tuner: [traces by seed]}}`` in first-seen order."""
    out: dict[str, dict[str, list[RunTrace]]] = defaultdict(lambda: defaultdict(list))
    for trace in traces:
        out[trace.problem][trace.tuner].append(trace)
    return out


def score_all(traces: Sequence[RunTrace]) -> dict[str, dict[str, list[RunScores]]]:
    """Scores of every run, grouped like :func:`group_by_problem`."""
    out: dict[str, dict[str, list[RunScores]]] = {}
    for problem, by_tuner in group_by_problem(traces).items():
        reference = FrontReference.from_traces([t for ts in by_tuner.values() for t in ts])
        p = make_problem(problem)
        out[problem] = {
            tuner: [score_run(t, reference, p) for t in sorted(ts, key=lambda t: t.seed)]
            for tuner, ts in by_tuner.items()
        }
    return out


def problem_table(problem: str, by_tuner: dict[str, list[RunScores]]) -> str:
    """One problem's markdown table: a row per tuner, mean ± std over seeds."""
    p = make_problem(problem)
    head = [f"best @{int(f * 100)}%" for f in BUDGET_FRACTIONS]
    has_truth = knows_true_front(p)
    truth_col = ["gap to truth"] if has_truth else []
    cols = ["tuner", "seeds", *head, "front gap", *truth_col, "trials", "failures (cost)",
            "overhead ms/trial", "wall s"]
    rows = []
    best_final = {t: mean_std([s.best_at[-1] for s in sc])[0] for t, sc in by_tuner.items()}
    winner = min((v, t) for t, v in best_final.items() if math.isfinite(v))[1] if any(
        math.isfinite(v) for v in best_final.values()) else None
    for tuner, scores in by_tuner.items():
        cells = [f"**{_label(tuner)}**" if tuner == winner else _label(tuner), str(len(scores))]
        for i in range(len(BUDGET_FRACTIONS)):
            cells.append(_fmt_ms(*mean_std([s.best_at[i] for s in scores])))
        cells.append(_fmt_ms(*mean_std([s.front_gap for s in scores]), digits=3))
        if has_truth:
            cells.append(_fmt_ms(*mean_std([s.truth_gap for s in scores]), digits=3))
        trials = mean_std([float(s.n_trials) for s in scores])[0]
        capped = sum(s.capped for s in scores)
        cells.append(f"{trials:.0f}" + (f" ({capped} capped)" if capped else ""))
        n_fail = mean_std([float(s.n_failures) for s in scores])[0]
        fail_cost = mean_std([s.failure_cost for s in scores])[0]
        cells.append(f"{n_fail:.1f} ({_fmt(fail_cost, 3)})")
        cells.append(_fmt_plain(1000 * mean_std([s.overhead_s_per_trial for s in scores])[0]))
        cells.append(_fmt_plain(mean_std([s.wall_time_s for s in scores])[0]))
        errors = {s.error for s in scores if s.error}
        if errors:
            cells[0] += " ⚠"
        rows.append(cells)
    protocols = {s_protocol for s_protocol in _protocols(by_tuner)}
    if protocols == {"trials"}:
        budget_note = "best output after 10/30/100% of the trials"
    else:
        budget_note = (f"best output at 10/30/100% of the cumulative-cost budget; budget "
                       f"{_fmt(p.full_budget.cost)} / {_fmt(p.quick_budget.cost)} {p.cost_unit} (full / quick)")
    if has_truth:
        assert p.truth_cost_range is not None
        lo, hi = p.truth_cost_range
        budget_note += (f"; gap to truth = mean excess over the true frontier for single-trial costs "
                        f"{_fmt(lo)}..{_fmt(hi)} {p.cost_unit}")
    lines = [
        f"#### `{problem}` — {p.description}",
        "",
        f"Lower is better; {budget_note}.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]
    stopped = sorted({f"{_label(t)}: {s.error}" for t, sc in by_tuner.items() for s in sc if s.error})
    if stopped:
        lines += ["", "⚠ runs that stopped early: " + "; ".join(stopped)]
    return "\n".join(lines)


def _protocols(by_tuner: dict[str, list[RunScores]]) -> set[str]:
    return {s.protocol for sc in by_tuner.values() for s in sc}


def cost_profile_table(scores: dict[str, dict[str, list[RunScores]]], growth: bool = False) -> str:
    """Problems x tuners: how each run spread its cost (means over seeds).

    Columns: the costliest single trial, the median trial cost in each third
    of the run, the costliest trial's share of the run's cost, and with
    ``growth`` the costliest trial over the costliest of the first trials.
    """
    cols = ["problem", "tuner", "costliest trial", "median cost 1st / 2nd / 3rd third", "costliest share"]
    if growth:
        cols.append(f"max / max of first {EARLY_TRIALS}")
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for problem, by_tuner in scores.items():
        for tuner, sc in by_tuner.items():
            prof = [s.profile for s in sc]
            thirds = " / ".join(
                _fmt(mean_std([pr.median_cost_thirds[i] for pr in prof])[0], 2) for i in range(3))
            cells = [f"`{problem}`", _label(tuner), _fmt(mean_std([pr.max_cost for pr in prof])[0], 2), thirds,
                     f"{100 * mean_std([pr.max_cost_share for pr in prof])[0]:.0f}%"]
            if growth:
                cells.append(_fmt(mean_std([pr.growth_ratio for pr in prof])[0], 2))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _truth_gap(scores: RunScores) -> float:
    return scores.truth_gap


def _final_best(scores: RunScores) -> float:
    return scores.best_at[-1]


def _front_gap(scores: RunScores) -> float:
    return scores.front_gap


SUMMARY_METRICS: dict[str, Callable[[RunScores], float]] = {
    "best": _final_best,
    "front_gap": _front_gap,
    "truth_gap": _truth_gap,
}


def summary_table(scores: dict[str, dict[str, list[RunScores]]], metric: str = "best") -> str:
    """Problems x tuners: the mean of ``metric`` (lower is better) over seeds and the tuner's rank.

    ``metric`` is ``"best"`` (best output at the full budget), ``"front_gap"`` or
    ``"truth_gap"`` (problems that know their true frontier; others are left out).
    """
    if metric not in SUMMARY_METRICS:
        raise ValueError(f"metric must be one of {sorted(SUMMARY_METRICS)}, got {metric!r}")
    value_of = SUMMARY_METRICS[metric]
    tuners: list[str] = []
    for by_tuner in scores.values():
        tuners += [t for t in by_tuner if t not in tuners]
    lines = [
        "| problem | " + " | ".join(_label(t) for t in tuners) + " |",
        "|---|" + "|".join("---" for _ in tuners) + "|",
    ]
    for problem, by_tuner in scores.items():
        means = {t: mean_std([value_of(s) for s in sc])[0] for t, sc in by_tuner.items()}
        if metric == "truth_gap" and not any(math.isfinite(v) for v in means.values()):
            continue
        ranked = sorted((v, t) for t, v in means.items() if math.isfinite(v))
        rank = {t: i + 1 for i, (_, t) in enumerate(ranked)}
        cells = []
        for t in tuners:
            if t not in means:
                cells.append("n/a")
            elif t not in rank:
                cells.append("-")
            else:
                text = f"{_fmt(means[t], 4 if metric == 'best' else 3)} ({rank[t]})"
                cells.append(f"**{text}**" if rank[t] == 1 else text)
        lines.append(f"| `{problem}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_problem(problem: str, by_tuner: dict[str, list[RunTrace]], path: Path) -> None:
    """Best-so-far vs cumulative cost and the Pareto fronts, as one small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = make_problem(problem)
    all_traces = [t for ts in by_tuner.values() for t in ts]
    # Under the fixed-trial protocol the budget is a trial count: best so far per trial.
    by_trial = all(t.protocol == "trials" for t in all_traces)
    reference = FrontReference.from_traces(all_traces)
    if by_trial:
        grid = np.arange(1, max(t.max_trials for t in all_traces) + 1, dtype=float)
    else:
        budget = max(t.budget_cost for t in all_traces)
        first_costs = [t.trials[0].cost for t in all_traces if t.trials]
        lo = max(min(first_costs) if first_costs else budget * 1e-3, budget * 1e-4)
        grid = np.geomspace(lo, budget, 120)
    front_grid = np.geomspace(reference.c_lo, reference.c_hi, 200)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=80)
    start_y = -math.inf
    for tuner, traces in by_tuner.items():
        curves = np.array([
            [best_in_first(t, int(n)) for n in grid] if by_trial else best_so_far_curve(t, grid)
            for t in traces
        ])
        ok = np.all(np.isfinite(curves), axis=0)
        if ok.any():
            mean = curves[:, ok].mean(axis=0)
            start_y = max(start_y, float(curves[:, ok].max()))
            (line,) = ax1.plot(grid[ok], mean, label=_label(tuner), lw=1.6)
            ax1.fill_between(grid[ok], curves[:, ok].min(axis=0), curves[:, ok].max(axis=0),
                             color=line.get_color(), alpha=0.12, lw=0)
        fronts = []
        for t in traces:
            costs, outputs = front_points(counted_trials(t))
            fronts.append(np.minimum(front_at(costs, outputs, front_grid), reference.y_ref))
        ax2.step(front_grid, np.mean(fronts, axis=0), where="post", lw=1.4, label=_label(tuner))
    best = np.minimum(front_at(reference.costs, reference.outputs, front_grid), reference.y_ref)
    ax2.step(front_grid, best, where="post", color="black", ls="--", lw=1.0, label="best known")
    truth = p.true_front(front_grid) if knows_true_front(p) else None
    if truth is not None:
        ax2.plot(front_grid, np.minimum(truth, reference.y_ref), color="grey", ls=":", lw=1.2, label="true frontier")
    ax1.set(xscale="linear" if by_trial else "log",
            xlabel="trials" if by_trial else f"cumulative cost ({p.cost_unit})",
            ylabel="best output so far", title=f"{problem}: best so far (mean, min-max over seeds)")
    ax2.set(xscale="log", xlabel=f"cost of one trial ({p.cost_unit})", ylabel="best output at ≤ cost",
            title="Pareto front (mean over seeds)")
    lo_y = reference.y_best - 0.05 * (reference.y_ref - reference.y_best)
    # The best-so-far curves start at the default setting, usually far below y_ref.
    ax1.set_ylim(lo_y, min(reference.y_ref, start_y + 0.05 * (start_y - lo_y)))
    ax2.set_ylim(lo_y, reference.y_ref)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, lw=0.5)
        ax.title.set_fontsize(9)
    ax2.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
