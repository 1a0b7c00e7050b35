"""Export a study's configuration as packed low-bit safetensors + versioned JSON.

The packing itself lives in :mod:`qua2.quant.export`; this module resolves *which*
configuration (a stored id, a search candidate, or the best verified pick at a budget), writes
the files with the study's model id, and adds ``LOAD.md`` with a snippet that reloads the
export into a fresh diffusers denoiser.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from qua2.errors import Qua2Error
from qua2.log import say
from qua2.specs import GGUF_TYPE_BITS, QuantConfig
from qua2.study.stages import RunOptions
from qua2.study.study import Study

if TYPE_CHECKING:
    from qua2.quant.export import ExportSummary
    from qua2.quant.gguf_file import GGUFSummary

LOAD_SNIPPET = """# Loading this export

```python
import diffusers
from qua2 import load_packed

# A fresh denoiser of the same architecture (weights are replaced by the export).
{build}
manifest = load_packed(denoiser, "{directory}")   # layer by layer, checks the file hash
print(manifest["avg_bits"] if "avg_bits" in manifest else manifest.keys())
```

`load_packed` unpacks the {bits:.2f}-bit codes into ordinary float weights, so the denoiser
then runs in any diffusers pipeline (e.g. `pipe.transformer = denoiser`). The file on disk
holds the packed codes: {file_mb:.3f} MB against {fp16_mb:.3f} MB for FP16.
"""


def resolve_config(study: Study, reference: str) -> tuple[str, QuantConfig]:
    """``(id, config)`` for a stored id, a candidate id, or ``best:BUDGET``."""
    if reference.startswith("best:"):
        return _best_verified(study, reference)
    from qua2.search.stage import load_candidates
    from qua2.study.store import Store

    for candidate in load_candidates(study):
        if candidate.config.digest() == reference:
            return reference, candidate.config
    if study.path("study.sqlite").exists():
        with Store(study.path("study.sqlite")) as store:
            if store.has(reference):
                return reference, QuantConfig.from_dict(store.get(reference).config)
    raise Qua2Error(
        f"no configuration {reference!r} in {study.directory}; use an id from `qua2 results` "
        "or search/candidates.json, or best:BUDGET."
    )


def _best_verified(study: Study, reference: str) -> tuple[str, QuantConfig]:
    from qua2.search.stage import load_candidates
    from qua2.search.verification import load_verification

    try:
        budget = float(reference.split(":", 1)[1])
    except ValueError:
        raise Qua2Error(f"cannot read the budget in {reference!r}; write e.g. best:3.5.") from None
    verified = {v["name"]: v for v in load_verification(study)}
    primary = study.config.metrics.primary
    sign = 1 if study.config.metrics.lower_is_better else -1
    picks = [c for c in load_candidates(study)
             if c.kind == "qua2" and c.budget is not None and abs(c.budget - budget) < 1e-9
             and c.config.digest() in verified]
    if not picks:
        raise Qua2Error(f"no verified qua2 pick at budget {budget:g}; run `qua2 search "
                        f"{study.directory} --bits {budget:g}` first.")
    selected = _selected_id(study, budget)
    chosen = [c for c in picks if c.config.digest() == selected]
    # Studies verified before selection existed have two verified picks and no selection file.
    best = chosen[0] if chosen else \
        min(picks, key=lambda c: sign * verified[c.config.digest()]["metrics"][primary])
    return best.config.digest(), best.config


def _selected_id(study: Study, budget: float) -> str | None:
    """The id :mod:`qua2.search.selection` chose at ``budget`` (None: no selection file)."""
    from qua2.io import read_json
    from qua2.search.selection import SELECTION_FILE

    path = study.path(*SELECTION_FILE)
    if not path.exists():
        return None
    entries = read_json(path, "re-run `qua2 run … --stages verify` to choose again")
    return next((e.get("id") for e in entries if isinstance(e, dict) and
                 isinstance(e.get("budget"), float | int) and abs(e["budget"] - budget) < 1e-9),
                None)


def export_study_config(study: Study, reference: str, out: str | Path) -> ExportSummary:
    """Export the referenced config of ``study`` into ``out``; returns the export summary."""
    from qua2.models.base import config_of
    from qua2.quant.export import export_packed
    from qua2.study.option_cache import open_option_cache

    config_id, config = resolve_config(study, reference)
    out = Path(out)
    model = study.config.model
    model_id = f"{model.family}:{model.path or 'embedded'}"
    summary = export_packed(study.adapter.module, config, open_option_cache(study), out,
                            model_id=model_id)
    module = study.adapter.module
    build = (f"denoiser = diffusers.{type(module).__name__}.from_config("
             f"{json.dumps(dict(config_of(module)), default=str)})")
    (out / "LOAD.md").write_text(LOAD_SNIPPET.format(
        build=build, directory=out, bits=summary.layers_bits,
        file_mb=summary.file_bytes / 1e6, fp16_mb=summary.fp16_bytes / 1e6))
    (out / "source.json").write_text(json.dumps(
        {"study": str(study.directory), "config_id": config_id, "reference": reference},
        indent=2))
    return summary


def export_study_gguf(study: Study, reference: str, out: str | Path) -> GGUFSummary:
    """Write the referenced config of ``study`` as one GGUF file (GGUF options only).

    diffusers loads it with ``<DenoiserClass>.from_single_file(out, quantization_config=
    GGUFQuantizationConfig(compute_dtype=…), config=<the model's directory>)`` and keeps the
    quantized tensors quantized in memory; :func:`qua2.quant.gguf_file.load_gguf` loads it
    into any model.
    """
    from qua2.quant.gguf_file import write_gguf
    from qua2.study.option_cache import open_option_cache

    config_id, config = resolve_config(study, reference)
    out = Path(out)
    if out.is_dir():
        raise Qua2Error(f"--out {out} is a directory; give the .gguf file to write.")
    model = study.config.model
    metadata = {"study": study.config.name, "study_dir": str(study.directory),
                "config_id": config_id, "reference": reference, "family": model.family,
                "config": json.dumps(config.to_dict(), sort_keys=True)}
    return write_gguf(study.adapter.module, config, open_option_cache(study), out, metadata,
                      arch=model.family)


def stage_export(study: Study, options: RunOptions) -> None:
    """Pipeline stage: the best verified qua2 pick at the export budget, packed — and, for a
    study of GGUF types, also as one ``.gguf`` file that diffusers loads."""
    budget = options.export_budget or study.config.pipeline.export_budget or 3.5
    out = study.directory / "export" / f"qua2-{budget:g}bits"
    summary = export_study_config(study, f"best:{budget:g}", out)
    say(f"export: {summary.layers_bits:.3f} bits per quantized weight, "
        f"{summary.file_bytes / 1e6:.3f} MB vs {summary.fp16_bytes / 1e6:.3f} MB FP16 → {out}")
    if all(option.method in GGUF_TYPE_BITS for option in study.config.search_space.build()):
        gguf_summary = export_study_gguf(study, f"best:{budget:g}", out / "model.gguf")
        say(f"export: {gguf_summary.file_bytes / 1e6:.3f} MB GGUF → {gguf_summary.path}")
