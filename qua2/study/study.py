"""A study directory and the objects every stage shares.

A :class:`Study` is a directory holding the resolved ``study.yaml`` plus the artifacts of each
stage. It loads the denoiser lazily (once per process) and defines the *common random
numbers* of the study: the conditions and seeds of image ``i`` are fixed functions of the
config, so every configuration is scored on exactly the same initial noise and labels as the
full-precision reference (docs/ARCHITECTURE.md, Conventions).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from qua2.errors import Qua2Error
from qua2.io import read_text
from qua2.study.config import StudyConfig, load_study_config

if TYPE_CHECKING:
    from qua2.activations.prepare import PreparedActivations
    from qua2.models.base import DenoiserAdapter
    from qua2.quant.apply import ConfigLike
    from qua2.quant.cache import OptionCache

STUDY_FILE = "study.yaml"


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; anything else is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        message = f"model.device {name!r} is not a torch device; use auto, cpu or cuda."
        raise Qua2Error(message) from None


def _load_saved_config(path: Path) -> StudyConfig:
    """The resolved study file a study directory keeps; damage names the fix."""
    try:
        return load_study_config(path)
    except Qua2Error as error:
        raise Qua2Error(f"the study's saved configuration {path} is unusable ({error}); copy "
                        f"the study YAML the directory was made from to {path}.") from None


def _check_conditioning(adapter: DenoiserAdapter, kind: str) -> None:
    """The model takes what the study's conditions give it (prompts or class labels)."""
    if adapter.conditioning == kind:
        return
    wants, fix = (("prompts", "text and conditions.prompts_file") if adapter.conditioning == "text"
                  else ("class labels", "class"))
    raise Qua2Error(f"model {adapter.name} is conditioned on {wants}, but the study's "
                    f"conditions.kind is {kind!r}; set conditions.kind: {fix}.")


