"""The interface every tuner adapter implements, and how the harness finds them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.spec import Budget, KnobValue, Outcome, Problem


class TunerUnavailable(RuntimeError):
    """A tuner cannot run here (package missing, environment not built)."""


class Tuner(ABC):
    """A sequential ask/tell tuner that minimises a problem's output.

    ``tell`` may be called with parameters the tuner did not ask for: the
    harness starts every run by evaluating the problem's default setting and
    telling it to the tuner.
    """

    @abstractmethod
    def ask(self) -> dict[str, KnobValue]:
        """The next setting to evaluate."""

    @abstractmethod
    def tell(self, params: dict[str, KnobValue], outcome: Outcome) -> None:
        """Report a finished trial (a failure has ``outcome.is_failure``)."""

    def close(self) -> None:  # noqa: B027 - most tuners hold nothing to release
        """Release resources (subprocesses); called once at the end of a run."""


TunerFactory = Callable[[Problem, int, Budget], Tuner]


@dataclass(frozen=True)
class TunerSpec:
    """A named tuner the harness can run.

    Attributes:
        name: short key used on the command line and in result files.
        label: the name shown in tables and plots.
        factory: builds a fresh tuner for ``(problem, seed, budget)``.
        unavailable_reason: returns why the tuner cannot run here, or None.
        not_applicable_reason: returns why the tuner does not apply to a
            problem (e.g. CMA-ES with a categorical knob), or None.
    """

    name: str
    label: str
    factory: TunerFactory
    unavailable_reason: Callable[[], str | None]
    not_applicable_reason: Callable[[Problem], str | None] = lambda problem: None
