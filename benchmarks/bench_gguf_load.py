"""Benchmark: a GGUF export loaded by diffusers stays quantized — parameter bytes and peak RSS.

Builds a Flux-shaped transformer with random weights (``--width`` = heads × 128, a few double
and single blocks), quantizes every Linear to ``--type`` with qua2's option cache, writes the
GGUF file with ``qua2.quant.gguf_file.write_gguf``, then in fresh processes loads

* ``fp16``: the same architecture from a safetensors file in float16 (the reference), and
* ``gguf``: ``FluxTransformer2DModel.from_single_file(..., GGUFQuantizationConfig(...))``,

and prints each one's parameter bytes, peak resident memory and one forward's output
difference against qua2's fake-quantized model (CPU; ``--device cuda`` on a GPU machine).

    python benchmarks/bench_gguf_load.py --width 1536 --double 2 --single 2 --type q4_k
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def build(width: int, double: int, single: int):
    import torch
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    heads = width // 128
    return FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=double, num_single_layers=single,
        attention_head_dim=128, num_attention_heads=heads, joint_attention_dim=width,
        pooled_projection_dim=768, guidance_embeds=False, axes_dims_rope=(16, 56, 56)).eval()


def inputs(width: int):
    import torch

    g = torch.Generator().manual_seed(1)
    return dict(hidden_states=torch.randn(1, 64, 64, generator=g),
                encoder_hidden_states=torch.randn(1, 16, width, generator=g),
                pooled_projections=torch.randn(1, 768, generator=g),
                timestep=torch.tensor([0.5]), img_ids=torch.zeros(64, 3),
                txt_ids=torch.zeros(16, 3), return_dict=False)


def prepare(args: argparse.Namespace, work: Path) -> dict:
    import torch
    from safetensors.torch import save_file

    from qua2.quant import OptionCache, quantized
    from qua2.quant.gguf_file import write_gguf
    from qua2.quant.layers import quantizable_layers
    from qua2.specs import GGUF_TYPE_BITS, QuantConfig, QuantOption, SearchSpace

    model = build(args.width, args.double, args.single)
    model.save_pretrained(work / "config")
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()},
              str(work / "fp16.safetensors"))
    option = QuantOption(args.type, GGUF_TYPE_BITS[args.type])
    started = time.perf_counter()
    cache = OptionCache.build(model, SearchSpace((option,)), work / "cache", progress=False,
                              log=lambda _: None)
    quantize_s = time.perf_counter() - started
    config = QuantConfig.uniform(quantizable_layers(model), option)
    summary = write_gguf(model, config, cache, work / "model.gguf")
    with torch.no_grad(), quantized(model, config, cache):
        reference = model(**inputs(args.width))[0]
    save_file({"reference": reference.contiguous()}, str(work / "reference.safetensors"))
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "quantize_s": round(quantize_s, 1), "gguf_file_mb": summary.file_bytes / 1e6,
            "types": sorted(set(summary.tensor_types.values()))}


def load(kind: str, args: argparse.Namespace, work: Path) -> dict:
    """Runs in a fresh process: load one way, report bytes, peak RSS, output difference."""
    import torch
    from diffusers import FluxTransformer2DModel, GGUFQuantizationConfig
    from safetensors.torch import load_file

    if kind == "gguf":
        model = FluxTransformer2DModel.from_single_file(
            str(work / "model.gguf"), config=str(work / "config"),
            quantization_config=GGUFQuantizationConfig(compute_dtype=torch.float32))
    else:
        model = FluxTransformer2DModel.from_config(
            FluxTransformer2DModel.load_config(work / "config")).half()
        model.load_state_dict(load_file(str(work / "fp16.safetensors")))
        model = model.float() if args.compute == "float32" else model
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    peak_load = _peak_rss_mb()
    kwargs = inputs(args.width)
    if kind == "fp16" and args.compute == "float16":  # an FP16-held model runs in FP16
        kwargs = {k: v.half() if torch.is_tensor(v) and v.is_floating_point() else v
                  for k, v in kwargs.items()}
    with torch.no_grad():
        out = model(**kwargs)[0].float()
    reference = load_file(str(work / "reference.safetensors"))["reference"]
    return {"kind": kind, "param_mb": param_bytes / 1e6, "peak_rss_after_load_mb": peak_load,
            "peak_rss_after_forward_mb": _peak_rss_mb(),
            "max_abs_diff_vs_qua2": float((out - reference).abs().max())}


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: reset by exec, unlike ru_maxrss, which a
    child inherits from the parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1536)
    parser.add_argument("--double", type=int, default=2)
    parser.add_argument("--single", type=int, default=2)
    parser.add_argument("--type", default="q4_k")
    parser.add_argument("--compute", default="float16", choices=("float16", "float32"),
                        help="dtype of the FP16 reference model at run time")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(load(args.child, args, Path(args.work))))
        return
    work = Path(tempfile.mkdtemp(prefix="qua2-gguf-bench-"))
    print(json.dumps(prepare(args, work)))
    for kind in ("fp16", "gguf"):
        command = [sys.executable, __file__, "--child", kind, "--work", str(work),
                   *sys.argv[1:]]
        print(subprocess.run(command, check=True, capture_output=True, text=True
                             ).stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
