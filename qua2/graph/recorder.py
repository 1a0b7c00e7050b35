"""Record one forward call as raw op nodes: leaf-module hooks + a ``TorchFunctionMode``.

Why not ``torch.fx`` or ``torch.export``: fx fails on every diffusers denoiser (data-dependent
Python control flow), export works but is slow and lowers everything to aten ops that must be
re-grouped into layers. Here the model runs eagerly (on ``meta`` it costs no memory) and:

* every call of a *leaf* module (no children: Linear, Conv, norms, activations …) becomes one
  node, through forward hooks; torch calls inside it are not recorded;
* every torch function called *outside* leaf modules becomes a node, through a
  :class:`~torch.overrides.TorchFunctionMode`, named after the module whose ``forward`` made
  the call (``transformer_blocks.3.attn1:attention.0``);
* each tensor is mapped, through a weak-identity dictionary, to its *provenance*: the nodes
  that produced it, the parameters it carries (a parameter used directly, e.g. PixArt's
  ``scale_shift_table``, is attributed to the first op that consumes it) and the view ops
  applied since — view-like ops make no node, ops on constants make no node either.

A module called again on the very same inputs (DiT's head re-calls block 0's embedder) is a
recomputation: its outputs are mapped to the first call's nodes instead of new ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from qua2.graph import metafast, vocab
from qua2.graph.tensors import is_identity, signature, tensors_in


@dataclass(frozen=True)
class Provenance:
    """Where a tensor's value comes from."""

    nodes: frozenset[int] = frozenset()
    params: frozenset[str] = frozenset()  # parameters not yet attributed to any node
    path: tuple[Any, ...] = ()            # view ops since the producing node

    @property
    def dynamic(self) -> bool:
        return bool(self.nodes)


CONSTANT = Provenance()


@dataclass
class RawNode:
    """One recorded op before labelling."""

    name: str
    op_type: str
    module: str                 # owning module (weight layers) or calling module (functions)
    func: str                   # torch function or module class name, for debugging
    preds: list[int]
    params: list[str] = field(default_factory=list)
    weight_shape: tuple[int, ...] | None = None
    order: int = 0


@dataclass
class _Frame:
    name: str
    kind: str                   # "module", "leaf", "replay" or "inside" (nested in leaf/replay)
    key: Any = None


_MHA_SIGNATURE = inspect.signature(F.multi_head_attention_forward)


