"""DiT-XL/2: a class-conditional diffusion transformer on ImageNet latents.

Conditions are ImageNet class ids (``int``) or, when the pipeline carries ``id2label``, label
names such as ``"golden retriever"``. The unconditional class for guidance is the extra row of
the label table (id = ``num_embeds_ada_norm``, 1000 for ImageNet). The transformer learns the
variance; guidance applies to the noise half, as in ``DiTPipeline``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch

from qua2.errors import Qua2Error
from qua2.models.base import CondBatch, ExampleInputs, config_of
from qua2.models.families.common import DiffusersAdapter


class DiTAdapter(DiffusersAdapter):
    """DiT (``DiTTransformer2DModel``) with class-label conditions."""

    family = "dit"
    conditioning = "class"
    default_guidance = 4.0
    default_resolution = 256

    @property
    def num_classes(self) -> int:
        """Number of real classes; the id after the last one is the null class."""
        return int(config_of(self.module).num_embeds_ada_norm)

    def class_ids(self, conditions: Sequence[Any]) -> list[int]:
        """Class ids for ``conditions`` (ids or, with a pipeline's ``id2label``, label names)."""
        ids = []
        for condition in conditions:
            if isinstance(condition, str):
                ids.append(self._label_id(condition))
            elif isinstance(condition, numbers.Integral) or (
                isinstance(condition, torch.Tensor) and condition.numel() == 1
            ):
                ids.append(int(condition))
            else:
                raise Qua2Error(
                    f"dit conditions are class ids or label names, not "
                    f"{type(condition).__name__}; pass integers in [0, {self.num_classes})."
                )
        bad = [i for i in ids if not 0 <= i < self.num_classes]
        if bad:
            raise Qua2Error(
                f"class id(s) {bad} out of range; DiT takes ids in [0, {self.num_classes})."
            )
        return ids

    def _label_id(self, label: str) -> int:
        labels = getattr(self.pipeline, "labels", None) or {}
        if label not in labels:
            raise Qua2Error(
                f"unknown class label {label!r}; pass an ImageNet class id or a label listed in "
                "the pipeline's id2label."
            )
        return int(labels[label])

    def encode_conditions(self, conditions: Sequence[Any]) -> CondBatch:
        ids = self.class_ids(conditions)
        return {"class_labels": torch.tensor(ids, dtype=torch.long, device=self.device)}

    def null_conditions(self, n: int) -> CondBatch:
        null = torch.full((n,), self.num_classes, dtype=torch.long, device=self.device)
        return {"class_labels": null}

    def example_conditions(self, batch_size: int) -> CondBatch:
        return self.encode_conditions([i % self.num_classes for i in range(batch_size)])

    def forward_inputs(self, latents: torch.Tensor, t: torch.Tensor,
                       cond: CondBatch) -> ExampleInputs:
        kwargs = {
            "timestep": self.timesteps_for(t, latents.shape[0]),
            "class_labels": cond["class_labels"],
        }
        return ExampleInputs((latents,), kwargs)
