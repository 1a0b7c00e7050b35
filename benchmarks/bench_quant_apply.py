"""Option-cache build time, config apply cost and packed-export size on the digits models.

For each embedded digits model (real trained weights):

1. build the option cache for Qua²SeDiMo's space (uaq, kmeans_c, kmeans_a × {3, 4} bits);
2. time ``with quantized(model, config, cache)`` (enter + exit) over random Qua²SeDiMo-style
   configs (p ~ U(0, 1) share of 3-bit layers, method uniform) with the memo warm, against one
   config evaluation (generating ``--images`` images with 20 DDIM steps), and say whether the
   targets hold (< 50 ms per apply, < 1 % of an evaluation; once asserted in unit tests);
3. export one ~3.5-bit config as packed safetensors: reload into a fresh instance with other
   weights and compare its output with the fake-quantized model; and measure the file size of
   the fp16 deployment export against (average bits / 16) × FP16 size + 2 %.

    python benchmarks/bench_quant_apply.py [--images 256] [--configs 200]
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from qua2.models import load_model
from qua2.quant import (
    OptionCache,
    average_bits,
    bits_summary,
    export_packed,
    load_packed,
    quantized,
)
from qua2.specs import QuantConfig, QuantOption, SearchSpace

SPACE = SearchSpace.grid(["uaq", "kmeans_c", "kmeans_a"], [3, 4])
#: Applying a memoised config is a few dictionary look-ups per layer: well under this.
APPLY_TARGET_MS = 50.0
#: ... and a negligible share (percent) of one config evaluation.
APPLY_TARGET_SHARE = 1.0


def random_config(layers: list[str], rng: random.Random) -> QuantConfig:
    """Qua²SeDiMo's sampler: p ~ U(0, 1); each layer 3-bit with probability p, method uniform."""
    p = rng.random()
    return QuantConfig({layer: QuantOption(rng.choice(SPACE.methods),
                                           3 if rng.random() < p else 4) for layer in layers})


def _forward(module: torch.nn.Module, adapter) -> torch.Tensor:
    example = adapter.example_inputs(batch_size=4)
    with torch.no_grad():
        out = module(*example.args, **example.kwargs)
    return (out.sample if hasattr(out, "sample") else out[0]).float()


def bench_model(family: str, images: int, configs: int, workdir: Path) -> None:
    adapter = load_model(family)
    module = adapter.module
    layers = adapter.quantizable_layers()
    params = sum(p.numel() for p in module.parameters())
    print(f"\n== {family}: {params / 1e6:.2f} M parameters, {len(layers)} weight layers")

    start = time.perf_counter()
    cache = OptionCache.build(module, SPACE, workdir / family / "cache", layers=layers,
                              progress=False, log=lambda m: None)
    print(f"option cache build ({len(layers)} layers x {len(SPACE)} options): "
          f"{time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    cache.preload(device="cpu", dtype=next(module.parameters()).dtype)
    print(f"memo preload (dequantize all options once): {time.perf_counter() - start:.2f} s")

    rng = random.Random(0)
    samples = [random_config(layers, rng) for _ in range(configs)]
    costs = []
    for config in samples:
        start = time.perf_counter()
        with quantized(module, config, cache):
            pass
        costs.append(time.perf_counter() - start)
    apply_ms = statistics.median(costs) * 1e3
    print(f"apply + restore, median over {configs} random configs: {apply_ms:.2f} ms "
          f"(max {max(costs) * 1e3:.2f} ms)")

    seeds = list(range(images))
    conditions = [s % 10 for s in seeds]
    with quantized(module, samples[0], cache):
        start = time.perf_counter()
        adapter.generate(conditions, seeds, steps=20)
        evaluation = time.perf_counter() - start
    share = 100 * apply_ms / 1e3 / evaluation
    print(f"one config evaluation (generate {images} images, 20 steps): {evaluation:.2f} s "
          f"-> apply is {share:.3f} % of it")
    # Targets that used to be wall-time asserts in tests/quant (flaky on a loaded machine).
    met = apply_ms < APPLY_TARGET_MS and share < APPLY_TARGET_SHARE
    print(f"target: apply + restore < {APPLY_TARGET_MS:.0f} ms and < {APPLY_TARGET_SHARE:.0f} % "
          f"of an evaluation: {'met' if met else 'NOT MET'}")

    bench_export(adapter, cache, layers, workdir / family)


def bench_export(adapter, cache: OptionCache, layers: list[str], workdir: Path) -> None:
    module = adapter.module
    rng = random.Random(1)
    config = QuantConfig({la: QuantOption(rng.choice(SPACE.methods), rng.choice((3, 4)))
                          for la in layers})
    summary = bits_summary(config, cache)
    print(f"export config: {summary.layers_bits:.3f} bits over quantized layers, "
          f"{summary.model_bits:.3f} bits over the whole denoiser")
    with quantized(module, config, cache):
        fake = _forward(module, adapter)
    exact = export_packed(module, config, cache, workdir / "export-exact", model_id="digits")
    fresh = copy.deepcopy(module)
    with torch.no_grad():
        for p in fresh.parameters():
            p.normal_()
    load_packed(fresh, workdir / "export-exact")
    out = _forward(fresh, adapter)
    rel = float((out - fake).norm() / fake.norm())
    print(f"reload (model dtype kept): {exact.file_bytes / 1e6:.3f} MB, output vs fake-quant "
          f"relative difference {rel:.2e}")
    small = export_packed(module, config, cache, workdir / "export-fp16", model_id="digits",
                          unquantized_dtype=torch.float16)
    print(f"fp16 deployment export: file {small.file_bytes / 1e6:.3f} MB, FP16 checkpoint "
          f"{small.fp16_bytes / 1e6:.3f} MB, whole-model {small.model_bits:.3f} bits -> bound "
          f"{small.size_bound / 1e6:.3f} MB; file / bound = "
          f"{small.file_bytes / small.size_bound:.3f}; file / FP16 = "
          f"{small.file_bytes / small.fp16_bytes:.3f}")
    assert abs(average_bits(config, cache) - summary.layers_bits) < 1e-12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--configs", type=int, default=200)
    parser.add_argument("--models", nargs="+", default=["digits-dit", "digits-unet"])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.models:
            bench_model(family, args.images, args.configs, Path(tmp))


if __name__ == "__main__":
    main()
