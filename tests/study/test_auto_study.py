"""A whole ``qua2 run`` on diffusers families qua2 has no code for (``family: auto``).

Two tiny pipelines (real component classes, random weights, saved to disk): Sana (a DiT with a
Gemma2 text encoder and a deep-compression autoencoder) and a latent-consistency model (an SD1.5
UNet sampled by the LCM scheduler, which draws fresh noise between steps — from each image's
own generator). Slow: Wan, a text-to-video pipeline, its videos scored as strips of frames.
The study file names only ``model.path``; the family, the conditioning check and the primary
metric (PSNR against the FP images of the same seeds) follow from it.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap

import pytest
import yaml

from qua2.cli import main
from tests.fixtures.tiny_auto_pipelines import save_tiny_auto_pipeline

#: Budgets inside each tiny search space (tiny layers carry large per-channel overheads).
BUDGETS = {"sana": 5.0, "lcm": 4.5, "wan": 5.0}
#: Loader options: 64-px images; Wan (text-to-video) 5 frames of 32 px, scored as strips.
OPTIONS = {"sana": "{resolution: 64}", "lcm": "{resolution: 64}",
           "wan": "{resolution: 32, frames: 5}"}


@pytest.fixture(scope="module", params=["sana", "lcm",
                                        pytest.param("wan", marks=pytest.mark.slow)])
def finished(request, tmp_path_factory):
    family = request.param
    root = tmp_path_factory.mktemp(f"auto-{family}")
    directory = save_tiny_auto_pipeline(family, root / family)
    (root / "prompts.txt").write_text("a b c\nd e\nf g h\n")
    budget = BUDGETS[family]
    (root / "study.yaml").write_text(textwrap.dedent(f"""
        name: tiny-auto-{family}
        model: {{path: {directory}, options: {OPTIONS[family]}}}
        conditions: {{kind: text, prompts_file: {root / "prompts.txt"}}}
        sampler: {{steps: 2, batch_size: 16}}
        images_per_config: 6
        verification_images: 6
        selection_images: 6
        search_space: {{methods: [uaq], bits: [3, 4]}}
        config_sampler: {{num_configs: 12}}
        pipeline: {{sweep: false, surrogates: [ridge], budgets: [{budget}],
                    export_budget: {budget}}}
    """))
    out = root / "out"
    assert main(["run", str(root / "study.yaml"), "--out", str(out), "--threads", "1"]) == 0
    return out


def test_the_study_resolved_family_auto_and_a_fidelity_metric(finished):
    saved = yaml.safe_load((finished / "study.yaml").read_text())
    assert saved["model"]["family"] == "auto"
    assert saved["metrics"]["primary"] == "psnr" and saved["metrics"]["lower_is_better"] is False
    model = json.loads((finished / "model.json").read_text())
    assert model["family"] == "auto" and model["quantizable_layers"] > 0


def test_every_stage_left_its_result(finished):
    with sqlite3.connect(finished / "study.sqlite") as store:
        rows = store.execute("SELECT status, metrics FROM configs").fetchall()
    psnr = [json.loads(metrics)["psnr"] for status, metrics in rows if status == "done"]
    assert len(psnr) == len(rows) >= 12
    assert all(0 < value < 200 for value in psnr)  # finite: no quantized config equals FP
    assert (finished / "verification" / "table.md").is_file()
    assert list((finished / "export").iterdir())
    assert "psnr" in (finished / "report.md").read_text()
