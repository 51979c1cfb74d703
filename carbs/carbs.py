"""The reference implementation's module path for the optimizer: ``from carbs.carbs import CARBS``.

The optimizer lives in :mod:`carbs.optimizer`; this module re-exports it,
with everything :mod:`carbs.utils` holds, as the reference's module did.
"""

from carbs.optimizer.loop import CARBS
from carbs.optimizer.reference_api import SurrogateModel
from carbs.utils import *  # noqa: F403
from carbs.utils import __all__ as _utils_all

__all__ = ["CARBS", "SurrogateModel", *_utils_all]
