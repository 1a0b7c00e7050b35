"""The meta shortcuts give the shapes and dtypes the real meta kernels give."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from qua2.graph.metafast import shortcut


def _m(*shape, dtype=torch.float32):
    return torch.empty(shape, dtype=dtype, device="meta")


CASES = [
    ("add", torch.add, (_m(2, 8, 4, 4), _m(2, 8, 1, 1)), {}),
    ("__mul__", torch.Tensor.__mul__, (_m(3, 1, 5), _m(4, 1)), {}),
    ("__rsub__", torch.Tensor.__rsub__, (_m(3, 5), 1.0), {}),
    ("__truediv__", torch.Tensor.__truediv__, (_m(3, 5, dtype=torch.float16), 2), {}),
    ("silu", F.silu, (_m(2, 7),), {}),
    ("group_norm", F.group_norm, (_m(2, 8, 4, 4), 4), {}),
    ("layer_norm", F.layer_norm, (_m(2, 9, 16), (16,)), {}),
    ("softmax", F.softmax, (_m(2, 3, 9),), {"dim": -1, "dtype": torch.float64}),
    ("scaled_dot_product_attention", F.scaled_dot_product_attention,
     (_m(2, 4, 9, 8), _m(2, 4, 5, 8), _m(2, 4, 5, 6)), {}),
    ("linear", F.linear, (_m(2, 9, 16), _m(32, 16), _m(32)), {}),
]


@pytest.mark.parametrize("name, func, args, kwargs", CASES, ids=[c[0] for c in CASES])
def test_shortcut_matches_the_meta_kernel(name, func, args, kwargs):
    fast = shortcut(name, args, kwargs)
    real = func(*args, **kwargs)
    assert fast is not None and fast.is_meta
    assert fast.shape == real.shape and fast.dtype == real.dtype


def test_shortcut_declines_what_it_does_not_model():
    assert shortcut("add", (torch.zeros(2), torch.zeros(2)), {}) is None  # not meta
    assert shortcut("add", (_m(2, dtype=torch.long), 1), {}) is None      # integer maths
    assert shortcut("add", (_m(3, 4), _m(5, 4)), {}) is None              # bad broadcast
    assert shortcut("conv2d", (_m(1, 3, 8, 8), _m(4, 3, 3, 3)), {}) is None
    inplace = _m(2, 3)
    assert shortcut("add_", (inplace, _m(2, 3)), {}) is inplace
