"""Speed of the GGUF block quantizers (qua2.quant.gguf) on PixArt-α-shaped layers.

Times :func:`quantize_gguf` for every supported type on a random-normal feed-forward weight
shaped like PixArt-α's ``ff.net.0.proj`` ``[4608, 1152]``, its transpose-shaped ``ff.net.2``
``[1152, 4608]`` and a few-row layer ``[8, 4608]``, on CPU with ``--threads`` torch threads.
Each time is the fastest of ``--repeats`` runs (resists load spikes on a shared machine). Rows
of 1152 weights are not a multiple of the K-quants' 256-weight super-block, so the K-quants
skip ``[4608, 1152]`` (as ``llama-quantize`` must). Also prints the relative squared error
‖W − Ŵ‖² / ‖W‖² of each type and its bits per weight.

    python benchmarks/bench_gguf.py                   # all types, 2 threads
    (sets OMP_WAIT_POLICY=PASSIVE unless already set)
    python benchmarks/bench_gguf.py --types q4_k q6_k --repeats 1
    python benchmarks/bench_gguf.py --device cuda
"""

from __future__ import annotations

import argparse
import os
import time

# Idle OpenMP threads must not spin: on a shared machine spinning makes each of the many small
# ops below wait for a time slice (≈20× slower adds with 2 threads under load).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from qua2.errors import Qua2Error
from qua2.quant.gguf import GGUF_TYPES, dequantize_gguf, gguf_bits_per_weight, quantize_gguf


def _time(fn, repeats: int, device: str) -> float:
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", nargs="*", default=list(GGUF_TYPES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(0)
    shapes = [(4608, 1152), (1152, 4608), (8, 4608)]
    weights = {s: (torch.randn(*s, generator=g) * 0.02).to(args.device) for s in shapes}
    print(f"quantize_gguf on {args.device}, {args.threads} threads, best of {args.repeats}")
    header = f"{'type':7s} {'bpw':>7s}" + "".join(f" {list(s)!s:>14s}" for s in shapes)
    print(header + "   rel. sq. error")
    for name in args.types:
        cells, err = [], None
        for shape, w in weights.items():
            try:
                seconds = _time(lambda w=w, name=name: quantize_gguf(w, name), args.repeats,
                                args.device)
            except Qua2Error:
                cells.append(f" {'n/a':>14s}")
                continue
            cells.append(f" {seconds:>13.3f}s")
            if err is None and shape[0] > 8:
                w_hat = dequantize_gguf(quantize_gguf(w, name), name, w.shape)
                err = float(((w - w_hat) ** 2).sum() / (w**2).sum())
                err_shape = shape
        print(f"{name:7s} {gguf_bits_per_weight(name):7.4f}" + "".join(cells)
              + (f"   {err:.4e} on {list(err_shape)}" if err is not None else ""), flush=True)


if __name__ == "__main__":
    main()
