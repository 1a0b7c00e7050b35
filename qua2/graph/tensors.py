"""Small helpers over the arguments of torch calls: find tensors, freeze arguments, no-ops."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


def tensors_in(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside nested tuples, lists, dicts and diffusers output objects."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from tensors_in(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from tensors_in(item)
    elif obj is None or isinstance(obj, (int, float, str, torch.dtype)):
        return
    elif hasattr(obj, "to_tuple"):  # diffusers BaseOutput
        yield from tensors_in(obj.to_tuple())


_NEUTRAL = {"add": 0, "__add__": 0, "__radd__": 0, "__iadd__": 0, "sub": 0, "__sub__": 0,
            "__isub__": 0, "mul": 1, "__mul__": 1, "__rmul__": 1, "__imul__": 1, "div": 1,
            "__truediv__": 1, "__itruediv__": 1}


def is_identity(name: str, args: tuple, kwargs: dict) -> bool:
    """``x + 0``, ``x * 1``, ``x / 1`` and the like (one tensor, one neutral Python number)."""
    if name not in _NEUTRAL or kwargs or len(args) != 2:
        return False
    tensors = [isinstance(a, torch.Tensor) for a in args]
    if sum(tensors) != 1:
        return False
    scalar = args[1] if tensors[0] else args[0]
    return isinstance(scalar, (int, float)) and not isinstance(scalar, bool) \
        and scalar == _NEUTRAL[name]


def signature(args: tuple, kwargs: dict) -> tuple:
    """The non-tensor arguments of a call as a hashable tuple (tells chunk pieces apart)."""
    return tuple(_freeze(a) for a in args) + tuple((k, _freeze(v)) for k, v in kwargs.items())


def _freeze(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return "T"
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, (int, float, str, bool, type(None), torch.dtype, torch.device)):
        return value
    return type(value).__name__
