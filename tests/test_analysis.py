"""Scaling-law fits, front fit, extrapolation, plots, report and the analysis CLI."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from carbs import ChoiceSpace, LinearSpace, LogitSpace, LogSpace, ObservationInParam, Param
from carbs.analysis import (
    InsufficientDataError,
    ScalingAnalysis,
    analyze,
    extrapolate,
    fit_pareto_front,
    fit_scaling_law,
    fit_scaling_laws,
    pareto_weights,
)
from carbs.analysis.regression import fit_line
from carbs.optimizer.types import ParetoPoint

LR = Param("lr", LogSpace(min=1e-6, max=1.0), search_center=1e-3)
WIDTH = Param("width", LogSpace(min=1, max=1e6, is_integer=True), search_center=64)
SHIFT = Param("shift", LinearSpace(min=-10, max=10), search_center=0.0)
DROP = Param("drop", LogitSpace(min=1e-3, max=0.999), search_center=0.1)
OPT = Param("opt", ChoiceSpace(["adam", "sgd"]), search_center="adam")
PARAMS = [LR, WIDTH, SHIFT, DROP, OPT]


def law_points(n: int, exponent: float, k: float, noise: float, seed: int,
               log_cost_range: tuple[float, float] = (0.0, 4.0)) -> list[ParetoPoint]:
    """Pareto points whose ``lr`` follows ``k * C**exponent`` with log-normal noise."""
    rng = np.random.default_rng(seed)
    costs = np.sort(10 ** rng.uniform(*log_cost_range, size=n))
    lr = k * costs**exponent * 10 ** rng.normal(0, noise, size=n)
    return [
        ParetoPoint(input={"lr": float(v)}, output=1.0 / (i + 1), cost=float(c), sample_count=1)
        for i, (c, v) in enumerate(zip(costs, lr))
    ]


def synthetic_study(n: int = 150, seed: int = 0, fail_rate: float = 0.05,
                    ) -> list[ObservationInParam]:
    """Trials whose best settings at each cost follow known laws (minimising).

    About a third of the trials sit on the laws; the rest are mis-tuned and
    worse by a random margin, so the Pareto set is made of on-law trials.
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        c = float(10 ** rng.uniform(0, 4))
        on = rng.random() < 0.35
        jitter = 0.0 if on else 1.0
        values = {
            "lr": float(min(0.1 * c**-0.3 * 10 ** rng.normal(0, 0.03 + jitter), 1.0)),
            "width": int(np.clip(round(4 * c**0.5 * 10 ** rng.normal(0, 0.5 * jitter)), 1, 10**6)),
            "shift": float(np.clip(1 + 0.5 * math.log10(c) + rng.normal(0, 0.05 + jitter), -10, 10)),
            "drop": float(np.clip(0.1 * c**0.1 * 10 ** rng.normal(0, 0.02 + 0.3 * jitter), 0.01, 0.9)),
            "opt": "adam" if on or rng.random() < 0.5 else "sgd",
        }
        loss = 1.0 + 3.0 * c**-0.25 + (0.0 if on else float(rng.uniform(0.05, 2.0)))
        loss += float(rng.normal(0, 0.005))
        failed = bool(rng.random() < fail_rate)
        out.append(ObservationInParam(values, math.nan if failed else loss, c, failed))
    return out


@pytest.fixture(scope="module")
def analysis() -> ScalingAnalysis:
    return analyze(synthetic_study(), PARAMS, better_direction_sign=-1, n_bootstrap=400)


# -- straight lines -------------------------------------------------------------


def test_fit_line_exact_and_validation() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0])
    fit = fit_line(x, 2.0 + 0.5 * x, n_bootstrap=50)
    assert fit.slope == pytest.approx(0.5)
    assert fit.intercept == pytest.approx(2.0)
    assert fit.r_squared == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 3"):
        fit_line(x[:2], x[:2])
    with pytest.raises(ValueError, match="finite"):
        fit_line(np.array([0.0, 1.0, np.nan]), np.zeros(3))
    with pytest.raises(ValueError, match="weights"):
        fit_line(x, x, weights=np.array([1.0, -1.0, 1.0, 1.0]))


# -- per-parameter laws ----------------------------------------------------------