class Study:
    """A study directory: its config, its model and its fixed conditions and seeds."""

    def __init__(self, directory: Path, config: StudyConfig) -> None:
        self.directory = Path(directory)
        self.config = config
        #: The open option cache (qua2.study.option_cache), shared by every config of a process.
        self.option_cache: OptionCache | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, config: StudyConfig, directory: str | Path) -> Study:
        """Start (or re-open) a study in ``directory``; refuses to mix two different configs."""
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise Qua2Error(f"--out {directory} is a file, not a directory; choose a new or an "
                            "existing study directory.")
        existing = directory / STUDY_FILE
        if existing.exists():
            saved = _load_saved_config(existing)
            if saved.results_dict() != config.results_dict():
                raise Qua2Error(
                    f"{directory} already holds a study with a different configuration; "
                    "choose another --out directory or re-run with the same YAML."
                )
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise Qua2Error(f"cannot create the study directory {directory} "
                            f"({error.strerror}); choose another --out.") from None
        config.save(existing)
        return cls(directory, config)

    @classmethod
    def open(cls, directory: str | Path) -> Study:
        """Open an existing study directory (made by ``qua2 run``)."""
        directory = Path(directory)
        path = directory / STUDY_FILE
        if not path.is_file():
            raise Qua2Error(
                f"{directory} is not a qua2 study directory (no {STUDY_FILE}); "
                "create one with `qua2 run STUDY.yaml --out DIR`."
            )
        return cls(directory, _load_saved_config(path))

    def path(self, *parts: str) -> Path:
        """A path inside the study directory (parent folders created)."""
        target = self.directory.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    # ------------------------------------------------------------------ model
    @cached_property
    def device(self) -> torch.device:
        return resolve_device(self.config.model.device)

    @cached_property
    def adapter(self) -> DenoiserAdapter:
        """The denoiser adapter, loaded once per process."""
        from qua2.models.registry import get_family, load_model
        from qua2.study.validate import check_study_paths

        model = self.config.model
        check_study_paths(self.config)
        options = dict(model.options)
        if get_family(model.family).needs_path:
            # A diffusers directory loads straight in the study's dtype: loading float32 and
            # casting afterwards would need twice the memory of a large model.
            options.setdefault("dtype", model.dtype)
        adapter = load_model(model.family, model.path, **options)
        adapter.place(self.device, getattr(torch, model.dtype))
        _check_conditioning(adapter, self.config.conditions.kind)
        return adapter

    @cached_property
    def activations(self) -> PreparedActivations | None:
        """The study's prepared activation quantization (calibrated once, cached), or None."""
        setting = self.config.activation_setting()
        if setting is None:
            return None
        from qua2.activations.prepare import prepare_activations

        count = setting.calibration_size
        return prepare_activations(
            self.adapter, setting, layers=self.adapter.quantizable_layers(),
            conditions=self.conditions(count), cache_dir=self.directory / "calibration",
            steps=self.config.sampler.steps, seed=self.config.seeds.sampling)

    @property
    def precision_label(self) -> str:
        """``A16`` (FP activations) or the activation setting's label, e.g. ``A8-ndtc``."""
        return "A16" if self.activations is None else self.activations.label

    @contextlib.contextmanager
    def quantized(self, config: ConfigLike, cache: OptionCache) -> Iterator[None]:
        """Weights of ``config`` from ``cache`` and the study's activation setting, together."""
        from qua2.quant.apply import quantized

        with contextlib.ExitStack() as stack:
            if self.activations is not None:
                stack.enter_context(self.activations.apply(self.adapter.module))
            stack.enter_context(quantized(self.adapter.module, config, cache))
            yield

    # ------------------------------------------------------------------ common random numbers
    def conditions(self, count: int) -> list[Any]:
        """Conditions of images ``0 … count-1`` of any seed list (labels cycled, or prompts)."""
        section = self.config.conditions
        if section.kind == "class":
            pool: list[Any] = section.labels or list(range(section.num_classes))
        else:
            pool = self._prompts()
        return [pool[i % len(pool)] for i in range(count)]

    def _prompts(self) -> list[str]:
        file = self.config.conditions.prompts_file
        if not file:
            raise Qua2Error("conditions.kind is 'text' but conditions.prompts_file is not set.")
        path = Path(file)
        if not path.is_file():
            raise Qua2Error(f"conditions.prompts_file {path} does not exist.")
        text = read_text(path, "give conditions.prompts_file as UTF-8 text, one prompt a line")
        prompts = [line.strip() for line in text.splitlines() if line.strip()]
        if not prompts:
            raise Qua2Error(f"conditions.prompts_file {path} holds no prompts.")
        return prompts

    def sampling_seeds(self, count: int | None = None) -> list[int]:
        """Seeds of the images every sampled configuration is scored on."""
        count = self.config.images_per_config if count is None else count
        return [self.config.seeds.sampling + i for i in range(count)]

    def selection_seeds(self, count: int | None = None) -> list[int]:
        """Seeds on which the best of qua2's picks per budget is chosen (not verified on)."""
        count = self.config.selection_images if count is None else count
        return [self.config.seeds.selection + i for i in range(count)]

    def verification_seeds(self, count: int | None = None) -> list[int]:
        """Held-out seeds, never used while sampling or fitting."""
        count = self.config.verification_images if count is None else count
        return [self.config.seeds.verification + i for i in range(count)]

    def generate(self, seeds: list[int], noise: torch.Tensor | None = None,
                 conditions: list[Any] | None = None) -> torch.Tensor:
        """Images of the current model weights for ``seeds`` with the study's sampler.

        ``conditions`` default to those of images ``0 … len(seeds)-1``; a slice of a seed list
        (one Ray actor's share of the verification seeds) passes its own.
        """
        sampler = self.config.sampler
        conditions = self.conditions(len(seeds)) if conditions is None else conditions
        return self.adapter.generate(
            conditions, seeds, steps=sampler.steps,
            guidance_scale=sampler.guidance_scale, batch_size=sampler.batch_size, noise=noise,
        )
