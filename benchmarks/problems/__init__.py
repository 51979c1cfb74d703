"""The benchmark problems, by name."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.problems.failures import OutOfMemoryTraining
from benchmarks.problems.highdim import FineTuneHighDim
from benchmarks.problems.multi_fidelity import (
    MultiFidelityHartmann,
    MultiFidelityHartmannDecorrelated,
)
from benchmarks.problems.scaling import ImageClassifierEpochs, LanguageModelScaling
from benchmarks.problems.sklearn_mlp import DigitsMLP
from benchmarks.problems.wide_scaling import WideScaling, WideScalingNoisy
from benchmarks.spec import Problem

PROBLEM_CLASSES: dict[str, Callable[[], Problem]] = {
    "lm_scaling": LanguageModelScaling,
    "image_epochs": ImageClassifierEpochs,
    "finetune_24d": FineTuneHighDim,
    "oom_failures": OutOfMemoryTraining,
    "digits_mlp": DigitsMLP,
    "wide_scaling": WideScaling,
    "wide_scaling_noisy": WideScalingNoisy,
    "mf_hartmann": MultiFidelityHartmann,
    "mf_hartmann_decorrelated": MultiFidelityHartmannDecorrelated,
}


def make_problem(name: str) -> Problem:
    """Instantiate a problem by name."""
    try:
        return PROBLEM_CLASSES[name]()
    except KeyError:
        raise ValueError(f"unknown problem {name!r}; choose from {sorted(PROBLEM_CLASSES)}") from None


__all__ = [
    "PROBLEM_CLASSES",
    "DigitsMLP",
    "FineTuneHighDim",
    "ImageClassifierEpochs",
    "LanguageModelScaling",
    "MultiFidelityHartmann",
    "MultiFidelityHartmannDecorrelated",
    "OutOfMemoryTraining",
    "WideScaling",
    "WideScalingNoisy",
    "make_problem",
]