def test_power_law_recovers_exponent_and_coefficient() -> None:
    points = law_points(30, exponent=-0.35, k=0.2, noise=0.03, seed=1)
    law = fit_scaling_law(LR, points, n_bootstrap=500)
    assert law.form == "power"
    assert law.exponent == pytest.approx(-0.35, abs=0.03)
    assert law.coefficient == pytest.approx(0.2, rel=0.15)
    lo, hi = law.exponent_interval
    assert lo < -0.35 < hi
    assert law.coefficient_interval[0] < 0.2 < law.coefficient_interval[1]
    assert float(law.predict(1e3)) == pytest.approx(0.2 * 1e3**-0.35, rel=0.1)
    band = law.predict_interval(np.array([10.0, 1e6]))
    assert band.shape == (2, 2) and np.all(band[0] < band[1])
    # Intervals widen away from the data.
    assert band[1, 1] / band[0, 1] > band[1, 0] / band[0, 0]


def test_intervals_cover_the_true_exponent() -> None:
    covered = 0
    trials = 60
    for seed in range(trials):
        law = fit_scaling_law(LR, law_points(25, 0.5, 3.0, noise=0.1, seed=seed),
                              confidence=0.9, n_bootstrap=300, seed=seed)
        lo, hi = law.exponent_interval
        covered += lo <= 0.5 <= hi
    # Nominal 90%; the percentile bootstrap runs a little narrow at n = 25.
    assert covered / trials >= 0.78


def test_linear_and_logit_parameters_use_their_own_scale() -> None:
    costs = np.geomspace(1, 1e4, 12)
    points = [
        ParetoPoint({"shift": 2.0 + 0.5 * math.log10(c),
                     "drop": 1 / (1 + 10 ** -(-1.0 + 0.1 * math.log10(c)))}, 0.0, float(c), 1)
        for c in costs
    ]
    shift = fit_scaling_law(SHIFT, points, n_bootstrap=100)
    drop = fit_scaling_law(DROP, points, n_bootstrap=100)
    assert (shift.form, drop.form) == ("log-linear", "logit-linear")
    assert shift.exponent == pytest.approx(0.5) and shift.coefficient == pytest.approx(2.0)
    assert drop.exponent == pytest.approx(0.1) and drop.coefficient == pytest.approx(-1.0)
    assert float(drop.predict(1e6)) == pytest.approx(1 / (1 + 10 ** -(-1.0 + 0.6)))
    assert "log10(C)" in shift.formula() and "logit10(drop)" in drop.formula()


def test_cheap_noisy_points_are_downweighted() -> None:
    points = law_points(12, exponent=0.5, k=1.0, noise=0.0, seed=3, log_cost_range=(1, 4))
    # The cheapest point is a lucky outlier far off the law.
    cheapest = points[0]
    points[0] = ParetoPoint({"lr": cheapest.input["lr"] * 30}, 0.0, cheapest.cost, 1)
    observed = np.array([p.cost for p in points])
    w = pareto_weights(observed, observed, low_cost_quantile=0.05, low_cost_weight=0.0)
    assert w[0] == 0 and np.all(w[1:] == 1)
    dropped = fit_scaling_law(LR, points, weights=w, n_bootstrap=0, robust=False)
    kept = fit_scaling_law(LR, points, n_bootstrap=0, robust=False)
    assert dropped.exponent == pytest.approx(0.5, abs=1e-9)
    assert abs(kept.exponent - 0.5) > 0.05
    # Huber's loss shrugs the outlier off even at full weight.
    assert fit_scaling_law(LR, points, n_bootstrap=0).exponent == pytest.approx(0.5, abs=0.01)
    assert dropped.n_points == 11
    # Never leave fewer than 3 usable points: fall back to equal weights.
    assert np.all(pareto_weights(observed[:3], observed, 0.5, 0.0) == 1)
    with pytest.raises(ValueError, match="low_cost_weight"):
        pareto_weights(observed, observed, 0.2, 1.5)


def test_too_few_points_and_categorical_parameters_are_skipped() -> None:
    points = law_points(2, 0.5, 1.0, 0.0, seed=0)
    with pytest.raises(InsufficientDataError, match="'lr'"):
        fit_scaling_law(LR, points)
    with pytest.raises(ValueError, match="ChoiceSpace"):
        fit_scaling_law(OPT, points)
    laws, skipped = fit_scaling_laws(points, [LR, OPT])
    assert laws == {}
    assert "lr" in skipped and skipped["opt"] == "categorical parameter"


# -- Pareto front ----------------------------------------------------------------


