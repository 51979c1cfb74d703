"""``carbs plot``, ``carbs scaling`` and ``carbs report``: scaling analysis of a stored study."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", metavar="URL", default=None,
                        help="database URL or SQLite file path (default: $CARBS_STORAGE or "
                             "carbs.db in the working directory)")
    parser.add_argument("--study", metavar="NAME", default=None,
                        help="study name (may be left out when the storage holds one study)")
    group = parser.add_argument_group("analysis")
    group.add_argument("--confidence", type=float, default=0.9,
                       help="level of the bootstrap intervals (default 0.9)")
    group.add_argument("--bootstrap", type=int, default=1000,
                       help="bootstrap replicates per fit (default 1000)")
    group.add_argument("--low-cost-quantile", type=float, default=0.2,
                       help="Pareto points at or below this quantile of observed costs are "
                            "down-weighted (default 0.2)")
    group.add_argument("--low-cost-weight", type=float, default=0.25,
                       help="weight of those points; 0 drops them (default 0.25)")
    group.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    """Open the study and analyse it; returns ``(study, analysis)``."""
    from carbs.analysis import ScalingAnalysis
    from carbs.cli.common import open_study

    study = open_study(args)  # a missing study or bad storage: CliError with the shared exit codes
    analysis = ScalingAnalysis.from_study(
        study,
        confidence=args.confidence,
        n_bootstrap=args.bootstrap,
        low_cost_quantile=args.low_cost_quantile,
        low_cost_weight=args.low_cost_weight,
        seed=args.seed,
    )
    return study, analysis


def _value(value: Any) -> str:
    """A parameter value for the terminal: floats in 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _study_name(study: Any, args: argparse.Namespace) -> str:
    return str(getattr(study, "name", None) or args.study or "study")


