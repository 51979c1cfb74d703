"""Plot every trial's learning curve (validation loss against cost), stopped trials in red.

    python plot_curves.py --storage carbs.db --out curves.png
"""

from __future__ import annotations

import argparse

import carbs
from carbs.storage import TrialState


def main() -> None:
    """Read the study's curves and draw them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storage", default="carbs.db")
    parser.add_argument("--study", default="digits-curves")
    parser.add_argument("--out", default="curves.png")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    study = carbs.load_study(args.study, args.storage)
    curves = study.intermediate_values()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {TrialState.COMPLETE: "tab:blue", TrialState.PRUNED: "tab:red"}
    for trial in study.trials():
        points = curves.get(trial.number)
        if not points or trial.state not in colors:
            continue
        ax.plot(
            [p.cost for p in points], [p.value for p in points],
            color=colors[trial.state], alpha=0.6, lw=1,
        )
    ax.plot([], [], color="tab:blue", label="completed")
    ax.plot([], [], color="tab:red", label="stopped early (PRUNED)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("cost so far (s)")
    ax.set_ylabel(study.metric)
    ax.set_title(f"{study.name}: learning curves")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