@pytest.mark.parametrize("sign", [-1, 1])
def test_front_fit_recovers_saturating_power_law(sign: int) -> None:
    rng = np.random.default_rng(4)
    costs = np.geomspace(1e2, 1e8, 25)
    truth = 1.5 - sign * 20.0 * costs**-0.3
    points = [ParetoPoint({}, float(v + rng.normal(0, 0.002)), float(c), 1)
              for c, v in zip(costs, truth)]
    front = fit_pareto_front(points, sign, n_bootstrap=300)
    assert front.alpha == pytest.approx(0.3, abs=0.03)
    assert front.irreducible == pytest.approx(1.5, abs=0.02)
    assert front.alpha_interval[0] <= 0.3 <= front.alpha_interval[1]
    assert front.irreducible_interval[0] <= 1.5 <= front.irreducible_interval[1]
    assert front.r_squared > 0.99 and not front.is_alpha_at_bound
    assert float(front.predict(1e10)) == pytest.approx(1.5 - sign * 20.0 * 1e10**-0.3, abs=0.01)
    lo, hi = front.predict_interval(1e10)[:, 0]
    assert lo <= float(front.predict(1e10)) <= hi
    assert ("+" if sign < 0 else "-") in front.formula()


def test_front_bootstrap_agrees_with_the_point_fit_on_clean_data() -> None:
    # Without noise every replicate should land on the point estimate; a biased
    # refinement of alpha would leave the interval beside it.
    costs = np.geomspace(10.0, 1e4, 26)
    points = [ParetoPoint({}, float(1.0 + 3.0 * c**-0.25), float(c), 1) for c in costs]
    front = fit_pareto_front(points, -1, n_bootstrap=300)
    for est, (lo, hi) in (
        (front.irreducible, front.irreducible_interval),
        (front.amplitude, front.amplitude_interval),
        (front.alpha, front.alpha_interval),
    ):
        slack = 1e-4 * abs(est)
        assert lo - slack <= est <= hi + slack, (est, lo, hi)


def test_front_needs_four_points() -> None:
    points = [ParetoPoint({}, 1.0 / c, float(c), 1) for c in (1.0, 10.0, 100.0)]
    with pytest.raises(InsufficientDataError):
        fit_pareto_front(points, -1)
    with pytest.raises(ValueError, match="better_direction_sign"):
        fit_pareto_front(points, 0)


# -- the whole analysis -----------------------------------------------------------


def test_analyze_recovers_the_laws_of_a_synthetic_study(analysis: ScalingAnalysis) -> None:
    assert len(analysis.pareto_points) >= 10
    assert analysis.laws["lr"].exponent == pytest.approx(-0.3, abs=0.05)
    assert analysis.laws["width"].exponent == pytest.approx(0.5, abs=0.07)
    assert analysis.laws["shift"].exponent == pytest.approx(0.5, abs=0.1)
    # drop = 0.1 * C**0.1 is close to a line in log-odds over 0.1 < drop < 0.25.
    assert 0.08 < analysis.laws["drop"].exponent < 0.16
    assert analysis.skipped == {"opt": "categorical parameter"}
    assert analysis.front is not None
    assert analysis.front.alpha == pytest.approx(0.25, abs=0.08)
    assert len(analysis.failures) > 0
    best = analysis.best()
    assert best is not None and best.output == min(o.output for o in analysis.successes)
    # Pareto points are cheapest first and strictly improving.
    costs = [p.cost for p in analysis.pareto_points]
    outputs = [p.output for p in analysis.pareto_points]
    assert costs == sorted(costs) and outputs == sorted(outputs, reverse=True)
    data = json.loads(json.dumps(analysis.to_dict()))
    assert data["laws"]["lr"]["form"] == "power"


def test_analyze_works_with_little_or_no_data() -> None:
    empty = analyze([], PARAMS, -1)
    assert empty.laws == {} and empty.front is None and empty.front_skipped
    assert empty.best() is None
    with pytest.raises(InsufficientDataError):
        empty.extrapolate(10.0)
    few = analyze(synthetic_study(n=3, seed=1, fail_rate=0.0), PARAMS, -1)
    assert few.laws == {} and set(few.skipped) == {p.name for p in PARAMS}
    with pytest.raises(ValueError, match="better_direction_sign"):
        analyze([], PARAMS, 2)
    with pytest.raises(ValueError, match="confidence"):
        analyze([], PARAMS, -1, confidence=1.5)
    with pytest.raises(ValueError, match="n_bootstrap"):
        analyze([], PARAMS, -1, n_bootstrap=-1)
    with pytest.raises(ValueError, match="low_cost_quantile"):
        analyze([], PARAMS, -1, low_cost_quantile=1.0)


