"""The vocabulary of a study: quantization options, search spaces and per-layer configurations.

These are plain, frozen data with versioned ``to_dict``/``from_dict`` so that they can be stored
as JSON or YAML (never pickled) and compared by value. Validation raises :class:`Qua2Error` with
one sentence naming the offending value. Which method names exist is decided by the method
registry in :mod:`qua2.quant`; this module only checks the shape of the data.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from qua2.errors import Qua2Error

SPEC_FORMAT_VERSION = 1
MIN_BITS, MAX_BITS = 2, 8
#: Bits of a weight left in floating point (FP16), as average-bit budgets and features count it.
FP_BITS = 16
#: Methods that take a ``group_size`` (input channels per group, arXiv 2406.11100): an index
#: of the method registry (``qua2.quant.methods.register_method`` keeps it in step with each
#: ``MethodSpec.required``), seeded with the built-in one so the data layer works without torch.
GROUPED_METHODS: set[str] = {"group"}
#: GGUF block types and the integer bit-width each is filed under in a :class:`QuantOption`
#: (the real bits per weight, block scales included, come from the option cache: Q4_K = 4.5).
GGUF_TYPE_BITS: dict[str, int] = {
    "q8_0": 8, "q5_0": 5, "q5_1": 5, "q4_0": 4, "q4_1": 4, "iq4_nl": 4,
    "q2_k": 2, "q3_k": 3, "q4_k": 4, "q5_k": 5, "q6_k": 6,
}


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, order=True)
class QuantOption:
    """One way to quantize one weight layer: a method at a bit-width (and group size)."""

    method: str
    bits: int
    group_size: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not self.method:
            raise Qua2Error(f"quantization method must be a non-empty name, got {self.method!r}.")
        if not isinstance(self.bits, int) or not MIN_BITS <= self.bits <= MAX_BITS:
            raise Qua2Error(
                f"bits must be an integer from {MIN_BITS} to {MAX_BITS}, got {self.bits!r} "
                f"for method {self.method!r}."
            )
        grouped = self.method in GROUPED_METHODS
        if grouped and (not isinstance(self.group_size, int) or self.group_size < 1):
            raise Qua2Error(
                f"method {self.method!r} needs a positive integer group_size (e.g. 32, 64, 128), "
                f"got {self.group_size!r}."
            )
        if not grouped and self.group_size is not None:
            raise Qua2Error(
                f"method {self.method!r} takes no group_size; remove group_size={self.group_size}."
            )

    @property
    def key(self) -> str:
        """A short stable name, e.g. ``uaq-w4`` or ``group-w3-g64`` (see :meth:`parse`)."""
        suffix = f"-g{self.group_size}" if self.group_size is not None else ""
        return f"{self.method}-w{self.bits}{suffix}"

    @classmethod
    def parse(cls, key: str) -> QuantOption:
        """Inverse of :attr:`key`."""
        parts = str(key).split("-")
        try:
            method, bits_part, *rest = parts
            if not bits_part.startswith("w") or len(rest) > 1:
                raise ValueError
            bits = int(bits_part[1:])
            group = int(rest[0][1:]) if rest and rest[0].startswith("g") else None
            if rest and group is None:
                raise ValueError
        except ValueError:
            raise Qua2Error(
                f"cannot read quantization option {key!r}; write it as METHOD-wBITS[-gGROUP], "
                "e.g. 'uaq-w4' or 'group-w3-g64'."
            ) from None
        return cls(method, bits, group)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "bits": self.bits}
        if self.group_size is not None:
            out["group_size"] = self.group_size
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuantOption:
        unknown = set(data) - {"method", "bits", "group_size"}
        if unknown:
            raise Qua2Error(f"unknown key(s) {sorted(unknown)} in a quantization option {data!r}.")
        if "method" not in data or "bits" not in data:
            raise Qua2Error(f"a quantization option needs 'method' and 'bits', got {dict(data)!r}.")
        return cls(data["method"], data["bits"], data.get("group_size"))


@dataclass(frozen=True)
class SearchSpace:
    """The options every quantizable layer may take (Qua²SeDiMo: 3 methods × {3, 4} bits)."""

    options: tuple[QuantOption, ...]

    def __post_init__(self) -> None:
        if not self.options:
            raise Qua2Error("a search space needs at least one quantization option.")
        if len(set(self.options)) != len(self.options):
            raise Qua2Error("a search space lists the same quantization option twice.")

    @classmethod
    def grid(
        cls,
        methods: Iterable[str],
        bits: Iterable[int],
        group_sizes: Iterable[int] = (),
    ) -> SearchSpace:
        """Every method at every bit-width; grouped methods once per group size."""
        group_sizes = tuple(group_sizes)
        options = []
        for method, width in itertools.product(methods, bits):
            if method in GROUPED_METHODS:
                if not group_sizes:
                    raise Qua2Error(
                        f"method {method!r} needs group_sizes in the search space, e.g. [64]."
                    )
                options += [QuantOption(method, width, g) for g in group_sizes]
            else:
                options.append(QuantOption(method, width))
        return cls(tuple(options))

    @property
    def bits(self) -> tuple[int, ...]:
        return tuple(sorted({o.bits for o in self.options}))

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(o.method for o in self.options))

    def __iter__(self) -> Iterator[QuantOption]:
        return iter(self.options)

    def __len__(self) -> int:
        return len(self.options)

    def __contains__(self, option: object) -> bool:
        return option in self.options

    def index(self, option: QuantOption) -> int:
        return self.options.index(option)

    def to_dict(self) -> dict[str, Any]:
        return {"version": SPEC_FORMAT_VERSION, "options": [o.key for o in self.options]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        _check_version(data, "search space")
        return cls(tuple(QuantOption.parse(k) for k in data.get("options", [])))

    def digest(self) -> str:
        """Hash of the options, used to invalidate caches built for another space."""
        return _digest(self.to_dict())


@dataclass(frozen=True)
class QuantConfig:
    """A per-layer choice: qualified layer name → option; layers not named stay in FP."""

    choices: Mapping[str, QuantOption] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Freeze a sorted copy so equal configs compare, hash and serialise identically.
        object.__setattr__(self, "choices", dict(sorted(self.choices.items())))

    def __hash__(self) -> int:
        return hash(tuple(self.choices.items()))

    def __len__(self) -> int:
        return len(self.choices)

    def __getitem__(self, layer: str) -> QuantOption:
        return self.choices[layer]

    def items(self) -> Iterable[tuple[str, QuantOption]]:
        return self.choices.items()

    @classmethod
    def uniform(cls, layers: Iterable[str], option: QuantOption) -> QuantConfig:
        return cls({name: option for name in layers})

    def validate(self, layers: Iterable[str], space: SearchSpace | None = None) -> QuantConfig:
        """Check every named layer exists (and its option is in ``space``); return ``self``."""
        known = set(layers)
        for name, option in self.choices.items():
            if name not in known:
                close = sorted(k for k in known if k.split(".")[-1] == name.split(".")[-1])[:3]
                hint = f" (similar: {', '.join(close)})" if close else ""
                raise Qua2Error(
                    f"config names layer {name!r}, which the model does not have{hint}."
                )
            if space is not None and option not in space:
                raise Qua2Error(
                    f"layer {name!r} uses option {option.key!r}, which the search space does not "
                    f"cover (it has {', '.join(o.key for o in space)})."
                )
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SPEC_FORMAT_VERSION,
            "layers": {name: option.key for name, option in self.choices.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuantConfig:
        _check_version(data, "quantization config")
        layers = data.get("layers")
        if not isinstance(layers, Mapping):
            raise Qua2Error("a quantization config needs a 'layers' mapping of layer → option.")
        return cls({str(k): QuantOption.parse(v) for k, v in layers.items()})

    def digest(self) -> str:
        """A short content hash: equal configs have equal digests (used as a study's config id)."""
        return _digest(self.to_dict()["layers"])


def _check_version(data: Mapping[str, Any], what: str) -> None:
    version = data.get("version", SPEC_FORMAT_VERSION)
    if version != SPEC_FORMAT_VERSION:
        raise Qua2Error(
            f"this {what} has format version {version}, but this qua2 reads version "
            f"{SPEC_FORMAT_VERSION}; re-create it with this qua2 or use a matching release."
        )
