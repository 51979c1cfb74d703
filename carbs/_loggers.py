"""Registry of loggers the optimizer can switch on by name, without importing them.

``CARBSParams.is_wandb_logging_enabled`` asks the optimizer to log to Weights &
Biases, which lives in an integration above the optimizer layer. The package
registers the integration's factory here as a ``"module:attribute"`` path and
the optimizer imports it only when the flag is set, so no lower layer imports
an upper one. This module imports nothing, so registering costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

_FACTORIES: dict[str, str] = {}


def register_logger_factory(name: str, factory_path: str) -> None:
    """Register the factory of logger ``name`` as ``"module:attribute"`` (dots allowed in the attribute)."""
    if ":" not in factory_path:
        raise ValueError(f"factory_path must look like 'module:attribute', got {factory_path!r}")
    _FACTORIES[name] = factory_path


def logger_factory(name: str) -> Any:
    """Import and return the factory registered as ``name`` (``ImportError`` if none is)."""
    path = _FACTORIES.get(name)
    if path is None:
        raise ImportError(f"no {name!r} logger is registered")
    module, _, attribute = path.partition(":")
    target: Any = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target