def test_from_study_uses_the_study_interface() -> None:
    class FakeStudy:
        params = PARAMS
        better_direction_sign = -1

        def observations(self) -> list[ObservationInParam]:
            return synthetic_study(n=60, seed=2)

    result = ScalingAnalysis.from_study(FakeStudy(), n_bootstrap=50)
    assert result.better_direction_sign == -1 and len(result.observations) == 60


# -- extrapolation ----------------------------------------------------------------


def test_extrapolation_inside_and_outside_the_observed_range(analysis: ScalingAnalysis) -> None:
    lo, hi = analysis.observed_cost_range
    inside = analysis.extrapolate(math.sqrt(lo * hi))
    assert not inside.is_outside_observed_range and inside.warnings == []
    above = analysis.extrapolate(100 * hi)
    assert above.is_outside_observed_range and above.cost_ratio == pytest.approx(100)
    assert any("above the observed cost range" in w for w in above.warnings)
    below = analysis.extrapolate(lo / 10)
    assert below.is_outside_observed_range and "below" in below.warnings[0]
    lr = above.parameters["lr"]
    assert lr.interval[0] <= lr.value <= lr.interval[1]
    assert lr.value == pytest.approx(0.1 * (100 * hi) ** -0.3, rel=0.35)
    assert isinstance(above.suggestion["width"], int)
    assert above.suggestion["opt"] == analysis.pareto_points[-1].input["opt"]
    assert set(above.suggestion) == {p.name for p in PARAMS}
    assert above.output is not None and above.output_interval is not None
    assert above.output_interval[0] <= above.output <= above.output_interval[1]
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="target_cost"):
            analysis.extrapolate(bad)


def test_extrapolation_clips_to_parameter_bounds() -> None:
    points = law_points(10, exponent=0.5, k=1e-3, noise=0.0, seed=5)
    laws, _ = fit_scaling_laws(points, [LR], n_bootstrap=50)
    ext = extrapolate(1e14, [LR], laws, points, (1.0, 1e4))
    pred = ext.parameters["lr"]
    assert pred.is_clipped and pred.suggested == 1.0 and pred.value > 1.0
    assert any("clipped" in w for w in ext.warnings)


# -- plots ------------------------------------------------------------------------


def test_plots_write_non_empty_png_and_svg(analysis: ScalingAnalysis, tmp_path: Path) -> None:
    from carbs.analysis.plots import save_plots

    paths = save_plots(analysis, tmp_path / "plots", formats=("png", "svg"), target_cost=1e6)
    names = sorted(p.name for p in paths)
    assert names == sorted(f"{n}.{f}" for n in ("pareto_front", "scaling_laws", "best_so_far")
                           for f in ("png", "svg"))
    for p in paths:
        data = p.read_bytes()
        assert len(data) > 5_000
        if p.suffix == ".png":
            assert data.startswith(b"\x89PNG")
        else:
            assert b"<svg" in data[:2000]
    with pytest.raises(ValueError, match="formats"):
        save_plots(analysis, tmp_path, formats=("jpg",))


def test_individual_plots_and_their_errors(analysis: ScalingAnalysis) -> None:
    from carbs.analysis import plots

    fig = plots.plot_parameter(analysis, "lr", target_cost=1e6)
    assert fig.axes[0].get_yscale() == "log" and fig.axes[0].get_xscale() == "log"
    assert plots.plot_parameter(analysis, "drop").axes[0].get_yscale() == "logit"
    assert plots.plot_parameter(analysis, "shift").axes[0].get_yscale() == "linear"
    with pytest.raises(ValueError, match="categorical"):
        plots.plot_parameter(analysis, "opt")
    with pytest.raises(ValueError, match="not one of"):
        plots.plot_parameter(analysis, "nope")
    front = plots.plot_pareto_front(analysis)
    labels = front.axes[0].get_legend_handles_labels()[1]
    assert any(label.startswith("failed (") for label in labels)
    # An analysis too small for any fit still plots.
    small = analyze(synthetic_study(n=4, seed=3, fail_rate=0.0), PARAMS, -1)
    assert plots.figure_bytes(plots.plot_scaling_laws(small)).startswith(b"\x89PNG")


