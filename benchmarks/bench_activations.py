"""Benchmark activation quantization: forward overhead, range search, calibration time.

Runs on the digits-DiT *architecture* with random weights (no training needed) so it works on
a fresh checkout::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_activations.py [--threads 1] [--batch 64]

Prints a Markdown table; the numbers recorded in docs/activations.md come from this script.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch


def _timeit(fn: Callable[[], object], repeat: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _digits_dit() -> torch.nn.Module:
    import diffusers

    from qua2.models.digits import DIGITS_DIT

    torch.manual_seed(0)
    return getattr(diffusers, DIGITS_DIT.model_class)(**DIGITS_DIT.architecture).eval()


def bench_forward(batch: int) -> list[tuple[str, float]]:
    from qua2.activations import ActivationRanges, ActivationSetting, quantized_activations
    from qua2.activations.sites import plan_sites

    module = _digits_dit()
    x = torch.randn(batch, 1, 8, 8)
    t = torch.full((batch,), 500)
    labels = torch.arange(batch) % 10

    def run() -> None:
        with torch.no_grad():
            module(x, t, class_labels=labels, return_dict=False)

    rows = [("FP forward", _timeit(run))]
    for label, setting in [
        ("A8 dynamic (layer inputs)", ActivationSetting(bits=8)),
        ("A6 dynamic + QKV + softmax", ActivationSetting(bits=6, qkv_bits=6, softmax_bits=8)),
    ]:
        with quantized_activations(module, None, setting):
            rows.append((label, _timeit(run)))
    static = ActivationSetting(bits=8, mode="static", calibration="ndtc")
    ranges = ActivationRanges({s.name: torch.tensor([[-3.0, 3.0]])
                               for s in plan_sites(module, None, static)})
    with quantized_activations(module, None, static, ranges):
        rows.append(("A8 static (layer inputs)", _timeit(run)))
    return rows


def bench_search(n_values: int) -> list[tuple[str, float]]:
    from qua2.activations.range_search import OBJECTIVES, search_range

    values = torch.randn(n_values, generator=torch.Generator().manual_seed(0))
    return [(f"range search '{obj}' ({n_values} values, 80 candidates)",
             _timeit(lambda o=obj: search_range(values, 8, o), repeat=3)) for obj in OBJECTIVES]


def bench_calibration(size: int) -> list[tuple[str, float]]:
    from qua2.activations import ActivationSetting, build_calibration_set, calibrate_ranges
    from qua2.models.digits import DIGITS_DIT, DigitsAdapter

    adapter = DigitsAdapter(_digits_dit(), DIGITS_DIT, DIGITS_DIT.recipe)
    labels = list(range(10))
    rows = []
    for method in ("ndtc", "single_step"):
        start = time.perf_counter()
        calib = build_calibration_set(adapter, method, labels, size=size, steps=20)
        rows.append((f"calibration set '{method}' ({size} samples, 20 DDIM steps)",
                     time.perf_counter() - start))
    setting = ActivationSetting(bits=8, mode="static", calibration="single_step")
    start = time.perf_counter()
    calibrate_ranges(adapter, calib, setting)
    rows.append((f"calibrate_ranges A8 L_p (all layer inputs, {size} samples)",
                 time.perf_counter() - start))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--calib-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = bench_forward(args.batch) + bench_search(1 << 17) + bench_calibration(args.calib_size)
    print(f"| what (digits-DiT architecture, batch {args.batch}, {args.threads} thread(s)) "
          "| seconds |\n|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.4f} |")


if __name__ == "__main__":
    main()