class Recorder(TorchFunctionMode):
    """Builds :class:`RawNode` s while ``module`` runs under this mode and its hooks."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.root = module
        self.nodes: list[RawNode] = []
        self.modules = dict(module.named_modules())
        self.param_names = {id(p): n for n, p in module.named_parameters()}
        self.attributed: set[str] = set()
        self.prov: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.stack: list[_Frame] = []
        self.calls: dict[Any, list[Provenance]] = {}   # call key → outputs (for replays)
        self.call_count: dict[str, int] = {}
        self.op_count: dict[tuple[str, str], int] = {}
        self.quiet = 0                                  # > 0 inside leaf and replayed calls
        self.filled: WeakIdKeyDictionary = WeakIdKeyDictionary()  # tensor → its setitem node
        # Shape-only shortcuts for slow meta kernels (see ``metafast``) when tracing on meta.
        self.on_meta = any(p.is_meta for p in module.parameters())
        self._hooks: list[Any] = []

    # ------------------------------------------------------------------ provenance
    def provenance(self, tensor: torch.Tensor) -> Provenance:
        found = self.prov.get(tensor)
        if found is not None:
            return found
        name = self.param_names.get(id(tensor))
        if name is not None and name not in self.attributed:
            return Provenance(params=frozenset({name}))
        return CONSTANT

    def _merge(self, inputs: list[torch.Tensor]) -> Provenance:
        provs = [self.provenance(t) for t in inputs]
        nodes = frozenset().union(*(p.nodes for p in provs))
        params = frozenset().union(*(p.params for p in provs)) - self.attributed
        return Provenance(nodes, params)

    def _key_of(self, tensor: torch.Tensor) -> Any:
        """Identity of a tensor's value for recomputation checks."""
        prov = self.prov.get(tensor)
        if prov is None:
            return ("const", id(tensor))
        return (prov.nodes, prov.path)

    # ------------------------------------------------------------------ nodes
    def add_node(self, name: str, op_type: str, module: str, func: str, preds: frozenset[int],
                 params: Iterable[str] = (),
                 weight_shape: tuple[int, ...] | None = None) -> int:
        self.nodes.append(RawNode(name, op_type, module, func, sorted(preds),
                                  self._claim(params), weight_shape, len(self.nodes)))
        return len(self.nodes) - 1

    def _claim(self, params: Iterable[str]) -> list[str]:
        """The not yet attributed ``params`` (sorted), now attributed to the caller's node."""
        owned = sorted(set(params) - self.attributed)
        self.attributed.update(owned)
        return owned

    def _add_op(self, op_type: str, func: str, preds: frozenset[int], params: Iterable[str] = (),
                weight_shape: tuple[int, ...] | None = None) -> int:
        """A node made by the current module's ``forward``, named ``context:op_type.k``."""
        context = self._context()
        k = self.op_count.get((context, op_type), 0)
        self.op_count[(context, op_type)] = k + 1
        return self.add_node(f"{context}:{op_type}.{k}", op_type, context, func, preds, params,
                             weight_shape)

    def _context(self) -> str:
        return self.stack[-1].name if self.stack else ""

    def _map(self, outputs: Any, prov: Provenance) -> None:
        for t in tensors_in(outputs):
            self.prov[t] = prov

    # ------------------------------------------------------------------ torch functions
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = vocab.function_name(func)
        out = metafast.shortcut(name, args, kwargs) if self.on_meta else None
        if out is None:
            out = func(*args, **kwargs)
        if self.quiet:
            return out
        kind, op_type = vocab.function_kind(func)
        if kind == vocab.IGNORE:
            return out
        if name == "__setitem__":
            self._record_setitem(args)
        elif name == "multi_head_attention_forward":
            self._record_mha(args, kwargs, out)
        elif kind == vocab.VIEW:
            self._record_view(name, args, kwargs, out)
        else:
            self._record_op(name, op_type, args, kwargs, out)
        return out

    def _record_view(self, name: str, args: tuple, kwargs: dict, out: Any) -> None:
        inputs = list(tensors_in((args, kwargs)))
        if not inputs:
            return
        merged = self._merge(inputs)
        first = self.prov.get(inputs[0])
        step = (name, signature(args[1:], kwargs))
        for i, t in enumerate(tensors_in(out)):
            if any(t is x for x in inputs):
                continue  # a no-op view (``.to`` of the same dtype) keeps its mapping
            path = (first.path if first else ()) + (step, i)
            self.prov[t] = Provenance(merged.nodes, merged.params, path)

    def _record_op(self, name: str, op_type: str, args: tuple, kwargs: dict, out: Any) -> None:
        inputs = list(tensors_in((args, kwargs)))
        if (name == "einsum" and len(inputs) == 1) or is_identity(name, args, kwargs):
            # A one-operand einsum only permutes; ``x / 1.0`` or ``x + 0`` (diffusers'
            # default rescale factors) compute nothing: both are contracted like views.
            self._record_view(name, args, kwargs, out)
            return
        merged = self._merge(inputs)
        if not merged.dynamic:
            self._map(out, Provenance(params=merged.params))  # folded constant
            return
        node = self._weight_node(op_type, name, merged)
        self._map(out, Provenance(frozenset({node})))

    def _weight_node(self, op_type: str, func: str, merged: Provenance) -> int:
        """A functional op; named after the weight layer whose weight it uses, if any."""
        owner = _weight_owner(self.modules, merged.params) if op_type in ("linear", "conv") \
            else None
        if owner is not None:
            shape = tuple(self.modules[owner].weight.shape)
            return self.add_node(self._unique_call_name(owner), op_type, owner, func,
                                 merged.nodes, merged.params, shape)
        return self._add_op(op_type, func, merged.nodes, merged.params)

    def _record_setitem(self, args: tuple) -> None:
        """``target[index] = value``: one elementwise node per filled tensor.

        A tensor filled piece by piece (Lumina 2 writes its joint sequence in a loop over the
        batch) stays one node whose inputs grow, so the graph does not depend on the batch size.
        """
        target = args[0]
        node = self.filled.get(target)
        if node is not None and self.prov.get(target) == Provenance(frozenset({node})):
            merged = self._merge(list(tensors_in(args[1:])))
            raw = self.nodes[node]
            raw.preds = sorted(set(raw.preds) | (merged.nodes - {node}))
            raw.params.extend(self._claim(merged.params))
            return
        merged = self._merge(list(tensors_in(args)))
        if merged.dynamic:
            node = self._add_op("elementwise", "__setitem__", merged.nodes, merged.params)
            self.prov[target] = Provenance(frozenset({node}))
            self.filled[target] = node

    def _record_mha(self, args: tuple, kwargs: dict, out: Any) -> None:
        """Decompose ``F.multi_head_attention_forward`` into projections, core and output.

        HunyuanDiT's attention pooling passes its Linear layers' weights straight to this
        function without calling the layers; attributing the weights by identity keeps those
        layers in the graph as the nodes they are.
        """
        bound = _MHA_SIGNATURE.bind(*args, **kwargs).arguments
        pending = set(self._merge(list(tensors_in((args, kwargs)))).params)
        separate = bound.get("use_separate_proj_weight", False)
        projected: list[int] = []
        for stream, weight_key in (("query", "q_proj_weight"), ("key", "k_proj_weight"),
                                   ("value", "v_proj_weight")):
            weight = bound[weight_key] if separate else bound["in_proj_weight"]
            source = self.provenance(bound[stream]).nodes
            if not separate and projected and stream != "query" and \
                    bound[stream] is bound["query"]:
                projected.append(projected[0])  # one packed in-projection serves q, k and v
                continue
            projected.append(self._mha_linear(weight, source, pending))
        extra = self._merge([t for k in ("attn_mask", "key_padding_mask", "bias_k", "bias_v")
                             if isinstance(t := bound.get(k), torch.Tensor)])
        core = self._add_op("attention", "multi_head_attention_forward",
                            frozenset(projected) | extra.nodes)
        out_node = self._mha_linear(bound["out_proj_weight"], frozenset({core}), pending)
        # biases of packed projections, bias_k/v: the core owns them
        self.nodes[core].params.extend(self._claim(pending))
        self._map(out[0] if isinstance(out, tuple) else out, Provenance(frozenset({out_node})))

    def _mha_linear(self, weight: torch.Tensor, preds: frozenset[int], pending: set[str]) -> int:
        name = self.param_names.get(id(weight), "")
        owner = name.rsplit(".", 1)[0] if name.endswith(".weight") else None
        mine = {p for p in pending if owner is not None and p.rsplit(".", 1)[0] == owner}
        if name:
            mine.add(name)
        if owner is not None and isinstance(self.modules.get(owner), nn.Linear):
            return self.add_node(self._unique_call_name(owner), "linear", owner,
                                 "multi_head_attention_forward", preds, mine, tuple(weight.shape))
        return self._add_op("linear", "multi_head_attention_forward", preds, mine,
                            tuple(weight.shape))

    def _unique_call_name(self, module_name: str) -> str:
        k = self.call_count.get(module_name, 0)
        self.call_count[module_name] = k + 1
        return module_name if k == 0 else f"{module_name}@{k}"

    # ------------------------------------------------------------------ module hooks
    def attach(self) -> None:
        for name, module in self.modules.items():
            leaf = not module._modules
            self._hooks.append(module.register_forward_pre_hook(
                _bind(self._pre, name, leaf), with_kwargs=True))
            self._hooks.append(module.register_forward_hook(
                _bind(self._post, name, leaf), with_kwargs=True, always_call=True))

    def detach(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()

    def _pre(self, name: str, leaf: bool, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self.quiet:
            self.stack.append(_Frame(name, "inside"))
            self.quiet += 1
            return
        key = (name, tuple(self._key_of(t) for t in tensors_in((args, kwargs))),
               signature(args, kwargs))
        if key in self.calls:
            self.stack.append(_Frame(name, "replay", key))
            self.quiet += 1
        elif leaf:
            self.stack.append(_Frame(name, "leaf", key))
            self.quiet += 1
        else:
            self.stack.append(_Frame(name, "module", key))

    def _post(self, name: str, leaf: bool, module: nn.Module, args: tuple, kwargs: dict,
              output: Any) -> None:
        frame = self.stack.pop()
        if frame.kind != "module":
            self.quiet -= 1
        if frame.kind == "inside" or output is None:
            return
        if frame.kind == "replay":
            self._replay(frame.key, output)
            return
        if frame.kind == "leaf":
            self._record_leaf(name, module, args, kwargs, output)
        self.calls[frame.key] = [self.provenance(t) for t in tensors_in(output)]

    def _replay(self, key: Any, output: Any) -> None:
        first = self.calls[key]
        outs = list(tensors_in(output))
        if len(first) == len(outs):
            for t, prov in zip(outs, first):
                self.prov[t] = prov
        else:  # a different output structure: fall back to the union of the first outputs
            union = frozenset().union(*(p.nodes for p in first))
            self._map(output, Provenance(union))

    def _record_leaf(self, name: str, module: nn.Module, args: tuple, kwargs: dict,
                     output: Any) -> None:
        inputs = list(tensors_in((args, kwargs)))
        outs = list(tensors_in(output))
        merged = self._merge(inputs)
        # A leaf has no children, so ``_parameters`` is all of its parameters (and, unlike
        # ``parameters()``, does not hash tensors through this very TorchFunctionMode).
        own_params = [p for p in module._parameters.values() if p is not None]
        if isinstance(module, vocab.PASS_THROUGH) or (
                not own_params and all(any(o is i for i in inputs) for o in outs)):
            self._map(output, merged)  # identity, dropout in eval: contracted like a view
            return
        own = {self.param_names[id(p)] for p in own_params if id(p) in self.param_names}
        params = merged.params | own
        if not merged.dynamic and not params - self.attributed:
            self._map(output, CONSTANT)  # e.g. a position table computed from constants
            return
        weight = getattr(module, "weight", None)
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else None
        node = self.add_node(self._unique_call_name(name), vocab.module_op_type(module), name,
                             type(module).__name__, merged.nodes, params, shape)
        self._map(output, Provenance(frozenset({node})))


def _bind(method, name: str, leaf: bool):
    def hook(*args):
        return method(name, leaf, *args)
    return hook


def _weight_owner(modules: dict[str, nn.Module], params: frozenset[str]) -> str | None:
    """The weight layer (Linear/Conv) whose ``weight`` is among ``params``, if exactly one."""
    owners = {p.rsplit(".", 1)[0] for p in params if p.endswith(".weight")}
    owners = {o for o in owners if isinstance(modules.get(o), (nn.Linear, nn.Conv1d,
                                                               nn.Conv2d, nn.Conv3d))}
    return owners.pop() if len(owners) == 1 else None