# -- report -----------------------------------------------------------------------


class _Refs(HTMLParser):
    """Collects every src/href attribute and tag name."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "srcset", "data") and value is not None:
                self.refs.append(value)
            if name == "id" and value:
                self.ids.append(value)


def assert_self_contained(html_text: str) -> _Refs:
    parser = _Refs()
    parser.feed(html_text)
    for ref in parser.refs:
        assert not re.match(r"\s*(https?:)?//", ref, re.I), f"external reference {ref[:80]!r}"
        assert ref.startswith(("#", "data:")), f"unexpected reference {ref[:80]!r}"
    assert "<link" not in html_text.lower()
    assert not re.search(r"@import|url\(\s*['\"]?https?:", html_text, re.I)
    assert not re.search(r"<script[^>]*\bsrc=", html_text, re.I)
    return parser


@pytest.mark.parametrize("image_format", ["png", "svg"])
def test_report_is_self_contained(analysis: ScalingAnalysis, tmp_path: Path,
                                  image_format: str) -> None:
    from carbs.analysis.report import SECTIONS, write_report

    path = write_report(analysis, tmp_path / "sub" / "report.html", study_name="synthetic <study>",
                        target_cost=1e6, image_format=image_format)
    text = path.read_text(encoding="utf-8")
    parser = assert_self_contained(text)
    for sid, label in SECTIONS:
        assert sid in parser.ids and label in text
    assert "synthetic &lt;study&gt;" in text
    if image_format == "png":
        assert text.count('src="data:image/png;base64,') == 3
    else:
        assert text.count("<svg") == 3 and "<?xml" not in text
    assert "extrapolated" in text and "lr = " in text
    blob = re.search(r'<script type="application/json" id="carbs-analysis">(.*?)</script>',
                     text, re.S)
    assert blob is not None
    data = json.loads(blob.group(1))
    assert data["extrapolation"]["target_cost"] == 1e6
    assert data["extrapolation"]["is_outside_observed_range"] is True


def test_report_of_an_empty_analysis(tmp_path: Path) -> None:
    from carbs.analysis.report import render_report

    text = render_report(analyze([], PARAMS, 1))
    assert_self_contained(text)
    assert "No successful trial yet" in text and "No extrapolation" in text
    with pytest.raises(ValueError, match="image_format"):
        render_report(analyze([], PARAMS, 1), image_format="gif")


# -- command line ------------------------------------------------------------------


@pytest.fixture(scope="module")
def stored_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    import carbs

    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'carbs.db'}"
    study = carbs.create_study("scaling-cli", storage=url, params=[LR, WIDTH, OPT],
                               direction="minimize")
    rng = np.random.default_rng(0)
    for _ in range(14):
        trial = study.ask()
        lr, width = float(trial.params["lr"]), float(trial.params["width"])
        loss = 1 + 10 / width**0.5 + 0.1 * math.log10(lr / 1e-2) ** 2 + rng.normal(0, 0.01)
        study.tell(trial, output=loss, cost=width)
    return url, "scaling-cli"


def _run_cli(argv: list[str]) -> int:
    from carbs.cli import main

    return main(argv)


def test_cli_scaling_plot_and_report(stored_study: tuple[str, str], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    url, name = stored_study
    common = ["--storage", url, "--study", name, "--bootstrap", "100"]
    assert _run_cli(["scaling", *common, "--target-cost", "1e9"]) == 0
    out = capsys.readouterr().out
    assert "scaling laws" in out and "WARNING" in out and "1e+09" in out
    assert _run_cli(["scaling", *common, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_trials"] == 14 and "extrapolation" in data
    assert _run_cli(["plot", *common, "--out", str(tmp_path / "p"), "--format", "svg"]) == 0
    assert (tmp_path / "p" / "pareto_front.svg").stat().st_size > 0
    report = tmp_path / "r.html"
    assert _run_cli(["report", *common, "--out", str(report)]) == 0
    assert_self_contained(report.read_text(encoding="utf-8"))
    # A study that does not exist is a storage error, reported without a traceback.
    assert _run_cli(["report", "--storage", url, "--study", "missing", "--out",
                     str(report)]) not in (0, 1)
    assert "missing" in capsys.readouterr().err
    assert _run_cli(["scaling", *common, "--confidence", "1.5"]) == 2
    assert "confidence" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run_cli(["scaling", *common, "--target-cost", "-3"])
