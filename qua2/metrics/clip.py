"""CLIP score (prompt adherence) and CLIP image features from a *local* CLIP model.

CLIPScore (Hessel et al., 2021, "CLIPScore: A Reference-free Evaluation Metric for Image
Captioning") is the cosine similarity of CLIP's image and text embeddings; qua2 reports
``100 · max(cos, 0)`` averaged over images, the convention of torchmetrics' ``CLIPScore`` and of
the text-to-image quantization papers. The model is loaded with
``transformers.CLIPModel.from_pretrained(path)`` from a directory the user names (argument or
``$QUA2_CLIP_MODEL``); qua2 never downloads it.

Pre-processing is done in torch (so it runs on the model's device, batched): [-1, 1] → [0, 1],
grey → RGB, bicubic resize of the short side to the model's input size with antialiasing,
centre crop, and CLIP's mean/std normalisation (read from ``preprocessor_config.json`` when the
directory has one). This mirrors ``CLIPImageProcessor`` up to resampling details, which shift
scores slightly; compare CLIP scores only within qua2.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from qua2.errors import Qua2Error
from qua2.io import read_json_object

if TYPE_CHECKING:
    from transformers import CLIPModel, PreTrainedTokenizerBase

CLIP_ENV = "QUA2_CLIP_MODEL"
#: OpenAI CLIP normalisation, used when the model directory has no preprocessor config.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: Any of these in the model directory means a tokenizer was saved with the model.
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer_config.json")


def directory_id(path: Path, prefix: str) -> str:
    """A cheap identity of a model directory: its config and the names and sizes of its files.

    Hashing multi-GB weights on every load would be slow; a changed checkpoint almost always
    changes a size or the config, and the id only keys cached reference statistics.
    """
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        digest.update(f"{rel}|{file.stat().st_size}|".encode())
        if file.suffix == ".json":
            digest.update(file.read_bytes())
    return f"{prefix}:{path.name}-{digest.hexdigest()[:12]}"


def resolve_local_dir(path: str | os.PathLike | None, env: str, what: str) -> Path:
    """The configured local model directory, or a :class:`Qua2Error` saying how to set it."""
    chosen = path if path is not None else os.environ.get(env)
    if not chosen:
        raise Qua2Error(f"no local {what} is configured; pass its directory or set ${env} "
                        "(qua2 never downloads metric networks).")
    resolved = Path(chosen).expanduser()
    if not (resolved / "config.json").is_file():
        raise Qua2Error(f"{what} directory {str(resolved)!r} has no config.json; point to a "
                        "folder saved with save_pretrained().")
    return resolved


class ClipScorer:
    """A local CLIP model: ``score(images, prompts)`` and, as a feature extractor, image features.

    Satisfies :class:`~qua2.metrics.frechet.FeatureExtractor`, so ``FrechetScorer(clip, real)``
    gives FD in CLIP space ("fd_clip", Kynkäänniemi et al., 2023).
    """

    def __init__(self, model: CLIPModel, tokenizer: PreTrainedTokenizerBase | None, model_id: str,
                 image_size: int, mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.id = model_id
        self.image_size = image_size
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike,
                        device: torch.device | str = "cpu") -> ClipScorer:
        """Load ``CLIPModel`` (and its tokenizer, if the directory has one) from ``path``."""
        from transformers import AutoTokenizer, CLIPModel

        root = resolve_local_dir(path, CLIP_ENV, "CLIP model")
        try:
            model = CLIPModel.from_pretrained(root, local_files_only=True)
        except (OSError, ValueError) as err:
            raise Qua2Error(f"could not load a CLIP model from {str(root)!r} ({err}); point to "
                            "a CLIPModel directory saved with save_pretrained().") from err
        tokenizer = None  # image-only use: features, or precomputed text embeddings
        # Checked by file: transformers 5 builds an empty 2-token tokenizer when none is saved.
        if any((root / name).is_file() for name in TOKENIZER_FILES):
            try:
                tokenizer = AutoTokenizer.from_pretrained(root, local_files_only=True)
            except (OSError, ValueError, TypeError) as err:
                raise Qua2Error(f"the tokenizer in {str(root)!r} could not be loaded ({err}); "
                                "re-save it with save_pretrained().") from err
        # CLIPConfig builds its sub-configs in __post_init__; its annotations allow dicts.
        config: Any = model.config
        mean, std, size = _preprocessing(root, config.vision_config.image_size)
        # PreTrainedModel.to is wrapped by a decorator whose typing takes the model as argument 1.
        moved = model.to(device)  # type: ignore[arg-type]
        return cls(moved, tokenizer, directory_id(root, "clip"), size, mean, std)

    @classmethod
    def from_config(cls, path: str | os.PathLike | None = None,
                    device: torch.device | str = "cpu") -> ClipScorer:
        """Like :meth:`from_pretrained`, falling back to ``$QUA2_CLIP_MODEL``."""
        return cls.from_pretrained(resolve_local_dir(path, CLIP_ENV, "CLIP model"), device)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Images [-1, 1] ``[N, 1|3, H, W]`` → CLIP pixel values on the model's device."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise Qua2Error(f"CLIP takes images [N, 1 or 3, H, W] in [-1, 1], got shape "
                            f"{tuple(images.shape)}.")
        x = ((images.float() + 1) / 2).clamp(0, 1).to(self.device)
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        h, w = x.shape[-2:]
        scale = self.image_size / min(h, w)
        x = F.interpolate(x, size=(max(self.image_size, round(h * scale)),
                                   max(self.image_size, round(w * scale))),
                          mode="bicubic", antialias=True, align_corners=False)
        top, left = (x.shape[-2] - self.image_size) // 2, (x.shape[-1] - self.image_size) // 2
        x = x[..., top:top + self.image_size, left:left + self.image_size]
        return (x - self.mean.to(x)) / self.std.to(x)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Projected CLIP image embeddings ``[N, D]`` (not normalised), on the CPU."""
        out = self.model.get_image_features(pixel_values=self.preprocess(images))
        return _pooled(out).float().cpu()

    @torch.no_grad()
    def text_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        """Projected CLIP text embeddings ``[N, D]`` of prompts, on the CPU."""
        if self.tokenizer is None:
            raise Qua2Error(f"the CLIP directory of {self.id} has no tokenizer; save one with "
                            "the model or pass text_embeddings instead of prompts.")
        config: Any = self.model.config  # (see from_pretrained)
        max_len = config.text_config.max_position_embeddings
        tokens = self.tokenizer(list(prompts), padding=True, truncation=True,
                                max_length=max_len, return_tensors="pt").to(self.device)
        out = self.model.get_text_features(input_ids=tokens["input_ids"],
                                           attention_mask=tokens.get("attention_mask"))
        return _pooled(out).float().cpu()

    def score_per_image(self, images: torch.Tensor, prompts: Sequence[str] | None = None,
                        text_embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """``100 · max(cos(image, text), 0)`` for each (image, prompt) pair, ``[N]``."""
        if text_embeddings is not None and prompts is None:
            text = text_embeddings
        elif prompts is not None and text_embeddings is None:
            text = self.text_embeddings(prompts)
        else:
            raise Qua2Error("pass either prompts or text_embeddings to the CLIP score.")
        if len(text) != len(images):
            raise Qua2Error(f"got {len(text)} prompts for {len(images)} images; pass one "
                            "prompt per image.")
        image = self(images)
        cos = F.cosine_similarity(image, text.to(image), dim=-1)
        return 100.0 * cos.clamp(min=0)

    def score(self, images: torch.Tensor, prompts: Sequence[str] | None = None,
              text_embeddings: torch.Tensor | None = None) -> float:
        """Mean CLIP score of images against their prompts (higher = better adherence)."""
        return float(self.score_per_image(images, prompts, text_embeddings).mean())


def _pooled(out: Any) -> torch.Tensor:
    # transformers < 5 returns the projected tensor; 5.x returns an output with pooler_output.
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _preprocessing(root: Path, default_size: int) -> tuple[Sequence[float], Sequence[float], int]:
    """Mean, std and input size from ``preprocessor_config.json`` when present."""
    cfg_path = root / "preprocessor_config.json"
    if not cfg_path.is_file():
        return CLIP_MEAN, CLIP_STD, default_size
    cfg = read_json_object(cfg_path, "point metrics.clip_model at an intact CLIP directory")
    crop = cfg.get("crop_size", default_size)
    size = crop.get("height", default_size) if isinstance(crop, dict) else int(crop)
    return cfg.get("image_mean", CLIP_MEAN), cfg.get("image_std", CLIP_STD), size
