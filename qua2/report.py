"""``qua2 report``: one Markdown report of a study, readable top to bottom.

The report only *reads* the study directory — it never loads a model — and says plainly which
stages have not run yet. Figures are linked by relative path, so the report renders wherever
the study directory is copied.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from qua2.io import read_json, read_json_object, read_text
from qua2.log import say
from qua2.study.results import status_summary
from qua2.study.stages import RunOptions
from qua2.study.store import Store
from qua2.study.study import Study
from qua2.version import __version__

REPORT_FILE = "report.md"


def _read_json(path: Path) -> Any:
    if not path.exists():
        return None
    return read_json(path, "re-run the stage that wrote it (see `qua2 run --help`)")


def _figures(study: Study, folder: str) -> list[str]:
    directory = study.directory / folder
    if not directory.is_dir():
        return []
    return [f"![{p.stem}]({folder}/{p.name})" for p in sorted(directory.glob("*.png"))]


def _not_run(stage: str, command: str) -> list[str]:
    return [f"*Not run yet* — `{command}` produces this section ({stage})."]


def _model_section(study: Study) -> list[str]:
    info = _read_json(study.path("model.json")) or {}
    graph = _read_json(study.path("graph.json"))
    lines = ["## Model", ""]
    if info:
        lines.append(f"- {info.get('name')} ({info.get('family')}): "
                     f"{info.get('parameters', 0) / 1e6:.2f} M parameters, "
                     f"{info.get('quantizable_layers')} quantizable weight layers, "
                     f"device {info.get('device')}.")
    if graph:
        nodes = graph.get("nodes", {})
        count = len(nodes.get("name", nodes)) if isinstance(nodes, dict) else len(nodes)
        lines.append(f"- Operation graph: {count} nodes, {len(graph.get('edges', []))} edges "
                     "(`graph.json`; picture with `qua2 graph`).")
    fp = _read_json(study.path("reference", "fp_metrics.json"))
    if fp:
        lines += ["", "Full-precision reference on the sampling seeds: " +
                  ", ".join(f"{k} {v:.4g}" for k, v in fp.items()) + ".", "",
                  "![FP samples](reference/fp_samples.png)"]
    return lines


def _study_section(study: Study) -> list[str]:
    config = study.config
    space = config.search_space.build()
    lines = ["## Search space and sampling", "",
             f"- Options per layer: {', '.join(o.key for o in space)}.",
             f"- Sampler: {config.config_sampler.kind}, low-bit share p ~ "
             f"U{tuple(config.config_sampler.low_share)}, {config.config_sampler.num_configs} "
             f"random configs; {config.images_per_config} images per config, "
             f"{config.sampler.steps} sampler steps, seeds from {config.seeds.sampling}.",
             f"- Primary metric: {config.metrics.primary} "
             f"({'lower' if config.metrics.lower_is_better else 'higher'} is better); "
             f"objective = {'−' if config.metrics.lower_is_better else ''}{config.metrics.primary}"
             f" − {config.metrics.bits_penalty:g}·avg_bits."]
    if not study.path("study.sqlite").exists():
        return lines + [""] + _not_run("sampling", "qua2 run")
    summary = status_summary(study)
    lines += ["", "| kind | " + " | ".join(("done", "failed", "pending", "running")) + " |",
              "|---|---|---|---|---|"]
    for kind, counts in summary["by_kind"].items():
        lines.append(f"| {kind} | " + " | ".join(str(counts.get(s, 0)) for s in
                                                  ("done", "failed", "pending", "running")) + " |")
    if summary["seconds_per_config"]:
        lines.append(f"\nMedian time per configuration: {summary['seconds_per_config']:.2f} s.")
    with Store(study.path("study.sqlite")) as store:
        environment = store.meta("environment")
    if environment:
        lines.append("\nEnvironment: " + ", ".join(f"{k} {v}" for k, v in environment.items()
                                                   if k != "seeds") + ".")
    return lines


def _folder_section(study: Study, title: str, folder: str, command: str) -> list[str]:
    """The Markdown texts and figures of ``folder`` and of each of its sub-folders."""
    lines = [f"## {title}", ""]
    root = study.directory / folder
    parts = [root] + (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
    body: list[str] = []
    for part in parts:
        texts = sorted(part.glob("*.md"))
        figures = _figures(study, str(part.relative_to(study.directory)))
        if not texts and not figures:
            continue
        if part != root:
            body += [f"### {part.name}", ""]
        for text in texts:
            fix = "re-run the stage that wrote it (`qua2 explain DIR --force` for explain/)"
            body += [_demote(read_text(text, fix).strip(), top=3 if part == root else 4), ""]
        body += figures + [""]
    return lines + (body or _not_run(folder, command))


def _demote(markdown: str, top: int = 3) -> str:
    """An embedded file's headings shifted so its highest one is at level ``top``."""
    lines = markdown.splitlines()
    levels = [len(line) - len(line.lstrip("#")) for line in lines if line.startswith("#")]
    shift = top - min(levels) if levels else 0
    return "\n".join("#" * shift + line if line.startswith("#") and shift > 0 else line
                     for line in lines)


def _export_section(study: Study) -> list[str]:
    """Each exported configuration: its bits, its file size against FP16, how to load it."""
    lines = ["## Exported configurations", ""]
    exports = sorted((study.directory / "export").glob("*/qua2_quant.json"))
    if not exports:
        return lines + _not_run("export", "qua2 export")
    for meta_path in exports:
        meta = read_json_object(meta_path, "export that configuration again (`qua2 export`)")
        sizes, bits = meta["sizes"], meta["average_bits"]
        folder = meta_path.parent.relative_to(study.directory)
        lines += [f"- `{folder}`: {bits['quantized_layers']:.3f} average bits over the "
                  f"quantized layers ({bits['whole_model']:.3f} for the whole denoiser); "
                  f"{sizes['file_bytes'] / 1e6:.3f} MB on disk vs "
                  f"{sizes['fp16_bytes'] / 1e6:.3f} MB in FP16 "
                  f"({sizes['file_bytes'] / sizes['fp16_bytes']:.1%}); loading: "
                  f"`{folder}/LOAD.md`."]
    return lines


def build_report(study: Study) -> Path:
    """Write ``report.md`` in the study directory and return its path."""
    lines = [f"# qua2 study report: {study.config.name}", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by qua2 "
             f"{__version__} from `{study.directory}`.", ""]
    sections = [_model_section(study), _study_section(study)]
    sections += [_folder_section(study, title, folder, command) for title, folder, command in (
        ("Surrogate validation", "surrogates", "qua2 fit"),
        ("Explanation", "explain", "qua2 explain"),
        ("Search and verification", "verification", "qua2 search"),
    )]
    sections.append(_export_section(study))
    for section in sections:
        lines += section + [""]
    path = study.path(REPORT_FILE)
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def stage_report(study: Study, options: RunOptions) -> None:
    """Pipeline stage: the Markdown report of everything the study has so far."""
    say(f"report → {build_report(study)}")