def _fail(message: str) -> int:
    """Print a user error (bad option value, nothing to analyse) and return the usage code."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def _cmd_plot(args: argparse.Namespace) -> int:
    from carbs.analysis.plots import require_matplotlib, save_plots

    require_matplotlib()  # before any work: a missing extra is one line, exit code 6
    try:
        _study, analysis = _load(args)
        if not analysis.observations:
            return _fail("the study has no finished trials to plot")
        paths = save_plots(analysis, args.out, formats=args.format or ["png"],
                           target_cost=args.target_cost, dpi=args.dpi)
    except ValueError as e:
        return _fail(str(e))
    for path in paths:
        print(path)
    return 0


def _num(value: Any, spec: str = ".4g") -> str:
    """A number of the summary (``None`` stands for a non-finite one)."""
    return "nan" if value is None else format(value, spec)


def _law_rows(data: dict[str, Any]) -> list[str]:
    lines = [f"{'parameter':<20} {'exponent':>9}  {'interval':<20} {'R2':>6} {'pts':>4}  law"]
    for law in data["laws"].values():
        lo, hi = law["exponent_interval"]
        lines.append(
            f"{law['param']:<20} {_num(law['exponent'], '+.4f'):>9}  "
            f"[{_num(lo, '+.3f')}, {_num(hi, '+.3f')}]{'':<3} "
            f"{_num(law['r_squared'], '.3f'):>6} {law['n_points']:>4}  {law['formula']}"
        )
    for name, reason in data["skipped"].items():
        lines.append(f"{name:<20} {'—':>9}  {reason}")
    return lines


def _cmd_scaling(args: argparse.Namespace) -> int:
    from carbs.analysis.summary import summarize

    try:
        study, analysis = _load(args)
        if not analysis.successes:
            return _fail("the study has no successful trials")
        data = summarize(analysis, args.target_cost)
    except ValueError as e:
        return _fail(str(e))
    if args.json:
        data.pop("curves")  # sampled for plotting; the laws above describe them exactly
        print(json.dumps(data, indent=2))
        return 0
    conf = f"{data['confidence']:.0%}"
    lo, hi = data["observed_cost_range"]
    print(f"study {_study_name(study, args)}: {data['n_trials']} finished trials, "
          f"{len(data['pareto_set'])} Pareto points, cost {_num(lo)} to {_num(hi)}")
    print(f"\nscaling laws over the Pareto set ({conf} bootstrap intervals):")
    print("\n".join(_law_rows(data)))
    f = data["front"]
    if f is not None:
        a_lo, a_hi = f["alpha_interval"]
        print(f"\nPareto front: {f['formula']}  alpha {conf} [{_num(a_lo, '.3f')}, "
              f"{_num(a_hi, '.3f')}], R2 {_num(f['r_squared'], '.3f')}")
    else:
        print(f"\nPareto front not fitted: {data['front_skipped']}")
    ext = data["extrapolation"]
    print(f"\nat target cost {_num(ext['target_cost'])} ({_num(ext['cost_ratio'], '.3g')}x the "
          "costliest trial):")
    for w in ext["warnings"]:
        print(f"  WARNING: {w}")
    for name, value in ext["suggestion"].items():
        pred = ext["parameters"].get(name)
        if pred is None:
            print(f"  {name:<20} {_value(value):>12}  (from the costliest Pareto point)")
        else:
            p_lo, p_hi = pred["interval"]
            clipped = " (clipped to bounds)" if pred["raw_interval"] is not None else ""
            print(f"  {name:<20} {_value(pred['suggested']):>12}  [{_num(p_lo)}, {_num(p_hi)}]"
                  f"{clipped}")
    if ext["output"] is not None and ext["output_interval"] is not None:
        o_lo, o_hi = ext["output_interval"]
        print(f"  predicted best output {_num(ext['output'])} [{_num(o_lo)}, {_num(o_hi)}]")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from carbs.analysis.plots import require_matplotlib
    from carbs.analysis.report import write_report

    require_matplotlib()
    try:
        study, analysis = _load(args)
        path = write_report(
            analysis,
            args.out,
            title=args.title or f"CARBS study report: {_study_name(study, args)}",
            study_name=_study_name(study, args),
            target_cost=args.target_cost,
            image_format=args.image_format,
        )
    except ValueError as e:
        return _fail(str(e))
    print(f"{path} ({path.stat().st_size} bytes)")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``plot``, ``scaling`` and ``report`` commands to the ``carbs`` CLI."""
    plot = subparsers.add_parser(
        "plot", help="plot the Pareto front, scaling laws and progress of a study",
        description="Write pareto_front, scaling_laws and best_so_far images of a study.",
    )
    _add_common(plot)
    plot.add_argument("--out", "-o", type=Path, default=Path("carbs_plots"),
                      help="output folder (default carbs_plots)")
    plot.add_argument("--format", action="append", choices=["png", "svg"],
                      help="image format; repeat for several (default png)")
    plot.add_argument("--target-cost", type=_positive_float, default=None,
                      help="also show the extrapolation to this cost")
    plot.add_argument("--dpi", type=int, default=110, help="PNG resolution (default 110)")
    plot.set_defaults(func=_cmd_plot)

    scaling = subparsers.add_parser(
        "scaling", help="fit scaling laws and extrapolate to a target cost",
        description="Fit value = k * cost^e for every numeric parameter over the Pareto set, "
                    "fit the Pareto front and predict settings at a target cost.",
    )
    _add_common(scaling)
    scaling.add_argument("--target-cost", type=_positive_float, default=None,
                         help="cost to extrapolate to (default: 10x the costliest trial)")
    scaling.add_argument("--json", action="store_true", help="print JSON instead of tables")
    scaling.set_defaults(func=_cmd_scaling)

    report = subparsers.add_parser(
        "report", help="write a self-contained HTML report of a study",
        description="Write one HTML file (no network needed to view it) with the summary, "
                    "best trial, Pareto set, plots, scaling laws and extrapolation.",
    )
    _add_common(report)
    report.add_argument("--out", "-o", type=Path, default=Path("carbs_report.html"),
                        help="output file (default carbs_report.html)")
    report.add_argument("--target-cost", type=_positive_float, default=None,
                        help="cost to extrapolate to (default: 10x the costliest trial)")
    report.add_argument("--title", default=None, help="page title")
    report.add_argument("--image-format", choices=["png", "svg"], default="png",
                        help="embed images as base64 PNG or inline SVG (default png)")
    report.set_defaults(func=_cmd_report)
