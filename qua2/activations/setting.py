"""What activation quantization to apply: one frozen, serialisable :class:`ActivationSetting`.

A setting is data (JSON/YAML via :meth:`ActivationSetting.to_dict` / ``from_dict``, never
pickled), validated on construction with one-sentence :class:`~qua2.errors.Qua2Error`s. It is
applied on top of any weight configuration, so a study reports ``W{w}A{a}`` results.

* ``mode="dynamic"`` — Qua²SeDiMo's online per-token min-max quantizer (no calibration).
* ``mode="static"`` — per-tensor ranges calibrated on samples from the FP model
  (``calibration``: PTQ4DM's ``"ndtc"``, 2406.11100's ``"single_step"``, ``"uniform"`` or
  ``"real"``), chosen by minimising ``objective`` (PTQ4DM's L_p with p = 2.4 by default),
  optionally one range per timestep group.
* ``qkv_bits`` / ``softmax_bits`` additionally quantize Q, K, V and the attention probabilities
  (the softmax output gets its own bit-width); ``None`` keeps them in FP.
* ``keep_fp`` names layers (exact names or ``fnmatch`` patterns) whose inputs stay in FP,
  e.g. the first and last layer as PTQ4DM does.
* ``bos_fp`` is MixDQ's (Zhao et al., ECCV 2024) BOS-aware text-embedding quantization: the
  cross-attention K/V of the first text token stay FP, the other tokens are quantized.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from qua2.activations.quantizers import MAX_ACT_BITS, MIN_ACT_BITS
from qua2.activations.range_search import DEFAULT_P, check_objective
from qua2.errors import Qua2Error

SETTING_FORMAT_VERSION = 1
MODES: tuple[str, ...] = ("dynamic", "static")
#: Where calibration samples come from (see :mod:`qua2.activations.calibration_sets`).
CALIBRATION_METHODS: tuple[str, ...] = ("ndtc", "single_step", "uniform", "real")


def _check_bits(name: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not (
            MIN_ACT_BITS <= value <= MAX_ACT_BITS):
        raise Qua2Error(
            f"activation {name} must be an integer from {MIN_ACT_BITS} to {MAX_ACT_BITS}"
            f"{' or null' if optional else ''}, got {value!r}."
        )


@dataclass(frozen=True)
class ActivationSetting:
    """One activation-quantization setting (see the module docstring for every field)."""

    bits: int = 8
    mode: str = "dynamic"
    calibration: str | None = None
    objective: str = "lp"
    p: float = DEFAULT_P
    keep_fp: tuple[str, ...] = ()
    qkv_bits: int | None = None
    softmax_bits: int | None = None
    timestep_groups: int = 1
    bos_fp: bool = False
    calibration_size: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep_fp", _as_names(self.keep_fp))
        _check_bits("bits", self.bits)
        _check_bits("qkv_bits", self.qkv_bits, optional=True)
        _check_bits("softmax_bits", self.softmax_bits, optional=True)
        self._check_mode()
        check_objective(self.objective)
        if not isinstance(self.p, (int, float)) or isinstance(self.p, bool) or self.p <= 0:
            raise Qua2Error(f"the L_p exponent p must be a positive number, got {self.p!r}.")
        if isinstance(self.calibration_size, bool) or not isinstance(
                self.calibration_size, int) or self.calibration_size < 1:
            raise Qua2Error(
                "the calibration set cannot be empty: calibration_size must be a positive "
                f"integer (default 256), got {self.calibration_size!r}."
            )
        if not isinstance(self.bos_fp, bool):
            raise Qua2Error(f"bos_fp must be true or false, got {self.bos_fp!r}.")

    def _check_mode(self) -> None:
        if self.mode not in MODES:
            raise Qua2Error(f"unknown activation mode {self.mode!r}; choose one of "
                            f"{', '.join(MODES)}.")
        if self.mode == "static" and self.calibration not in CALIBRATION_METHODS:
            raise Qua2Error(
                f"unknown calibration method {self.calibration!r} for static activation "
                f"quantization; choose one of {', '.join(CALIBRATION_METHODS)}."
            )
        if self.mode == "dynamic" and self.calibration is not None:
            raise Qua2Error(
                f"dynamic activation quantization needs no calibration; remove "
                f"calibration={self.calibration!r} or set mode='static'."
            )
        groups = self.timestep_groups
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise Qua2Error(f"timestep_groups must be a positive integer, got {groups!r}.")
        if self.mode == "dynamic" and groups != 1:
            raise Qua2Error("timestep_groups applies to static ranges only; set mode='static' "
                            "or timestep_groups=1.")

    # ------------------------------------------------------------------ naming
    @property
    def label(self) -> str:
        """Short name for tables, e.g. ``A6`` (dynamic) or ``A8-ndtc`` (static)."""
        name = f"A{self.bits}"
        if self.mode == "static":
            name += f"-{self.calibration}"
            if self.timestep_groups > 1:
                name += f"-g{self.timestep_groups}"
        if self.qkv_bits is not None or self.softmax_bits is not None:
            name += f"-qkv{self.qkv_bits or 'fp'}-sm{self.softmax_bits or 'fp'}"
        return name + ("-bos" if self.bos_fp else "")

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        out = {"version": SETTING_FORMAT_VERSION, **asdict(self)}
        out["keep_fp"] = list(self.keep_fp)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActivationSetting:
        if not isinstance(data, Mapping):
            raise Qua2Error(f"an activation setting must be a mapping, got {data!r}.")
        version = data.get("version", SETTING_FORMAT_VERSION)
        if version != SETTING_FORMAT_VERSION:
            raise Qua2Error(
                f"this activation setting has format version {version}, but this qua2 reads "
                f"version {SETTING_FORMAT_VERSION}; re-create it with this qua2."
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"version"})
        if unknown:
            raise Qua2Error(f"unknown key(s) {unknown} in an activation setting; the keys are "
                            f"{', '.join(sorted(known))}.")
        return cls(**{k: v for k, v in data.items() if k in known})


def _as_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    try:
        names = tuple(value)
    except TypeError:
        names = None
    if names is None or not all(isinstance(n, str) and n for n in names):
        raise Qua2Error(f"keep_fp must be a list of layer names or patterns, got {value!r}.")
    return names
