"""Quickstart: tune a toy training run whose quality and cost both grow with epochs.

Run with ``python examples/quickstart.py``; prints the best run and the
performance-cost Pareto set CARBS found.
"""

import math
import random

from carbs import CARBS, CARBSParams, LinearSpace, LogSpace, ObservationInParam, Param

params = [
    Param("lr", LogSpace(min=1e-5, max=1.0), search_center=1e-3),
    Param("epochs", LogSpace(min=1, max=256, is_integer=True), search_center=4),
    Param("dropout", LinearSpace(min=0.0, max=0.8), search_center=0.1),
]
tuner = CARBS(CARBSParams(better_direction_sign=-1, seed=0), params)  # -1: lower is better
noise = random.Random(0)

for _ in range(60):
    s = tuner.suggest().suggestion
    # The best learning rate shrinks as training gets longer; more epochs help but cost more.
    best_log_lr = -2.0 - 0.5 * math.log10(s["epochs"])
    loss = (math.log10(s["lr"]) - best_log_lr) ** 2 + 3 / math.sqrt(s["epochs"]) + (s["dropout"] - 0.3) ** 2
    tuner.observe(ObservationInParam(input=s, output=loss + 0.01 * noise.gauss(0, 1), cost=s["epochs"]))

print(f"{tuner.observation_count} runs, {tuner.cumulative_cost:.0f} epochs spent")
print("Pareto set (cheapest first): the best settings at each cost")
for p in tuner.get_pareto_set():
    values = ", ".join(f"{k}={v:.3g}" for k, v in p.input.items())
    print(f"  cost {p.cost:6.1f}  loss {p.output:6.3f}  ({values})")
