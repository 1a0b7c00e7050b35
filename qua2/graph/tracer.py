"""``trace(module, *args, **kwargs)``: run one forward call and return its :class:`OpGraph`.

The forward runs eagerly under :class:`~qua2.graph.recorder.Recorder` (hooks + a
``TorchFunctionMode``), in eval mode, without gradients, with the attention implementation
pinned so that the op vocabulary does not depend on which processor or backend happens to be
active. Everything the tracer changes on the module is restored afterwards. Modules built on
the ``meta`` device trace the same way, with no memory for weights.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from qua2.errors import Qua2Error
from qua2.graph.opgraph import OpGraph
from qua2.graph.recorder import Provenance, RawNode, Recorder
from qua2.graph.tensors import tensors_in

if TYPE_CHECKING:
    from qua2.models.base import DenoiserAdapter


def trace(module: nn.Module, *args: Any, **kwargs: Any) -> OpGraph:
    """Trace one call ``module(*args, **kwargs)`` into an :class:`OpGraph`.

    Raises :class:`Qua2Error` when the module cannot run on these inputs or has no
    quantizable (Linear/Conv) layer in the traced call.
    """
    if not isinstance(module, nn.Module):
        hint = "; use trace_adapter() for a model adapter" if hasattr(
            module, "example_inputs") else ""
        raise Qua2Error(f"trace needs a torch.nn.Module, got {type(module).__name__}{hint}.")
    recorder = Recorder(module)
    _add_inputs(recorder, module, args, kwargs)
    with _tracing_state(module), torch.no_grad():
        recorder.attach()
        try:
            with recorder:
                output = module(*args, **kwargs)
        except Qua2Error:
            raise
        except Exception as error:
            raise Qua2Error(
                f"{type(module).__name__} could not run on its example inputs "
                f"({type(error).__name__}: {_first_line(error)}); check that the inputs match "
                "the model's forward signature, shapes and device."
            ) from error
        finally:
            recorder.detach()
    _add_output(recorder, output)
    graph = OpGraph.from_recorder(recorder)
    if not graph.layers():
        raise Qua2Error(
            f"{type(module).__name__} has no Linear or Conv layer used by its forward call, so "
            "there is nothing to quantize; pass the denoiser module itself."
        )
    return graph


def trace_adapter(adapter: DenoiserAdapter, batch_size: int = 1) -> OpGraph:
    """Trace a :class:`~qua2.models.base.DenoiserAdapter` on its own example inputs."""
    try:
        example = adapter.example_inputs(batch_size)
    except NotImplementedError:
        raise Qua2Error(
            f"model {getattr(adapter, 'name', adapter)!r} provides no example inputs, so it "
            "cannot be traced; implement example_inputs() in its adapter."
        ) from None
    return trace(adapter.module, *example.args, **example.kwargs)


# --------------------------------------------------------------------------- inputs / output
def _add_inputs(recorder: Recorder, module: nn.Module, args: tuple, kwargs: dict) -> None:
    """One ``input`` node per distinct tensor argument, named by its parameter path."""
    try:
        bound = inspect.signature(module.forward).bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):
        bound = {**{str(i): a for i, a in enumerate(args)}, **kwargs}
    for path, tensor in _named_tensors(bound):
        if tensor not in recorder.prov:
            node = recorder.add_node(f"input:{path}", "input", "", type(tensor).__name__,
                                     frozenset())
            recorder.prov[tensor] = Provenance(frozenset({node}))


def _named_tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _named_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _named_tensors(value, f"{prefix}.{i}")


def _add_output(recorder: Recorder, output: Any) -> None:
    preds = frozenset().union(*(recorder.provenance(t).nodes for t in tensors_in(output)))
    if not preds:
        raise Qua2Error("the traced forward call returned no tensor computed from its inputs; "
                        "pass inputs the denoiser actually uses.")
    recorder.add_node("output", "output", "", type(output).__name__, preds)


# --------------------------------------------------------------------------- module state
@contextlib.contextmanager
def _tracing_state(module: nn.Module) -> Iterator[None]:
    """Eval mode and pinned attention for the duration of a trace; both restored after."""
    training = {m: m.training for m in module.modules()}
    swapped = _pin_attention_processors(module)
    module.eval()
    try:
        with _native_attention_backend():
            yield
    finally:
        for m, flag in training.items():
            m.training = flag
        for attention, processor in swapped:
            attention.processor = processor


def _pin_attention_processors(module: nn.Module) -> list[tuple[nn.Module, Any]]:
    """Replace non-SDPA classic processors by ``AttnProcessor2_0``; return what was swapped.

    ``AttnProcessor`` (baddbmm + softmax + bmm), xformers and sliced processors compute the
    same attention with a different op vocabulary; SDPA keeps it one ``attention`` node.
    Family-specific processors (joint, Flux, Hunyuan) already use SDPA and are kept.
    """
    try:
        from diffusers.models.attention_processor import (
            AttnProcessor,
            AttnProcessor2_0,
            SlicedAttnProcessor,
            XFormersAttnProcessor,
        )
    except ImportError:  # diffusers missing: nothing to pin
        return []
    classic = (AttnProcessor, SlicedAttnProcessor, XFormersAttnProcessor)
    swapped = []
    for sub in module.modules():
        processor = getattr(sub, "processor", None)
        if isinstance(processor, classic):
            swapped.append((sub, processor))
            # torch types module attributes as Tensor | Module; diffusers stores processors there
            sub.processor = AttnProcessor2_0()  # type: ignore[assignment]
    return swapped


@contextlib.contextmanager
def _native_attention_backend() -> Iterator[None]:
    """diffusers' attention dispatcher pinned to the native (SDPA) backend, where present."""
    try:
        from diffusers.models.attention_dispatch import attention_backend
    except ImportError:
        yield
        return
    with attention_backend("native"):
        yield


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else "no message"


__all__ = ["RawNode", "trace", "trace_adapter"]
