"""Ray Tune search spaces (``tune.uniform``, ``tune.choice``, ...) as CARBS parameters.

Nested dicts become parameter names joined by ``/`` (``{"optim": {"lr": ...}}``
is the parameter ``"optim/lr"``), the convention Ray's own searchers use.
Constants are left to Tune, which merges them into every trial's config.

Supported, with the CARBS space they become:

=====================================  =========================================
``tune.uniform(a, b)``                 ``LinearSpace(a, b)``
``tune.loguniform(a, b)``              ``LogSpace(a, b)``
``tune.randn(mean, sd)``               unbounded ``LinearSpace(scale=sd)``, centered on ``mean``
``tune.quniform``/``qloguniform``      integer space rounded to ``q`` (whole ``q`` only), as floats
``tune.randint(a, b)``                 integer ``LinearSpace(a, b - 1)``
``tune.qrandint(a, b, q)``             integer ``LinearSpace`` rounded to ``q``
``tune.lograndint``/``qlograndint``    integer ``LogSpace``
``tune.choice([...])``                 ``ChoiceSpace``
=====================================  =========================================

``tune.grid_search``, ``tune.sample_from`` and quantization steps that are not
whole numbers have no faithful equivalent and raise :class:`ConversionError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from carbs.integrations._extras import missing_extra

try:
    from ray.tune.search.sample import (
        Categorical,
        Domain,
        Float,
        Function,
        Integer,
        LogUniform,
        Normal,
        Quantized,
        Uniform,
    )
except ImportError as e:
    raise missing_extra("ray", "Ray Tune", e) from e

from carbs.integrations._convert import (
    DEFAULT_BASIC_SPAN,
    IDENTITY,
    ConversionError,
    ValueCodec,
    check_center_names,
    choice_space,
    integer_grid,
    linear_space,
    log_space,
    make_param,
)
from carbs.optimizer.space import LinearSpace, Param, ParamSpace

PATH_DELIMITER = "/"


def convert_ray_search_space(
    config: Mapping[str, Any],
    search_center: Mapping[str, Any] | None = None,
    basic_span: float = DEFAULT_BASIC_SPAN,
) -> tuple[list[Param], dict[str, ValueCodec]]:
    """Convert a Tune ``param_space`` into CARBS parameters.

    Args:
        config: the ``param_space`` given to ``tune.Tuner`` (nested dicts allowed).
        search_center: where the search starts, by parameter name (``"optim/lr"``)
            or as a nested dict; unnamed parameters start at the middle of their range.
        basic_span: how many basic units a bounded range spans.

    Returns:
        The parameters, and per parameter the codec that maps CARBS values back
        to the values Tune expects.
    """
    found: list[tuple[str, Domain]] = []
    _collect(config, (), found)
    names = [name for name, _ in found]
    center = flatten_center(search_center or {}, names)
    check_center_names(center, names)
    params: list[Param] = []
    codecs: dict[str, ValueCodec] = {}
    for name, domain in found:
        space, codec, fallback = _convert_domain(name, domain, basic_span)
        params.append(make_param(name, space, codec, center, fallback))
        codecs[name] = codec
    return params, codecs


def flatten_center(center: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    """Flatten a nested search-center dict into ``/``-joined names.

    Flattening stops at a key that is itself a parameter, so a dict-valued
    category stays whole.
    """
    out: dict[str, Any] = {}

    def walk(value: Mapping[str, Any], prefix: str) -> None:
        for key, item in value.items():
            name = f"{prefix}{PATH_DELIMITER}{key}" if prefix else str(key)
            if isinstance(item, Mapping) and name not in names:
                walk(item, name)
            else:
                out[name] = item

    walk(center, "")
    return out


def _collect(value: Any, path: tuple[str, ...], out: list[tuple[str, Domain]]) -> None:
    name = PATH_DELIMITER.join(path)
    if isinstance(value, Domain):
        out.append((name, value))
    elif isinstance(value, Mapping):
        if set(value) == {"grid_search"}:
            raise ConversionError(
                f"parameter {name!r}: tune.grid_search cannot be combined with a searcher; "
                "use tune.choice, or run one Tuner per grid value"
            )
        for key, item in value.items():
            if not isinstance(key, str) or PATH_DELIMITER in key:
                raise ConversionError(
                    f"config key {key!r} under {name or 'the top level'!r} must be a string "
                    f"without {PATH_DELIMITER!r} to be searched"
                )
            _collect(item, (*path, key), out)
    elif isinstance(value, (list, tuple)) and _holds_domain(value):
        raise ConversionError(
            f"parameter {name!r}: search-space entries inside lists are not supported; "
            "put them in a dict instead"
        )


def _holds_domain(value: Any) -> bool:
    if isinstance(value, Domain):
        return True
    if isinstance(value, Mapping):
        return any(_holds_domain(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_domain(v) for v in value)
    return False


def _convert_domain(
    name: str, domain: Domain, basic_span: float
) -> tuple[ParamSpace, ValueCodec, Any]:
    """One Tune domain -> (space, codec, center to use when the user gives none)."""
    if isinstance(domain, Function):
        raise ConversionError(
            f"parameter {name!r}: tune.sample_from draws from arbitrary code, which CARBS cannot "
            "model; use a bounded range or a carbs Param"
        )
    if domain.is_grid():
        raise ConversionError(
            f"parameter {name!r}: tune.grid_search cannot be combined with a searcher"
        )
    sampler = domain.get_sampler()
    q: float | None = None
    if isinstance(sampler, Quantized):
        q = sampler.q
        sampler = sampler.get_sampler()
    if isinstance(domain, Categorical):
        space, codec = choice_space(name, domain.categories)
        return space, codec, None
    if isinstance(domain, Integer):
        return _integer_space(name, domain, sampler, q, basic_span)
    if isinstance(domain, Float):
        return _float_space(name, domain, sampler, q, basic_span)
    raise ConversionError(
        f"parameter {name!r}: cannot convert a {type(domain).__name__} search-space entry; "
        "use a carbs Param"
    )


def _integer_space(
    name: str, domain: Integer, sampler: Any, q: float | None, basic_span: float
) -> tuple[ParamSpace, ValueCodec, Any]:
    if q is None or q == 1:
        # randint/lograndint exclude the upper bound; qrandint(q=1) too.
        step = 1
        low, high = int(domain.lower), int(domain.upper) - 1
    else:
        low, high = integer_grid(name, domain.lower, domain.upper, q)
        step = int(q)
    if isinstance(sampler, LogUniform):
        low = max(low, step)
        return log_space(name, low, high, is_integer=True, step=step, basic_span=basic_span), IDENTITY, None
    if isinstance(sampler, Uniform):
        return linear_space(name, low, high, is_integer=True, step=step, basic_span=basic_span), IDENTITY, None
    raise ConversionError(f"parameter {name!r}: unsupported integer sampler {sampler}")


def _float_space(
    name: str, domain: Float, sampler: Any, q: float | None, basic_span: float
) -> tuple[ParamSpace, ValueCodec, Any]:
    if isinstance(sampler, Normal):
        if q is None:
            return LinearSpace(scale=float(sampler.sd)), IDENTITY, float(sampler.mean)
        step = _whole_step(name, q)
        center = round(sampler.mean / step) * step
        grid = LinearSpace(
            scale=max(float(sampler.sd), float(step)), is_integer=True, rounding_factor=step
        )
        return grid, ValueCodec("float"), int(center)
    if q is None:
        if isinstance(sampler, LogUniform):
            return log_space(name, domain.lower, domain.upper, basic_span=basic_span), IDENTITY, None
        if isinstance(sampler, Uniform):
            return linear_space(name, domain.lower, domain.upper, basic_span=basic_span), IDENTITY, None
        raise ConversionError(f"parameter {name!r}: unsupported float sampler {sampler}")
    step = _whole_step(name, q)
    low, high = integer_grid(name, domain.lower, domain.upper, step)
    if isinstance(sampler, LogUniform):
        low = max(low, step)
        space: ParamSpace = log_space(name, low, high, is_integer=True, step=step, basic_span=basic_span)
    elif isinstance(sampler, Uniform):
        space = linear_space(name, low, high, is_integer=True, step=step, basic_span=basic_span)
    else:
        raise ConversionError(f"parameter {name!r}: unsupported float sampler {sampler}")
    return space, ValueCodec("float"), None


def _whole_step(name: str, q: float) -> int:
    if not (math.isfinite(q) and q > 0 and float(q) == int(q)):
        raise ConversionError(
            f"parameter {name!r}: quantization q={q!r} is not a whole number, and CARBS rounds "
            "only to whole-number steps; use tune.uniform/tune.loguniform (and round inside the "
            "trainable) or a carbs Param"
        )
    return int(q)
