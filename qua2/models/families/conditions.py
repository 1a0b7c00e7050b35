"""Precomputed text conditioning: one prompt's embeddings, and batching them.

Encoding prompts costs a text-encoder forward (T5-XXL is 4.7 B parameters), yet a study scores
thousands of quantization configs with the *same* prompts. So every text family accepts a
:class:`PromptEmbedding` wherever it accepts a prompt string: encode once with
``adapter.encode_prompts(prompts)``, keep the embeddings (``save_embeddings`` writes
safetensors), and pass them as conditions from then on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from qua2.errors import Qua2Error
from qua2.io import load_safetensors

#: Field names of :class:`PromptEmbedding`, in the order they are batched.
FIELDS = ("embeds", "mask", "pooled", "embeds_2", "mask_2")


@dataclass(frozen=True)
class PromptEmbedding:
    """The text conditioning of ONE prompt, without a batch dimension.

    ``embeds`` is the token sequence the denoiser cross-attends to, ``[L, D]``; ``mask`` its
    attention mask ``[L]`` (PixArt, Hunyuan); ``pooled`` a pooled vector ``[P]`` (SDXL, SD3,
    Flux). ``embeds_2``/``mask_2`` hold a second sequence kept apart by the denoiser
    (Hunyuan-DiT's T5 stream next to its CLIP stream). Unused fields stay ``None``.
    """

    embeds: torch.Tensor
    mask: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    embeds_2: torch.Tensor | None = None
    mask_2: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.embeds.dim() != 2:
            raise Qua2Error(
                f"a PromptEmbedding holds one prompt, so embeds must be [tokens, dim], not "
                f"{list(self.embeds.shape)}; split batches with PromptEmbedding.unbatch()."
            )

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> PromptEmbedding:
        """A copy on ``device``; float tensors also cast to ``dtype`` (masks keep theirs)."""
        moved = {}
        for name in FIELDS:
            value = getattr(self, name)
            if value is not None:
                cast = dtype if (dtype is not None and value.is_floating_point()) else None
                value = value.to(device=device, dtype=cast)
            moved[name] = value
        return PromptEmbedding(**moved)

    @classmethod
    def from_fields(cls, fields: Mapping[str, torch.Tensor | None]) -> PromptEmbedding:
        """Build one from ``{field: tensor or None}``; ``embeds`` must be a tensor."""
        embeds = fields.get("embeds")
        if embeds is None:
            raise Qua2Error(
                "a PromptEmbedding needs an embeds tensor [tokens, dim]; encode the prompts "
                "with the adapter's encode_prompts()."
            )
        return cls(embeds, **{k: v for k, v in fields.items() if k != "embeds"})

    @staticmethod
    def unbatch(**batched: torch.Tensor | None) -> list[PromptEmbedding]:
        """Split batch-first tensors (``embeds=[N, L, D]``, ``pooled=[N, P]`` …) into N items."""
        embeds = batched.get("embeds")
        if embeds is None:
            raise Qua2Error(
                "PromptEmbedding.unbatch needs a batch-first embeds tensor [N, tokens, dim]; "
                "encode the prompts with the adapter's encode_prompts()."
            )
        items = []
        for i in range(embeds.shape[0]):
            items.append(PromptEmbedding.from_fields({
                k: (v[i] if v is not None else None) for k, v in batched.items()
            }))
        return items


def stack_embeddings(items: Sequence[PromptEmbedding]) -> dict[str, torch.Tensor | None]:
    """Batch single-prompt embeddings into ``{field: [N, …] tensor or None}``."""
    batch: dict[str, torch.Tensor | None] = {}
    for name in FIELDS:
        values = [getattr(item, name) for item in items]
        present = [v is not None for v in values]
        if not any(present):
            batch[name] = None
            continue
        if not all(present):
            raise Qua2Error(
                f"some prompt embeddings have {name} and some do not; encode all prompts of a "
                "batch with the same adapter."
            )
        shapes = {tuple(v.shape) for v in values}
        if len(shapes) > 1:
            raise Qua2Error(
                f"prompt embeddings disagree in {name} shape ({sorted(shapes)}); pad them to one "
                "length (encode_prompts pads to the model's maximum length)."
            )
        batch[name] = torch.stack(values)
    return batch


def save_embeddings(items: Sequence[PromptEmbedding], path: str | Path) -> None:
    """Write embeddings to one safetensors file (batched per field)."""
    from safetensors.torch import save_file

    batch = stack_embeddings(items)
    save_file({k: v.contiguous().cpu() for k, v in batch.items() if v is not None}, str(path))


def load_embeddings(path: str | Path) -> list[PromptEmbedding]:
    """Read embeddings written by :func:`save_embeddings`."""
    if not Path(path).is_file():
        raise Qua2Error(f"no prompt-embedding file at {path}; write one with save_embeddings().")
    tensors, _ = load_safetensors(path, "write it again with save_embeddings()")
    known = {f.name for f in fields(PromptEmbedding)}
    if "embeds" not in tensors or not set(tensors) <= known:
        raise Qua2Error(
            f"{path} is not a prompt-embedding file (fields {sorted(tensors)}); write it with "
            "save_embeddings()."
        )
    return PromptEmbedding.unbatch(**tensors)
