"""Block, stage and role labels derived from module names and classes.

This is the only naming knowledge the graph needs — a small table of diffusers class and
attribute names, no per-family graph files. Rules, in the order they apply:

* **block**: the prefix of a node's module path up to its first ``ModuleList`` index
  (``transformer_blocks.7``); for U-Net stage containers (a root-level list whose items hold
  lists themselves) up to the second index (``down_blocks.1.attentions.0``). Ops called by the
  root module and global modules take the name of their top-level module or their stage.
* **stage**: ``down``/``mid``/``up`` for U-Net containers, ``trunk`` for other root-level
  block lists, else ``embed`` before the first block op and ``head`` after the last one.
* **role**: ``component`` or ``component.part`` (components: :data:`vocab.ROLE_COMPONENTS`),
  from the innermost enclosing module that a rule recognises (an attention module, a
  feed-forward, an AdaLN norm, a resnet, an embedder …), then refined by data flow for ops
  made directly by a block (residual adds vs. AdaLN modulation vs. skip concatenation).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from qua2.graph.recorder import RawNode

_UNET_STAGES = {"down_blocks": "down", "mid_block": "mid", "up_blocks": "up"}

# Attribute names that decide the component wherever they appear.
_ATTR_COMPONENT = {
    "guidance_embedder": "cond_embed", "resolution_embedder": "cond_embed",
    "aspect_ratio_embedder": "cond_embed", "size_proj": "cond_embed",
    "style_embedder": "cond_embed", "add_time_proj": "cond_embed", "extra_embedder": "cond_embed",
    "add_embedding": "text_embed", "caption_projection": "text_embed",
    "context_embedder": "text_embed", "text_embedder": "text_embed",
    "encoder_hid_proj": "text_embed", "pooler": "text_embed",
    "class_embedding": "class_embed", "class_embedder": "class_embed",
    "time_embedding": "time_embed", "time_proj": "time_embed", "timestep_embedder": "time_embed",
    "t_embedder": "time_embed", "x_embedder": "patch_in", "skip_linear": "skip",
    "skip_norm": "skip",
}
# Attribute names that decide the component only as children of the root module.
_ROOT_COMPONENT = {
    "conv_in": "patch_in", "patch_embed": "patch_in", "norm_out": "patch_out",
    "proj_out": "patch_out", "proj_out_1": "patch_out", "proj_out_2": "patch_out",
    "conv_out": "patch_out", "conv_norm_out": "patch_out", "conv_act": "patch_out",
}
# Class-name rules: (substring of the class name, component); first match wins.
_CLASS_COMPONENT = (
    ("AttentionPool", "text_embed"), ("AdaLayerNormSingle", "time_embed"),
    ("AdaLayerNorm", "adaln"), ("AdaGroupNorm", "adaln"), ("FeedForward", "ff"),
    ("ResnetBlock", "resnet"), ("Downsample", "sampler"), ("Upsample2D", "sampler"),
    ("Transformer2DModel", "transformer"), ("PatchEmbed", "patch_in"),
    ("PosEmbed", "pos_embed"), ("TimestepEmbedding", "time_embed"), ("Timesteps", "time_embed"),
    ("GaussianFourierProjection", "time_embed"), ("LabelEmbedding", "class_embed"),
    ("TextProjection", "text_embed"), ("CombinedTimestep", "time_embed"),
)
_ATTN_PARTS = {
    "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "out", "add_q_proj": "ctx_q",
    "add_k_proj": "ctx_k", "add_v_proj": "ctx_v", "to_add_out": "ctx_out",
    "q_proj": "q", "k_proj": "k", "v_proj": "v", "c_proj": "out", "out_proj": "out",
    "norm_q": "qk_norm", "norm_k": "qk_norm", "norm_added_q": "qk_norm",
    "norm_added_k": "qk_norm", "norm_cross": "norm", "group_norm": "norm",
    "spatial_norm": "norm",
}
_RESNET_PARTS = {"conv1": "conv1", "conv2": "conv2", "conv_shortcut": "shortcut",
                 "time_emb_proj": "time_proj", "norm1": "norm", "norm2": "norm",
                 "nonlinearity": "act"}
_FLAT_PARTS = {"proj_mlp": "ff.in", "act_mlp": "ff.act"}
_CONDITIONING = {"adaln", "time_embed", "cond_embed", "text_embed", "class_embed"}


def _prefixes(name: str) -> list[str]:
    """``a.b.c`` → ``[a.b.c, a.b, a]`` (innermost first)."""
    parts = name.split(".") if name else []
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def block_of(module_name: str, modules: dict[str, nn.Module]) -> str:
    """The block a module belongs to (see the module docstring); '' for the root."""
    if not module_name:
        return ""
    parts = module_name.split(".")
    digits = [i for i, p in enumerate(parts) if p.isdigit()]
    if not digits:
        return parts[0]
    first = ".".join(parts[: digits[0] + 1])
    container = modules.get(first)
    nested = container is not None and any(
        isinstance(c, nn.ModuleList) for c in container.children())
    if digits[0] == 1 and nested and len(digits) > 1:
        return ".".join(parts[: digits[1] + 1])
    return first


def stages(nodes: Sequence[RawNode], blocks: Sequence[str],
           modules: dict[str, nn.Module]) -> list[str]:
    """The stage of every node (see the module docstring)."""
    listed = []
    for block in blocks:
        top = block.split(".")[0]
        if top in _UNET_STAGES:
            listed.append(_UNET_STAGES[top])
        elif top and isinstance(modules.get(top), nn.ModuleList) and "." in block:
            listed.append("trunk")
        else:
            listed.append("")
    in_blocks = [n.order for n, s in zip(nodes, listed) if s]
    first, last = (min(in_blocks), max(in_blocks)) if in_blocks else (0, -1)
    out = []
    for node, stage in zip(nodes, listed):
        if stage:
            out.append(stage)
        elif node.op_type == "input" or node.order < first:
            out.append("embed")
        elif node.order > last:
            out.append("head")
        else:
            out.append("trunk")
    return out


# --------------------------------------------------------------------------- roles
def _attention_component(module: nn.Module) -> str:
    if getattr(module, "add_k_proj", None) is not None:
        return "joint_attn"
    if getattr(module, "is_cross_attention", False):
        return "cross_attn"
    return "self_attn"


def _is_attention(module: nn.Module) -> bool:
    return hasattr(module, "to_q") or isinstance(module, nn.MultiheadAttention)


def _anchor(path: str, block: str, modules: dict[str, nn.Module]) -> tuple[str, str, str]:
    """``(component, anchor path, child attr)`` of the innermost recognised module."""
    child = ""
    for prefix in _prefixes(path):
        attr = prefix.rsplit(".", 1)[-1]
        module = modules.get(prefix)
        if attr in _ATTR_COMPONENT:
            return _ATTR_COMPONENT[attr], prefix, child
        if "." not in prefix and attr in _ROOT_COMPONENT:
            return _ROOT_COMPONENT[attr], prefix, child
        if module is not None and _is_attention(module):
            return _attention_component(module), prefix, child
        if module is not None:
            name = type(module).__name__
            for needle, component in _CLASS_COMPONENT:
                if needle not in name or (component == "transformer" and not block):
                    continue
                if component == "transformer" and child not in ("", "proj_in", "proj_out",
                                                                "norm"):
                    # Inside a U-Net's Transformer2DModel, its transformer blocks follow the
                    # block-level rules (norms, residual adds) like a DiT block does.
                    return "", prefix, child
                return component, prefix, child
        if prefix == block:
            return "", prefix, child
        child = attr
    return "", "", child


def last_linears(modules: dict[str, nn.Module]) -> dict[str, str]:
    """For every module path, the last Linear registered under it (feed-forward outputs)."""
    last: dict[str, str] = {}
    for name, module in modules.items():
        if isinstance(module, nn.Linear):
            for prefix in _prefixes(name)[1:]:
                last[prefix] = name
    return last


def _part(component: str, node: RawNode, anchor: str, child: str,
          modules: dict[str, nn.Module], last_linear: dict[str, str]) -> str:
    """The part of a component a node is (``q``, ``conv1``, ``in`` …); '' for none."""
    is_call = node.module != anchor
    if component.endswith("attn"):
        return _ATTN_PARTS.get(child, "other") if is_call else "core"
    if component == "ff":
        prefix = "ctx_" if anchor.endswith("_context") else ""
        if node.op_type not in ("linear", "conv"):
            return prefix + "act"
        return prefix + ("out" if node.module == last_linear.get(anchor) else "in")
    if component == "resnet":
        return _RESNET_PARTS.get(child, "residual" if node.op_type == "add" else "op")
    if component == "sampler":
        return "up" if "Up" in type(modules[anchor]).__name__ else "down"
    if component == "transformer":
        return child if child in ("proj_in", "proj_out", "norm") else "residual"
    return ""


def static_role(node: RawNode, block: str, modules: dict[str, nn.Module],
                last_linear: dict[str, str]) -> str:
    """The role of a node from its module path alone ('' where data flow must decide).

    ``last_linear`` is :func:`last_linears` of ``modules`` (computed once per graph).
    """
    if node.op_type in ("input", "output"):
        return node.op_type
    attr = node.module.rsplit(".", 1)[-1] if node.module else ""
    if attr in _FLAT_PARTS and node.module != block:
        return _FLAT_PARTS[attr]
    component, anchor, child = _anchor(node.module, block, modules)
    if component == "adaln" and node.op_type == "norm":
        return "norm"
    if component:
        part = _part(component, node, anchor, child, modules, last_linear)
        return f"{component}.{part}" if part else component
    if node.op_type == "norm":
        return "norm"
    if block and node.module != block and attr == "proj_out":
        return "ff.out"  # Flux single blocks: the fused attention + MLP output projection
    return ""


def refine_roles(nodes: Sequence[RawNode], roles: list[str], stage: Sequence[str],
                 blocks: Sequence[str]) -> list[str]:
    """Fill roles left open by :func:`static_role` from the roles of predecessors."""
    roles = list(roles)
    for node in nodes:
        if roles[node.order]:
            continue
        pred_parts = [roles[p].split(".")[0] for p in node.preds]
        if stage[node.order] == "head" and not blocks[node.order].count("."):
            roles[node.order] = "patch_out"
        elif blocks[node.order].count("."):  # made directly by a block's forward
            others = {blocks[p] for p in node.preds} - {blocks[node.order]}
            roles[node.order] = _block_op_role(node.op_type, pred_parts, len(others) >= 2)
        else:
            known = [p for p in pred_parts if p not in ("input", "")]
            roles[node.order] = known[0] if known else ""
    # Ops fed only by inputs (e.g. broadcasting the timestep) take their consumer's role.
    first_consumer: dict[int, int] = {}
    for node in nodes:
        for p in node.preds:
            first_consumer.setdefault(p, node.order)
    for node in reversed(nodes):
        if not roles[node.order]:
            consumer = first_consumer.get(node.order)
            roles[node.order] = roles[consumer] if consumer is not None else "other"
    return roles


def _block_op_role(op_type: str, pred_parts: list[str], joins_blocks: bool) -> str:
    """Role of an op made directly by a block: skip concat, AdaLN modulation or residual.

    A concatenation is a long skip (U-Net, Hunyuan) when it joins tensors of two other
    blocks; joining two streams of the previous block (Flux single blocks) is not.
    """
    if op_type == "cat" and joins_blocks:
        return "skip"
    if op_type == "mul" or (pred_parts and all(p in _CONDITIONING for p in pred_parts)):
        return "adaln"
    if op_type == "add":
        return "residual"
    known = [p for p in pred_parts if p not in ("input", "")]
    return known[0] if known else "other"
