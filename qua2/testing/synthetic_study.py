"""Synthetic studies with a *known* ground truth, for tests, benchmarks and documentation.

A real study costs minutes to hours of generation; its true per-layer sensitivities are
unknown. A synthetic study has a small DiT-like operation graph (patch embedding, time
embedding, ``n_blocks`` transformer blocks with AdaLN, Q/K/V/out and a feed-forward, an output
head), option statistics shaped like the real ones, and store rows whose "FID" is a known
function of the per-layer choices:

    damage_l = s_l · d(bits_l) · m(method_l, component_l)
    FID      = fid_fp + D + curvature · D² / scale + q·k interaction + noise,   D = Σ_l damage_l

with heavy-tailed per-layer sensitivities ``s_l`` (role weight × block factor × log-normal
jitter), so a surrogate's held-out ranking and an explanation's layer importance can be
checked against the truth. Rows are written exactly as ``qua2 run`` writes them (kinds
``uniform``, ``random`` — sampled like Qua²SeDiMo, p ~ U(0, 1) — and ``sweep``).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qua2.specs import QuantConfig
from qua2.surrogates.encoding import FP_CHOICE, ConfigEncoder, OptionStat, OptionStats

if TYPE_CHECKING:
    from qua2.graph.opgraph import OpGraph
    from qua2.specs import QuantOption
    from qua2.study.store import Store

ROLE_WEIGHT = {"patch_in": 3.0, "time_embed": 1.5, "adaln": 1.2, "self_attn.q": 0.3,
               "self_attn.k": 0.3, "self_attn.v": 0.8, "self_attn.out": 1.0, "ff.in": 0.8,
               "ff.out": 1.2, "patch_out": 4.0}
#: Known method preference per component: lower multiplier = less damage.
METHOD_MULT = {"self_attn": {"uaq": 1.0, "kmeans_c": 0.6, "kmeans_a": 1.4},
               "ff": {"uaq": 0.7, "kmeans_c": 0.9, "kmeans_a": 1.5},
               "*": {"uaq": 1.0, "kmeans_c": 0.8, "kmeans_a": 1.2}}
BITS_DAMAGE = {3: 1.0, 4: 0.3}
BASE_ERROR = {3: 0.04, 4: 0.01}
ERROR_MULT = {"uaq": 1.0, "kmeans_c": 0.6, "kmeans_a": 1.2}


# --------------------------------------------------------------------------- graph
class _GraphBuilder:
    def __init__(self, width: int) -> None:
        self.width = width
        self.rows: list[dict[str, Any]] = []
        self.edges: list[tuple[int, int]] = []

    def add(self, name: str, op: str, block: str, stage: str, role: str,
            inputs: tuple[int, ...] = (), shape: tuple[int, int] | None = None) -> int:
        params = shape[0] * shape[1] if shape else 0
        index = len(self.rows)
        self.rows.append({"name": name, "op_type": op, "func": op, "module": name,
                          "block": block, "stage": stage, "role": role, "params": params,
                          "param_names": (f"{name}.weight",) if shape else (),
                          "weight_shape": shape, "quantizable": shape is not None})
        self.edges += [(i, index) for i in inputs]
        return index

    def block(self, b: int, h: int, c: int) -> int:
        w, blk = self.width, f"transformer_blocks.{b}"
        p = f"{blk}."
        add = self.add
        mod = add(p + "norm1.linear", "linear", blk, "trunk", "adaln", (c,), (6 * w, w))
        ln = add(p + ":layer_norm.0", "norm", blk, "trunk", "norm", (h,))
        hn = add(p + ":mul.0", "mul", blk, "trunk", "adaln", (ln, mod))
        qkv = [add(p + f"attn1.to_{x}", "linear", blk, "trunk", f"self_attn.{x}", (hn,), (w, w))
               for x in "qkv"]
        att = add(p + "attn1:attention.0", "attention", blk, "trunk", "self_attn", tuple(qkv))
        out = add(p + "attn1.to_out.0", "linear", blk, "trunk", "self_attn.out", (att,), (w, w))
        h = add(p + ":add.0", "add", blk, "trunk", "residual", (h, out))
        ln2 = add(p + ":layer_norm.1", "norm", blk, "trunk", "norm", (h,))
        hn2 = add(p + ":mul.1", "mul", blk, "trunk", "adaln", (ln2, mod))
        f1 = add(p + "ff.net.0.proj", "linear", blk, "trunk", "ff.in", (hn2,), (4 * w, w))
        act = add(p + "ff:gelu.0", "activation", blk, "trunk", "ff", (f1,))
        f2 = add(p + "ff.net.2", "linear", blk, "trunk", "ff.out", (act,), (w, 4 * w))
        return add(p + ":add.1", "add", blk, "trunk", "residual", (h, f2))


def synthetic_graph(n_blocks: int = 4, width: int = 32) -> OpGraph:
    """A DiT-like :class:`~qua2.graph.OpGraph` with ``4 + 7·n_blocks`` weight layers."""
    from qua2.graph.opgraph import OpGraph

    g = _GraphBuilder(width)
    x = g.add("input:hidden_states", "input", "input", "embed", "input")
    t = g.add("input:timestep", "input", "input", "embed", "input")
    h = g.add("pos_embed.proj", "conv", "pos_embed", "embed", "patch_in", (x,), (width, 4))
    s = g.add("time_embedding:sinusoidal.0", "sinusoidal", "time_embedding", "embed",
              "time_embed", (t,))
    t1 = g.add("time_embedding.linear_1", "linear", "time_embedding", "embed", "time_embed",
               (s,), (width, width))
    ta = g.add("time_embedding:silu.0", "activation", "time_embedding", "embed", "time_embed",
               (t1,))
    c = g.add("time_embedding.linear_2", "linear", "time_embedding", "embed", "time_embed",
              (ta,), (width, width))
    for b in range(n_blocks):
        h = g.block(b, h, c)
    o1 = g.add("proj_out_1", "linear", "proj_out_1", "head", "patch_out", (c,), (2 * width, width))
    hn = g.add(":mul.0", "mul", "head", "head", "patch_out", (h, o1))
    o2 = g.add("proj_out_2", "linear", "proj_out_2", "head", "patch_out", (hn,), (4, width))
    g.add("output", "output", "output", "head", "output", (o2,))
    nodes = pd.DataFrame(g.rows)
    nodes["block_index"] = pd.factorize(nodes["block"])[0]
    depth = np.zeros(len(nodes), dtype=np.int64)
    for src, dst in sorted(g.edges, key=lambda e: e[1]):
        depth[dst] = max(depth[dst], depth[src] + 1)
    nodes["depth"] = depth
    nodes["live"] = True
    return OpGraph(nodes, np.asarray(g.edges, dtype=np.int64), "SyntheticDiT", ())


# --------------------------------------------------------------------------- truth
@dataclass
class SyntheticTruth:
    """The known function from choices to FID, and the true per-layer sensitivities."""

    encoder: ConfigEncoder
    components: list[str]
    sensitivity: np.ndarray          # s_l, per layer
    fid_fp: float = 10.0
    curvature: float = 0.3
    noise: float = 0.05              # noise std as a fraction of the random configs' std(D)
    interaction: float = 0.5         # extra damage when Q and K of a block are both 3-bit
    scale: float = field(default=1.0)

    def damage(self, choices: np.ndarray) -> np.ndarray:
        """``[N, L]`` per-layer damage (0 in full precision)."""
        options = self.encoder.options
        table = np.zeros((self.encoder.n_layers, len(options) + 1))
        for i, comp in enumerate(self.components):
            mult = METHOD_MULT.get(comp, METHOD_MULT["*"])
            for o, option in enumerate(options):
                table[i, o] = (self.sensitivity[i] * BITS_DAMAGE.get(option.bits, 0.0)
                               * mult.get(option.method, 1.0))
        column = np.where(choices == FP_CHOICE, len(options), choices)
        return table[np.arange(self.encoder.n_layers)[None, :], column]

    def fid(self, choices: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        damage = self.damage(choices)
        total = damage.sum(axis=1)
        value = self.fid_fp + total + self.curvature * total ** 2 / self.scale
        value = value + self.interaction * self._qk_low(choices)
        if rng is not None and self.noise > 0:
            value = value + rng.normal(0.0, self.noise * self.scale, size=len(value))
        return value

    def _qk_low(self, choices: np.ndarray) -> np.ndarray:
        layers, options = self.encoder.layers, self.encoder.options
        low = np.array([o.bits == 3 for o in options] + [False])
        is_low = low[np.where(choices == FP_CHOICE, len(options), choices)]
        out = np.zeros(len(choices))
        for i, name in enumerate(layers):
            if name.endswith("attn1.to_q"):
                k = layers.index(name[:-1] + "k")
                out += is_low[:, i] & is_low[:, k]
        return out


def _sensitivities(graph: OpGraph, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    nodes = graph.nodes[graph.nodes["quantizable"]]
    n_blocks = max(1, nodes["block"].str.startswith("transformer_blocks").sum() // 7)
    roles = nodes["role"].tolist()
    blocks = nodes["block"].tolist()
    weights = []
    for role, block in zip(roles, blocks):
        depth = int(block.split(".")[1]) if block.startswith("transformer_blocks.") else 0
        # Earlier blocks matter more, like the first/last-layer sensitivity seen in practice.
        factor = 1.5 - depth / max(n_blocks, 1) if block.startswith("transformer") else 1.0
        weights.append(ROLE_WEIGHT.get(role, 1.0) * factor)
    jitter = rng.lognormal(0.0, 0.4, size=len(weights))
    return [r.split(".")[0] for r in roles], np.asarray(weights) * jitter


def synthetic_stats(graph: OpGraph, options: Sequence[QuantOption]) -> OptionStats:
    """Option statistics shaped like the real ones (bytes with overheads; error by bits)."""
    nodes = graph.nodes[graph.nodes["quantizable"]]
    table: dict[str, dict[str, OptionStat]] = {}
    for name, shape in zip(nodes["name"], nodes["weight_shape"]):
        out_ch, numel = shape[0], shape[0] * shape[1]
        for option in options:
            overhead = {"uaq": 4 * out_ch, "kmeans_c": 2 * out_ch * 2 ** option.bits,
                        "kmeans_a": 2 * 2 ** option.bits}.get(option.method, 4 * out_ch)
            error = BASE_ERROR.get(option.bits, 0.02) * ERROR_MULT.get(option.method, 1.0)
            error *= 1.0 + (zlib.crc32(name.encode()) % 7) / 20  # stable per-layer spread
            table.setdefault(name, {})[option.key] = OptionStat(
                numel * option.bits / 8 + overhead, 2.0 * numel, error)
    return OptionStats(table)


# --------------------------------------------------------------------------- study
def make_synthetic_study(directory: str | Path, *, n_random: int = 300, n_blocks: int = 4,
                         noise: float = 0.05, bits_penalty: float = 0.0, sweep: bool = True,
                         seed: int = 0) -> tuple[Any, SyntheticTruth]:
    """A study directory whose rows come from a :class:`SyntheticTruth`; returns both.

    Writes ``study.yaml``, ``graph.json``, ``surrogates/option_stats.json`` (standing in for
    the option cache), ``reference/fp_metrics.json``, the store and ``synthetic_truth.json``.
    No model is loaded or trained.
    """
    from qua2.study.config import study_config_from_dict
    from qua2.study.sampler import sample_configs, sweep_configs, uniform_configs
    from qua2.study.store import Store
    from qua2.study.study import Study

    config = study_config_from_dict({
        "name": "synthetic", "metrics": {"primary": "digits_fid", "lower_is_better": True,
                                         "bits_penalty": bits_penalty},
        "config_sampler": {"num_configs": n_random, "seed": seed}})
    study = Study.create(config, directory)
    graph = synthetic_graph(n_blocks)
    study.path("graph.json").write_text(json.dumps(graph.to_dict()))
    space = config.search_space.build()
    layers = graph.layers()
    stats = synthetic_stats(graph, space.options)
    stats.save(study.path("surrogates", "option_stats.json"))
    encoder = ConfigEncoder(layers, space.options, stats)
    rng = np.random.default_rng(seed)
    components, sensitivity = _sensitivities(graph, rng)
    truth = SyntheticTruth(encoder, components, sensitivity, noise=noise)
    random = sample_configs(layers, space, n_random, seed=seed)
    truth.scale = float(np.std(truth.damage(encoder.choices(random)).sum(axis=1))) or 1.0
    groups: list[tuple[str, list[QuantConfig], list[dict] | None]] = [
        ("uniform", uniform_configs(layers, space), None), ("random", random, None)]
    if sweep:
        pairs = sweep_configs(layers, space)
        groups.append(("sweep", [c for _, c in pairs],
                       [{"layer": layer, "option": c[layer].key} for layer, c in pairs]))
    with Store(study.path("study.sqlite")) as store:
        for kind, configs, tags in groups:
            _store_rows(store, truth, kind, configs, tags, bits_penalty, rng)
    fp = {"digits_fid": truth.fid_fp, "psnr": float("inf")}
    study.path("reference", "fp_metrics.json").write_text(json.dumps(fp))
    study.path("synthetic_truth.json").write_text(json.dumps({
        "layers": layers, "sensitivity": sensitivity.tolist(), "components": components,
        "scale": truth.scale, "noise": noise}))
    return study, truth


def _store_rows(store: Store, truth: SyntheticTruth, kind: str, configs: list[QuantConfig],
                tags: list[dict] | None, bits_penalty: float, rng: np.random.Generator) -> None:
    choices = truth.encoder.choices(configs)
    fid = truth.fid(choices, rng)
    bits = truth.encoder.avg_bits(choices)
    tags = tags or [{} for _ in configs]
    store.add([(c.digest(), kind, c.to_dict(), float(b), t)
               for c, b, t in zip(configs, bits, tags)])
    for config, value, avg in zip(configs, fid, bits):
        metrics = {"digits_fid": float(value), "objective": float(-value - bits_penalty * avg),
                   "psnr": float(40.0 - 2.0 * np.log1p(value))}
        store.finish(config.digest(), metrics, {"generate": 0.0}, float(avg))
