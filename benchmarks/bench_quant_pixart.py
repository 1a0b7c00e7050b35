"""Time quantizing every weight layer of a full-size PixArt-α-shaped denoiser, all options.

The architecture (28 blocks, width 1152, 611 M parameters, 287 Linear/Conv layers) is built on
the ``meta`` device, so no 2.4 GB model is materialised: each layer gets random N(0, 0.02²)
weights of its shape, is quantized with every option of Qua²SeDiMo's space (uaq, kmeans_c,
kmeans_a × {3, 4} bits) exactly as the option cache does (one batched call per group of layers
with equal row length), and is dropped. Memory stays at a few hundred MB. The packed size of
each option is summed too, i.e. what the cache's shards hold.

    python benchmarks/bench_quant_pixart.py                 # the whole model (minutes)
    python benchmarks/bench_quant_pixart.py --blocks 2      # a quick look
"""

from __future__ import annotations

import argparse
import resource
import time
from collections import defaultdict

import torch

from qua2.quant.batch import quantize_layers
from qua2.quant.layers import quantizable_layers
from qua2.specs import QuantOption, SearchSpace

SPACE = SearchSpace.grid(["uaq", "kmeans_c", "kmeans_a"], [3, 4])
BATCH_WEIGHTS = 1 << 22  # the option cache's batch size


def pixart_alpha(num_layers: int = 28) -> torch.nn.Module:
    from diffusers import PixArtTransformer2DModel

    with torch.device("meta"):
        return PixArtTransformer2DModel(
            sample_size=128, num_layers=num_layers, attention_head_dim=72,
            num_attention_heads=16, in_channels=4, out_channels=8, caption_channels=4096,
            cross_attention_dim=1152, norm_type="ada_norm_single", num_embeds_ada_norm=1000,
            use_additional_conditions=False, attention_bias=True, patch_size=2,
            activation_fn="gelu-approximate", norm_elementwise_affine=False, norm_eps=1e-6)


def batches(shapes: dict[str, tuple[int, ...]]) -> list[list[str]]:
    out: list[list[str]] = []
    size = 0
    for name, shape in shapes.items():
        numel = torch.Size(shape).numel()
        if out and size + numel <= BATCH_WEIGHTS:
            out[-1].append(name)
            size += numel
        else:
            out.append([name])
            size = numel
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=28, help="transformer blocks (28 = full)")
    args = parser.parse_args()
    model = pixart_alpha(args.blocks)
    params = sum(p.numel() for p in model.parameters())
    shapes = {n: tuple(model.get_submodule(n).weight.shape) for n in quantizable_layers(model)}
    weights_total = sum(torch.Size(s).numel() for s in shapes.values())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; PixArt-α shape with "
          f"{args.blocks} blocks: {params / 1e6:.1f} M parameters, {len(shapes)} weight layers "
          f"({weights_total / 1e6:.1f} M weights)")
    g = torch.Generator().manual_seed(0)
    seconds: dict[str, float] = defaultdict(float)
    nbytes: dict[QuantOption, int] = defaultdict(int)
    start = time.perf_counter()
    done = 0
    for names in batches(shapes):
        weights = {n: torch.randn(shapes[n], generator=g) * 0.02 for n in names}
        for method in SPACE.methods:
            options = [o for o in SPACE if o.method == method]
            t0 = time.perf_counter()
            results = quantize_layers(weights, options)
            seconds[method] += time.perf_counter() - t0
            for per_layer in results.values():
                for option, qweight in per_layer.items():
                    nbytes[option] += qweight.nbytes
        done += sum(w.numel() for w in weights.values())
        elapsed = time.perf_counter() - start
        print(f"  {done / 1e6:7.1f} M / {weights_total / 1e6:.1f} M weights, {elapsed:7.1f} s",
              flush=True)
    total = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nall {len(SPACE)} options of all {len(shapes)} layers: {total:.1f} s "
          f"({total / 60:.1f} min), peak RSS {peak:.0f} MB")
    for method, secs in seconds.items():
        print(f"  {method:9s} (both bit-widths): {secs:7.1f} s")
    fp16 = 2 * weights_total
    for option in SPACE:
        print(f"  {option.key:12s} packed {nbytes[option] / 1e6:8.1f} MB = "
              f"{16 * nbytes[option] / fp16:.3f} bits/weight (FP16 {fp16 / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
