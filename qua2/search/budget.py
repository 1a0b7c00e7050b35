"""Exact bit accounting of configurations, as arrays the search can optimise over.

Average bits follow Qua²SeDiMo's definition, overheads included:
``avg_bits = 16 × (quantized bytes incl. scales/zeros/codebooks) / (FP16 bytes)`` over the
quantized layers. A :class:`CostTable` holds, for every layer and option of the search space,
the exact stored bytes from the option cache, so a budget ``B`` becomes the linear constraint
``Σ bytes[l, o]·x[l, o] ≤ B/16 · Σ fp16_bytes[l]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qua2.errors import Qua2Error
from qua2.specs import QuantConfig, QuantOption, SearchSpace

if TYPE_CHECKING:
    from qua2.graph.features import OptionStatsSource


@dataclass(frozen=True)
class CostTable:
    """Bytes of every (layer, option) and the FP16 bytes of every layer."""

    layers: tuple[str, ...]
    options: tuple[QuantOption, ...]
    nbytes: np.ndarray  # [L, O]
    fp16_nbytes: np.ndarray  # [L]

    @classmethod
    def from_cache(cls, layers: Sequence[str], space: SearchSpace,
                   cache: OptionStatsSource) -> CostTable:
        options = tuple(space)
        nbytes = np.array([[cache.option_stats(layer, o).nbytes for o in options]
                           for layer in layers], dtype=np.float64)
        fp16 = np.array([cache.option_stats(layer, options[0]).fp16_nbytes for layer in layers],
                        dtype=np.float64)
        return cls(tuple(layers), options, nbytes, fp16)

    def capacity(self, budget_bits: float) -> float:
        """The byte budget that an average of ``budget_bits`` allows."""
        return budget_bits / 16.0 * float(self.fp16_nbytes.sum())

    def avg_bits(self, choice: np.ndarray) -> float:
        """Average bits of a choice vector (option index per layer)."""
        used = self.nbytes[np.arange(len(self.layers)), choice].sum()
        return 16.0 * float(used) / float(self.fp16_nbytes.sum())

    def bits_range(self) -> tuple[float, float]:
        """The lowest and highest average bits any configuration can have."""
        return self.avg_bits(self.nbytes.argmin(1)), self.avg_bits(self.nbytes.argmax(1))

    def check_budget(self, budget_bits: float) -> None:
        """Refuse a budget no configuration can meet, or one above the costliest (not binding).

        The message names the feasible range, overheads included.
        """
        low, high = self.bits_range()
        if not low - 1e-9 <= budget_bits <= high + 1e-9:
            where = "below the cheapest" if budget_bits < low else "above the costliest"
            raise Qua2Error(
                f"a budget of {budget_bits:g} average bits is {where} configuration of this "
                f"search space; ask for {low:.3f} to {high:.3f} bits (overheads included)."
            )

    def to_config(self, choice: np.ndarray) -> QuantConfig:
        return QuantConfig({layer: self.options[int(i)] for layer, i in zip(self.layers, choice)})

    def to_choice(self, config: QuantConfig) -> np.ndarray:
        index = {o: i for i, o in enumerate(self.options)}
        return np.array([index[config[layer]] for layer in self.layers])
