"""The shared base of text-to-image families: prompts, precomputed embeddings, guidance.

A condition is a prompt string or a :class:`PromptEmbedding`. Strings go through the
pipeline's own ``encode_prompt`` (so tokenisation, truncation and padding match diffusers);
embeddings are used as they are, which lets a study encode its prompts once and reuse them for
every quantization config. Classifier-free guidance uses the embedding of the negative prompt
(``""`` by default, as in the pipelines) — computed once per adapter and cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from qua2.errors import Qua2Error
from qua2.models.base import CondBatch
from qua2.models.families.common import DiffusersAdapter
from qua2.models.families.conditions import FIELDS, PromptEmbedding, stack_embeddings

#: Fields that are attention masks (integer ones/zeros, not features).
MASK_FIELDS = ("mask", "mask_2")


class TextToImageAdapter(DiffusersAdapter):
    """A diffusers text-to-image family; subclasses implement the four family hooks below."""

    conditioning = "text"
    #: Pipeline attributes that must be loaded to encode prompt strings.
    text_encoder_names: ClassVar[tuple[str, ...]] = ("text_encoder",)
    #: Prompt length in tokens for T5-style encoders whose maximum is a pipeline argument.
    default_max_sequence_length: ClassVar[int | None] = None

    def __init__(
        self,
        module: nn.Module,
        scheduler: Any,
        *,
        negative: str | PromptEmbedding = "",
        max_sequence_length: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(module, scheduler, **options)
        self.negative = negative
        self.max_sequence_length = max_sequence_length or self.default_max_sequence_length
        self._null: PromptEmbedding | None = None
        if isinstance(negative, PromptEmbedding):
            self._null = self._checked(negative)

    # ----------------------------------------------------------------- family hooks
    def _encode_text(self, prompts: list[str]) -> dict[str, torch.Tensor | None]:
        """Batched :class:`PromptEmbedding` fields for ``prompts`` via the pipeline."""
        raise NotImplementedError

    def embedding_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-prompt shape of every field this denoiser needs (e.g. ``{"embeds": (77, 768)}``)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- prompts
    @property
    def has_text_encoders(self) -> bool:
        """Whether prompt strings can be encoded (the pipeline's text encoders are loaded)."""
        return self.pipeline is not None and all(
            getattr(self.pipeline, name, None) is not None for name in self.text_encoder_names
        )

    @property
    def text_pipeline(self) -> Any:
        """The pipeline whose ``encode_prompt`` encodes prompt strings (loaded, or an error)."""
        if self.pipeline is None:
            raise Qua2Error(
                f"this {self.family} adapter has no pipeline to encode prompts with; build it "
                "with from_pipeline()/from_directory() or pass PromptEmbedding conditions."
            )
        return self.pipeline

    @property
    def sequence_length(self) -> int:
        """``max_sequence_length`` as an int, for families whose prompt length is an argument."""
        if self.max_sequence_length is None:
            raise Qua2Error(
                f"the {self.family} adapter has no max_sequence_length; pass "
                "max_sequence_length=<tokens>."
            )
        return int(self.max_sequence_length)

    @property
    def text_device(self) -> torch.device:
        """Where the text encoders are: prompts are encoded there, then moved to the denoiser
        (so text encoders may stay on the CPU while the denoiser runs on a GPU)."""
        encoder = getattr(self.pipeline, self.text_encoder_names[0], None)
        return next(encoder.parameters()).device if encoder is not None else self.device

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> list[PromptEmbedding]:
        """One :class:`PromptEmbedding` per prompt, through the pipeline's text encoders."""
        if not self.has_text_encoders:
            raise Qua2Error(
                f"this {self.family} adapter has no text encoders loaded, so it takes "
                "PromptEmbedding conditions only; load it with text_encoders=True or pass "
                "precomputed embeddings."
            )
        batch = self._encode_text([str(p) for p in prompts])
        return [self._checked(e) for e in PromptEmbedding.unbatch(**batch)]

    def random_embeddings(self, n: int, seed: int = 0) -> list[PromptEmbedding]:
        """``n`` seeded random embeddings of the shapes this denoiser takes (tests, tracing)."""
        gen = torch.Generator().manual_seed(seed)
        items = []
        for _ in range(n):
            fields = {
                name: (torch.ones(shape, dtype=torch.long) if name in MASK_FIELDS
                       else torch.randn(shape, generator=gen))
                for name, shape in self.embedding_shapes().items()
            }
            items.append(PromptEmbedding(**fields))
        return items

    def null_embedding(self) -> PromptEmbedding:
        """The embedding of the negative prompt, used as the unconditional branch of CFG."""
        if self._null is None:
            if not self.has_text_encoders:
                raise Qua2Error(
                    f"classifier-free guidance needs the embedding of the negative prompt "
                    f"{self.negative!r}, but this {self.family} adapter has no text encoders; "
                    "pass negative=PromptEmbedding(...) or guidance_scale=1."
                )
            self._null = self.encode_prompts([str(self.negative)])[0]
        return self._null

    # ----------------------------------------------------------------- DenoiserAdapter
    def encode_conditions(self, conditions: Sequence[Any]) -> CondBatch:
        """Prompts and/or :class:`PromptEmbedding` objects → batched denoiser inputs."""
        items: list[PromptEmbedding | None] = []
        prompts: list[str] = []
        for condition in conditions:
            if isinstance(condition, str):
                prompts.append(condition)
                items.append(None)
            elif isinstance(condition, PromptEmbedding):
                items.append(self._checked(condition))
            else:
                raise Qua2Error(
                    f"{self.family} conditions are prompt strings or PromptEmbedding objects, "
                    f"not {type(condition).__name__}; pass prompts."
                )
        encoded = iter(self.encode_prompts(prompts) if prompts else [])
        filled = [item if item is not None else next(encoded) for item in items]
        return self._batch(filled)

    def null_conditions(self, n: int) -> CondBatch:
        """The negative-prompt embedding, repeated ``n`` times."""
        return self._batch([self.null_embedding()] * n)

    def example_conditions(self, batch_size: int) -> CondBatch:
        """Seeded random embeddings of the right shapes (no text encoder needed)."""
        return self._batch(self.random_embeddings(batch_size))

    # ----------------------------------------------------------------- helpers
    def _batch(self, items: Sequence[PromptEmbedding]) -> CondBatch:
        moved = [item.to(self.device, self.dtype) for item in items]
        return stack_embeddings(moved)

    def _checked(self, embedding: PromptEmbedding) -> PromptEmbedding:
        """``embedding`` validated against :meth:`embedding_shapes`; missing masks filled."""
        shapes = self.embedding_shapes()
        fields: dict[str, torch.Tensor | None] = {}
        for name in FIELDS:
            value = getattr(embedding, name)
            if name not in shapes:
                fields[name] = None  # a field this denoiser does not read
                continue
            tokens = _tokens_of(embedding, name)
            if value is None and name in MASK_FIELDS and tokens is not None:
                value = torch.ones(tokens.shape[0], dtype=torch.long)  # attend to every token
            _check_field(self.family, name, value, shapes[name])
            if name in MASK_FIELDS and tokens is not None and value.shape[0] != tokens.shape[0]:
                raise Qua2Error(
                    f"{self.family} prompt embedding {name!r} covers {value.shape[0]} tokens but "
                    f"the sequence has {tokens.shape[0]}; give one mask entry per token."
                )
            fields[name] = value
        return PromptEmbedding.from_fields(fields)


def _tokens_of(embedding: PromptEmbedding, mask_name: str) -> torch.Tensor | None:
    """The token sequence a mask field belongs to (``None`` for non-mask fields)."""
    if mask_name not in MASK_FIELDS:
        return None
    return embedding.embeds if mask_name == "mask" else embedding.embeds_2


def _check_field(family: str, name: str, value: torch.Tensor | None,
                 shape: tuple[int, ...]) -> None:
    """Feature sizes must match the denoiser; token counts may differ (except for masks)."""
    if value is None:
        raise Qua2Error(
            f"{family} prompt embeddings need a {name!r} tensor of shape {list(shape)}; "
            "encode the prompts with this adapter's encode_prompts()."
        )
    if value.dim() != len(shape) or (len(shape) > 1 and value.shape[-1] != shape[-1]) or (
        len(shape) == 1 and name not in MASK_FIELDS and value.shape[0] != shape[0]
    ):
        raise Qua2Error(
            f"{family} prompt embedding {name!r} has shape {list(value.shape)} but the denoiser "
            f"takes {list(shape)}; encode the prompts with this adapter's encode_prompts()."
        )
