"""A single self-contained HTML report of a study's scaling analysis.

The page needs nothing from the network: styles are inline, figures are
embedded as base64 PNG (or inline SVG), and there is no script to run. The
analysis itself is also embedded as JSON (``<script type="application/json"
id="carbs-analysis">``) for tools that want the numbers.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from carbs.analysis.analyze import ScalingAnalysis
from carbs.analysis.plots import (
    figure_bytes,
    numeric_params,
    plot_best_so_far,
    plot_pareto_front,
    plot_scaling_laws,
)
from carbs.analysis.scaling import POWER
from carbs.analysis.summary import summarize

logger = logging.getLogger(__name__)

_CSS = """
:root { --ink:#1d2330; --muted:#5f6b7a; --line:#d9dee5; --accent:#1f3b73; --warn:#8a4b00;
        --warnbg:#fff4e0; --bg:#ffffff; --band:#f5f7fa; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color:var(--ink); background:var(--bg); }
header { background:var(--accent); color:#fff; padding:22px 32px 16px; }
header h1 { margin:0 0 4px; font-size:24px; }
header p { margin:0; opacity:.85; font-size:13px; }
nav { padding:8px 32px; background:var(--band); border-bottom:1px solid var(--line); }
nav a { margin-right:18px; color:var(--accent); text-decoration:none; font-size:14px; }
main { padding:8px 32px 40px; max-width:1400px; }
section { margin-top:26px; }
h2 { font-size:19px; border-bottom:2px solid var(--line); padding-bottom:4px; }
table { border-collapse:collapse; font-size:13px; margin:8px 0; }
th, td { border:1px solid var(--line); padding:4px 9px; text-align:right; white-space:nowrap; }
th { background:var(--band); text-align:center; }
td.name, th.name { text-align:left; }
tr:nth-child(even) td { background:#fbfcfd; }
.cards { display:flex; flex-wrap:wrap; gap:12px; }
.card { border:1px solid var(--line); border-radius:6px; padding:10px 16px; min-width:150px; }
.card .v { font-size:20px; font-weight:600; }
.card .k { color:var(--muted); font-size:12px; }
.scroll { overflow-x:auto; }
figure { margin:14px 0 22px; }
figure img, figure svg { max-width:100%; height:auto; border:1px solid var(--line); }
figcaption { color:var(--muted); font-size:13px; margin-top:4px; }
.warn { background:var(--warnbg); color:var(--warn); border-left:4px solid var(--warn);
        padding:8px 12px; margin:10px 0; }
.note { color:var(--muted); font-size:13px; }
code { background:var(--band); padding:1px 4px; border-radius:3px; }
"""

SECTIONS = (
    ("summary", "Study summary"),
    ("best", "Best trial"),
    ("pareto", "Pareto set"),
    ("plots", "Plots"),
    ("scaling", "Scaling laws"),
    ("extrapolation", "Extrapolation"),
)


def _fmt(value: Any, spec: str = ".4g") -> str:
    """Numbers in 4 significant digits (or ``spec``), ``—`` for missing, text escaped.

    The summary is strict JSON, where a non-finite number is ``None``.
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return html.escape(str(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "—" if not math.isfinite(value) else format(value, spec)
    return html.escape(str(value))


def _signed(value: Any, spec: str) -> str:
    return _fmt(value, "+" + spec)


def _interval(iv: Sequence[float | None] | None, signed: bool = False) -> str:
    if iv is None:
        return "—"
    if signed:
        return f"[{_signed(iv[0], '.3f')}, {_signed(iv[1], '.3f')}]"
    return f"[{_fmt(iv[0])}, {_fmt(iv[1])}]"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], name_cols: int = 1) -> str:
    """An HTML table; cells must already be escaped."""
    head = "".join(
        f'<th class="name">{h}</th>' if i < name_cols else f"<th>{h}</th>"
        for i, h in enumerate(headers)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="name">{c}</td>' if i < name_cols else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _card(key: str, value: str) -> str:
    return f'<div class="card"><div class="v">{value}</div><div class="k">{key}</div></div>'


def _embed(fig: Any, image_format: str, alt: str) -> str:
    data = figure_bytes(fig, image_format)
    if image_format == "svg":
        svg = data.decode("utf-8")
        # Drop the XML prologue and doctype: they are not allowed inside HTML.
        svg = re.sub(r"^\s*<\?xml[^>]*\?>\s*", "", svg)
        svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg)
        return f'<div role="img" aria-label="{html.escape(alt)}">{svg}</div>'
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _version() -> str:
    try:
        return metadata.version("carbs")
    except metadata.PackageNotFoundError:
        return "unknown"


def _summary(data: dict[str, Any], study_name: str | None) -> str:
    lo, hi = data["observed_cost_range"]
    best = data["best"]
    cards = [
        _card("study", html.escape(study_name) if study_name else "—"),
        _card("goal", "minimise" if data["better_direction_sign"] < 0 else "maximise"),
        _card("finished trials", str(data["n_trials"])),
        _card("failed", str(data["n_failures"])),
        _card("total cost", _fmt(data["total_cost"])),
        _card("observed cost range", f"{_fmt(lo)} &ndash; {_fmt(hi)}"),
        _card("Pareto points", str(len(data["pareto_set"]))),
        _card("best output", _fmt(best["output"]) if best else "—"),
    ]
    return f'<div class="cards">{"".join(cards)}</div>'


def _best(data: dict[str, Any]) -> str:
    best = data["best"]
    if best is None:
        return '<p class="note">No successful trial yet.</p>'
    rows = [
        [html.escape(p["name"]), _fmt(best["input"].get(p["name"]))] for p in data["params"]
    ]
    return (
        f"<p>Trial {best['trial']} (of {data['n_trials']} finished): "
        f"output <b>{_fmt(best['output'])}</b>"
        f" at cost {_fmt(best['cost'])}.</p>" + _table(["parameter", "value"], rows)
    )


def _pareto(data: dict[str, Any]) -> str:
    if not data["pareto_set"]:
        return '<p class="note">The Pareto set is empty (no successful trial).</p>'
    names = [p["name"] for p in data["params"]]
    headers = ["#", "cost", "output", "samples", "fit weight", *map(html.escape, names)]
    rows = [
        [str(i + 1), _fmt(p["cost"]), _fmt(p["output"]), str(p["sample_count"]), _fmt(p["weight"])]
        + [_fmt(p["input"].get(n)) for n in names]
        for i, p in enumerate(data["pareto_set"])
    ]
    s = data["settings"]
    note = (
        f'<p class="note">Cheapest first. Points at or below the '
        f'{_fmt(s.get("low_cost_quantile"))} quantile of observed costs are fitted with weight '
        f'{_fmt(s.get("low_cost_weight"))}: cheap runs are noisy and the cheapest Pareto point '
        f"is the luckiest of many.</p>"
    )
    return _table(headers, rows) + note


def _plots(analysis: ScalingAnalysis, target_cost: float | None, image_format: str) -> str:
    # The figures draw every trial, which the summary leaves out: they take the analysis.
    if not analysis.observations:
        return '<p class="note">No finished trials to plot.</p>'
    parts = [
        (
            plot_pareto_front(analysis, target_cost=target_cost),
            "Pareto front",
            "Every successful trial, coloured by order; failures are marked with a cross at "
            "their cost. Circles are the Pareto set; the dashed line is the fitted front with "
            "its bootstrap interval.",
        )
    ]
    if numeric_params(analysis.params):
        parts.append(
            (
                plot_scaling_laws(analysis, target_cost=target_cost),
                "Scaling laws",
                "Each numeric parameter against cost: grey dots are all trials, red the Pareto "
                "set, the dashed line the fitted law with its interval, the star the "
                "extrapolation.",
            )
        )
    parts.append(
        (
            plot_best_so_far(analysis),
            "Best output against cumulative cost",
            "The best output found so far against the total cost spent, failures included.",
        )
    )
    out = []
    for fig, alt, caption in parts:
        out.append(f"<figure>{_embed(fig, image_format, alt)}<figcaption>{caption}</figcaption></figure>")
    return "".join(out)


def _scaling(data: dict[str, Any]) -> str:
    conf = f"{data['confidence']:.0%}"
    parts = []
    if data["laws"]:
        rows = []
        for law in data["laws"].values():
            kind = "power law" if law["form"] == POWER else law["form"]
            rows.append(
                [
                    html.escape(law["param"]),
                    kind,
                    f"<code>{html.escape(law['formula'])}</code>",
                    _signed(law["exponent"], ".4f"),
                    _interval(law["exponent_interval"], signed=True),
                    _fmt(law["exponent_stderr"], ".3g"),
                    _fmt(law["coefficient"]),
                    _interval(law["coefficient_interval"]),
                    _fmt(law["r_squared"], ".3f"),
                    str(law["n_points"]),
                ]
            )
        parts.append(
            _table(
                ["parameter", "form", "law", "exponent e", f"{conf} interval", "std. err.",
                 "coefficient k", f"{conf} interval", "R²", "points"],
                rows,
                name_cols=3,
            )
        )
    else:
        parts.append('<p class="note">No parameter has a scaling law.</p>')
    if data["skipped"]:
        items = "".join(
            f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in data["skipped"].items()
        )
        parts.append(f'<p class="note">Without a law:</p><ul class="note">{items}</ul>')
    front = data["front"]
    parts.append("<h3>Pareto front</h3>")
    if front is not None:
        rows = [
            ["E (irreducible)", _fmt(front["irreducible"]), _interval(front["irreducible_interval"])],
            ["A", _fmt(front["amplitude"]), _interval(front["amplitude_interval"])],
            ["alpha", _fmt(front["alpha"], ".4f"), _interval(front["alpha_interval"])],
        ]
        parts.append(f"<p><code>{html.escape(front['formula'])}</code>, "
                     f"R² = {_fmt(front['r_squared'], '.3f')}, {front['n_points']} points.</p>")
        parts.append(_table(["term", "estimate", f"{conf} interval"], rows))
        if front["is_alpha_at_bound"]:
            parts.append('<div class="warn">alpha hit the end of its search range: the front '
                         "does not look like a saturating power law; do not trust it far from "
                         "the data.</div>")
    else:
        parts.append(f'<p class="note">Not fitted: {html.escape(data["front_skipped"] or "")}</p>')
    parts.append(
        '<p class="note">Laws are weighted least-squares lines against log10(cost) over the '
        "Pareto set: log-log (power laws) for log-scale parameters, the parameter itself for "
        "linear ones and its log-odds for logit ones. Intervals are percentiles of a "
        f"bootstrap over Pareto points ({_fmt(data['settings'].get('n_bootstrap'))} "
        "replicates).</p>"
    )
    return "".join(parts)


def _extrapolation(data: dict[str, Any]) -> str:
    ext = data["extrapolation"]
    if ext is None:
        return f'<p class="note">No extrapolation: {html.escape(data["extrapolation_skipped"] or "")}</p>'
    lo, hi = ext["observed_cost_range"]
    parts = [
        f"<p>Target cost <b>{_fmt(ext['target_cost'])}</b> "
        f"({_fmt(ext['cost_ratio'], '.3g')}&times; the most expensive trial; observed range "
        f"{_fmt(lo)} &ndash; {_fmt(hi)}).</p>"
    ]
    for w in ext["warnings"]:
        parts.append(f'<div class="warn">{html.escape(w)}</div>')
    rows = []
    for name, value in ext["suggestion"].items():
        pred = ext["parameters"].get(name)
        if pred is None:
            rows.append([html.escape(name), "—", "—", _fmt(value), "from the costliest Pareto point"])
        else:
            rows.append(
                [
                    html.escape(name),
                    _fmt(pred["value"]),
                    _interval(pred["interval"])
                    + (" (clipped to bounds)" if pred["raw_interval"] is not None else ""),
                    _fmt(pred["suggested"]),
                    "clipped to bounds" if pred["is_clipped"] else "scaling law",
                ]
            )
    parts.append(_table(["parameter", "predicted", "interval", "suggested", "source"], rows))
    if ext["output"] is not None:
        parts.append(
            f"<p>Predicted best output: <b>{_fmt(ext['output'])}</b> "
            f"{_interval(ext['output_interval'])}.</p>"
        )
    return "".join(parts)


def render_report(
    analysis: ScalingAnalysis,
    title: str = "CARBS study report",
    study_name: str | None = None,
    target_cost: float | None = None,
    image_format: str = "png",
) -> str:
    """The report as one HTML string.

    Args:
        analysis: what to report.
        title: page title.
        study_name: shown in the summary.
        target_cost: cost to extrapolate to (default: 10x the most expensive trial).
        image_format: ``"png"`` (base64 ``<img>``) or ``"svg"`` (inline ``<svg>``).
    """
    if image_format not in ("png", "svg"):
        raise ValueError(f"image_format must be 'png' or 'svg', got {image_format!r}")
    data = summarize(analysis, target_cost)
    payload = json.dumps(data, allow_nan=False).replace("</", "<\\/")
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<a href="#{sid}">{label}</a>' for sid, label in SECTIONS)
    body = {
        "summary": _summary(data, study_name),
        "best": _best(data),
        "pareto": _pareto(data),
        "plots": _plots(analysis, data["target_cost"], image_format),
        "scaling": _scaling(data),
        "extrapolation": _extrapolation(data),
    }
    sections = "".join(
        f'<section id="{sid}"><h2>{label}</h2>{body[sid]}</section>' for sid, label in SECTIONS
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>Generated {generated} by carbs "
        f"{html.escape(_version())}</p></header><nav>{nav}</nav><main>{sections}</main>"
        f'<script type="application/json" id="carbs-analysis">{payload}</script>'
        "</body></html>\n"
    )


def write_report(
    analysis: ScalingAnalysis,
    path: str | Path,
    title: str = "CARBS study report",
    study_name: str | None = None,
    target_cost: float | None = None,
    image_format: str = "png",
) -> Path:
    """Write :func:`render_report` output to ``path`` (parent folders are created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        render_report(analysis, title, study_name, target_cost, image_format), encoding="utf-8"
    )
    logger.info("wrote report %s (%d bytes)", out, out.stat().st_size)
    return out
