"""The reference implementation's module path for the surrogate models: ``from carbs.model import SurrogateModel``.

``SurrogateModel(SurrogateModelParams(...))`` offers the reference's methods
(``fit_observations``, ``fit_suggestions``, ``fit_failures``,
``fit_pareto_set``, ``get_pareto_surrogate_for_cost``, ``observe_surrogate``)
over this implementation's numpy models; ``CARBS.get_surrogate_model()``
returns one with an optimizer's settings.
"""

from carbs.optimizer.reference_api import (
    SurrogateModel,
    SurrogateModelParams,
    SurrogateObservationOutputs,
)

__all__ = ["SurrogateModel", "SurrogateModelParams", "SurrogateObservationOutputs"]
