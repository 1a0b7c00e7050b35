"""Study configuration: one YAML file per study, parsed into typed, validated dataclasses.

Every section is a frozen dataclass with defaults; unknown keys and wrong types are rejected
with one sentence naming the YAML key and what is allowed. The fully resolved configuration
(defaults filled in) is saved in the study directory as ``study.yaml`` so that a study can be
re-run and compared later. See ``docs/study-yaml.md`` for every key.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from qua2.errors import Qua2Error
from qua2.specs import SearchSpace

if TYPE_CHECKING:
    from qua2.activations.setting import ActivationSetting

STUDY_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelSection:
    """Which denoiser: a registry family and, for real models, a local diffusers directory.

    An empty (or absent) family means ``auto`` (any diffusers pipeline) when a ``path`` is
    given, else the embedded ``digits-dit``.
    """

    family: str = ""
    path: str | None = None
    device: str = "auto"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    options: dict[str, Any] = field(default_factory=dict)  # extra loader options

    def __post_init__(self) -> None:
        if not self.family:
            object.__setattr__(self, "family", "auto" if self.path else "digits-dit")


@dataclass(frozen=True)
class ConditionsSection:
    """What each image is conditioned on: class labels (cycled) or prompts from a file."""

    kind: Literal["class", "text"] = "class"
    labels: list[int] | None = None  # None: 0 … num_classes-1, cycled
    num_classes: int = 10
    prompts_file: str | None = None  # one prompt per line (text families)


@dataclass(frozen=True)
class SamplerSection:
    """The deterministic sampler used for every image of the study."""

    steps: int = 20
    guidance_scale: float | None = None  # None: the family's default
    batch_size: int = 256


@dataclass(frozen=True)
class SeedsSection:
    """Seeds: image i of a config uses ``sampling + i``; selection and verification their own."""

    sampling: int = 0
    verification: int = 1_000_000
    selection: int = 2_000_000  # choosing among qua2's picks, apart from verifying the choice
    surrogates: int = 0  # cross-validation folds and the surrogates' own randomness


@dataclass(frozen=True)
class SearchSpaceSection:
    """Per-layer options: every method at every bit-width (grouped methods per group size),
    plus GGUF block types (``types: [q3_k, q4_k, …]``, each at its own bit-width).

    ``methods`` defaults to Qua²SeDiMo's three (uaq, kmeans_c, kmeans_a), or to none when
    ``types`` is given.
    """

    methods: list[str] | None = None
    bits: list[int] = field(default_factory=lambda: [3, 4])
    group_sizes: list[int] = field(default_factory=list)
    types: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.methods is None:
            default = [] if self.types else ["uaq", "kmeans_c", "kmeans_a"]
            object.__setattr__(self, "methods", default)

    def build(self) -> SearchSpace:
        from qua2.specs import QuantOption

        options: list[QuantOption] = []
        if self.methods:
            options += SearchSpace.grid(self.methods, self.bits, self.group_sizes).options
        options += [QuantOption(name, _gguf_bits(name)) for name in self.types]
        return SearchSpace(tuple(options))


def _gguf_bits(type_name: str) -> int:
    """The bit-width a GGUF type is filed under (``specs.GGUF_TYPE_BITS``)."""
    from qua2.specs import GGUF_TYPE_BITS

    if type_name not in GGUF_TYPE_BITS:
        raise Qua2Error(f"unknown GGUF type {type_name!r} in search_space.types; choose from "
                        f"{', '.join(GGUF_TYPE_BITS)}.")
    return GGUF_TYPE_BITS[type_name]


@dataclass(frozen=True)
class ConfigSamplerSection:
    """How random configurations are drawn (Qua²SeDiMo: low-bit share p ~ U(a, b))."""

    kind: Literal["qua2sedimo", "stratified"] = "qua2sedimo"
    low_share: tuple[float, float] = (0.0, 1.0)
    num_configs: int = 300
    seed: int = 0


@dataclass(frozen=True)
class ImagesSection:
    """How many of the ``images_per_config`` images each configuration gets.

    ``racing: false`` (the default): all of them. ``racing: true`` (:mod:`qua2.study.racing`):
    random, sequential and sweep configurations start on the first ``min`` images and double
    up to ``images_per_config`` only while no configuration with at most their average bits
    beats them with confidence 1 − ``error_rate`` (paired, on the same images).
    """

    racing: bool = False
    min: int = 64
    error_rate: float = 0.05


@dataclass(frozen=True)
class DesignSection:
    """Which configurations the sample stage evaluates (:mod:`qua2.search.design`).

    ``random``: ``config_sampler.num_configs`` random draws. ``sequential``: ``initial`` random
    draws (null: a third of ``num_configs``), then rounds of ``batch`` until ``num_configs``: a
    ``random_share`` of each round are random draws, the rest proposed by the search under an
    optimistic bootstrap ensemble of the tree surrogate (mean + ``optimism`` × spread) at every
    search budget.
    """

    kind: Literal["random", "sequential"] = "random"
    initial: int | None = None
    batch: int = 25
    random_share: float = 0.25
    optimism: float = 1.0


@dataclass(frozen=True)
class MetricsSection:
    """Which metrics to compute and which one is the primary objective."""

    primary: str | None = None  # None: the family's default (models registry)
    lower_is_better: bool | None = None  # None: the metric's own direction (metric registry)
    bits_penalty: float = 0.0  # Qua²SeDiMo's λ: objective = primary ± λ·avg_bits
    clip_model: str | None = None  # local CLIP directory (text families)
    inception_weights: str | None = None  # local Inception weights (real models)
    reference_images: str | None = None  # folder of real images (real models)
    # How FID resizes images to 299 px: pytorch-fid (bilinear) or clean-fid (antialiased bicubic).
    fid_resize: Literal["pytorch-fid", "clean-fid"] = "pytorch-fid"

    # StudyConfig validation fills in both defaults, so a StudyConfig's section has them.
    @property
    def primary_metric(self) -> str:
        """``primary``, filled in by validation (the family's default) when not given."""
        return self._filled("primary", "family's default")

    @property
    def primary_lower_is_better(self) -> bool:
        """``lower_is_better``, filled in by validation (the metric's direction) when not given."""
        return self._filled("lower_is_better", "metric's direction")

    def _filled(self, key: str, default: str) -> Any:
        if getattr(self, key) is None:
            raise Qua2Error(f"metrics.{key} is not set; validate the section as part of a "
                            f"StudyConfig, which fills in the {default}.")
        return getattr(self, key)


@dataclass(frozen=True)
class PipelineSection:
    """Optional stages of ``qua2 run`` (they change what is run, never a stored result)."""

    sweep: bool = True  # MixDQ's one-layer-at-a-time sweep: layers × options configs
    surrogates: list[str] = field(default_factory=lambda: ["ridge", "xgb", "gnn"])
    # Average-bit budgets of the search stage (null: 3.25, 3.5, 3.75, 4.0, those outside the
    # search space skipped) and the budget whose verified pick the export stage writes.
    budgets: list[float] | None = None
    export_budget: float | None = None
    # The search maximises a bootstrap ensemble's mean − pessimism × spread of the chosen
    # surrogate (qua2.search.objective: keeps picks where the data support the prediction);
    # search_ensemble 0: the fitted surrogate alone, as before.
    search_ensemble: int = 8
    search_pessimism: float = 1.0


@dataclass(frozen=True)
class ExecutorSection:
    """Where configurations are evaluated (it changes how fast, never a stored result).

    ``local``: ``workers`` processes on this machine coordinating through the study's SQLite
    store. ``ray``: ``workers`` Ray actors, each holding the model and option cache, fed by
    this process, which alone writes the store (:mod:`qua2.study.ray_executor`).
    """

    kind: Literal["local", "ray"] = "local"
    workers: int = 1
    cpus_per_worker: int | None = None  # torch threads per worker; null: cores / workers
    # Ray only. address: null starts a Ray instance on this machine; "auto" joins the one
    # `ray start` runs here; "HOST:PORT" or "ray://HOST:PORT" a remote cluster.
    address: str | None = None
    gpus_per_worker: float | None = None  # null: 1 when the model runs on CUDA, else 0

    @property
    def threads(self) -> int:
        """Torch threads (and Ray CPUs) per worker: ``cpus_per_worker``, else this machine's
        cores shared out between the workers (:mod:`qua2.study.workers` says why)."""
        return self.cpus_per_worker or max(1, (os.cpu_count() or 1) // self.workers)


#: Top-level keys of older study files, now in ``executor`` (read, never written).
_LEGACY_EXECUTOR_KEYS = {"workers": "workers", "threads_per_worker": "cpus_per_worker"}


@dataclass(frozen=True)
class StudyConfig:
    """A whole study: model, conditions, sampler, seeds, search space, sampling, metrics."""

    name: str = "study"
    model: ModelSection = field(default_factory=ModelSection)
    conditions: ConditionsSection = field(default_factory=ConditionsSection)
    sampler: SamplerSection = field(default_factory=SamplerSection)
    images_per_config: int = 256
    verification_images: int = 1000
    # Images on which the best of qua2's picks per budget is chosen (0: the surrogate chooses).
    selection_images: int = 256
    seeds: SeedsSection = field(default_factory=SeedsSection)
    search_space: SearchSpaceSection = field(default_factory=SearchSpaceSection)
    config_sampler: ConfigSamplerSection = field(default_factory=ConfigSamplerSection)
    design: DesignSection = field(default_factory=DesignSection)
    images: ImagesSection = field(default_factory=ImagesSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    pipeline: PipelineSection = field(default_factory=PipelineSection)
    # Activation quantization on top of every weight config (qua2.activations.ActivationSetting
    # keys, e.g. {bits: 8, mode: static, calibration: ndtc}); null: activations stay FP.
    activations: dict[str, Any] | None = None
    executor: ExecutorSection = field(default_factory=ExecutorSection)
    version: int = STUDY_FORMAT_VERSION

    def __post_init__(self) -> None:
        _check_positive(self, ("images_per_config", "verification_images"))
        _check_positive(self.executor, ("workers",), prefix="executor.")
        _check_positive(self.sampler, ("steps", "batch_size"), prefix="sampler.")
        _check_positive(self.config_sampler, ("num_configs",), prefix="config_sampler.")
        low, high = self.config_sampler.low_share
        if not 0.0 <= low <= high <= 1.0:
            raise Qua2Error(
                "config_sampler.low_share must be [a, b] with 0 ≤ a ≤ b ≤ 1, "
                f"got {list(self.config_sampler.low_share)}."
            )
        if self.version != STUDY_FORMAT_VERSION:
            raise Qua2Error(
                f"study format version {self.version} is not supported; this qua2 reads "
                f"version {STUDY_FORMAT_VERSION}."
            )
        self.search_space.build()  # validates methods × bits × group sizes
        self.activation_setting()  # validates the activation keys
        from qua2.study.validate import validate_study_config

        validate_study_config(self)

    def activation_setting(self) -> ActivationSetting | None:
        """The :class:`~qua2.activations.ActivationSetting` of the study, or None."""
        if self.activations is None:
            return None
        from qua2.activations.setting import ActivationSetting

        return ActivationSetting.from_dict(self.activations)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))

    def results_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the keys that cannot change a stored result."""
        return {k: v for k, v in self.to_dict().items() if k not in ("pipeline", "executor")}

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def load_study_config(path: str | Path) -> StudyConfig:
    """Read and validate a study YAML file (every key, cross-key rule and registry name)."""
    from qua2.io import read_text

    path = Path(path)
    if not path.is_file():
        raise Qua2Error(f"study file {path} does not exist; pass a YAML file from experiments/.")
    text = read_text(path, "a study file is UTF-8 YAML text: pass one from experiments/.")
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise Qua2Error(f"study file {path} is not valid YAML{where}; fix its syntax.") from None
    return study_config_from_dict({} if data is None else data, source=str(path))


def study_config_from_dict(data: Any, source: str = "study") -> StudyConfig:
    """Build a :class:`StudyConfig` from plain data, naming the offending key on error."""
    return _build(StudyConfig, _moved_executor_keys(data, source), prefix="", source=source)


def _moved_executor_keys(data: Any, source: str) -> Any:
    """Older files' top-level ``workers``/``threads_per_worker``, moved into ``executor``."""
    if not isinstance(data, dict) or not set(data) & set(_LEGACY_EXECUTOR_KEYS):
        return data
    data = dict(data)
    executor = data.get("executor") or {}
    if not isinstance(executor, dict):
        return data  # _build names the wrong type
    executor = dict(executor)
    for old, new in _LEGACY_EXECUTOR_KEYS.items():
        if old in data:
            if new in executor:
                raise Qua2Error(f"{source}: '{old}' and 'executor.{new}' both given; keep "
                                f"'executor.{new}' only.")
            executor[new] = data.pop(old)
    data["executor"] = executor
    return data


# --------------------------------------------------------------------------- parsing
def _build(cls: type, data: Any, prefix: str, source: str) -> Any:
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "the top level"
        raise Qua2Error(f"{source}: {where} must be a mapping of keys, got {short_repr(data)}.")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(data) - names))
    if unknown:
        raise Qua2Error(
            f"{source}: unknown key '{prefix}{unknown[0]}'; "
            f"allowed here: {', '.join(sorted(names))}."
        )
    values = {k: _coerce(hints[k], v, f"{prefix}{k}", source) for k, v in data.items()}
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str, source: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.", source)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _coerce(next(a for a in args if a is not type(None)), value, key, source)
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise Qua2Error(f"{source}: '{key}' must be one of {allowed}, "
                            f"got {short_repr(value)}.")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise Qua2Error(f"{source}: '{key}' must be a mapping, got {short_repr(value)}.")
        return dict(value)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise Qua2Error(f"{source}: '{key}' must be a list, got {short_repr(value)}.")
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
        fixed_length = origin is tuple and len(args) > 1 and args[1] is not Ellipsis
        if fixed_length and len(items) != len(args):
            raise Qua2Error(f"{source}: '{key}' must have {len(args)} items, "
                            f"got {short_repr(value)}.")
        return tuple(items) if origin is tuple else items
    return _coerce_scalar(hint, value, key, source)


def _coerce_scalar(hint: Any, value: Any, key: str, source: str) -> Any:
    if hint is Any:
        return value
    # bool is a subclass of int, but YAML's true/false is no number and 1 is no bool.
    if isinstance(value, bool) == (hint is bool):
        if hint is float and isinstance(value, int | float):
            return float(value)
        if isinstance(value, hint):
            return value
    raise Qua2Error(f"{source}: '{key}' must be {hint.__name__}, got {short_repr(value)}.")


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, so an error message stays one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_positive(obj: Any, names: tuple[str, ...], prefix: str = "") -> None:
    for name in names:
        if getattr(obj, name) < 1:
            raise Qua2Error(f"'{prefix}{name}' must be at least 1, got {getattr(obj, name)}.")


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_plain(v) for v in value]
    return value
