"""prepare_activations (what a study calls once) and first_last_layers."""

from __future__ import annotations

import pytest
import torch

import qua2.activations.prepare as prepare_module
from qua2.activations import ActivationSetting, first_last_layers, prepare_activations
from qua2.errors import Qua2Error


def test_dynamic_needs_no_calibration(dit_adapter):
    acts = prepare_activations(dit_adapter, ActivationSetting(bits=6))
    assert acts.ranges is None and acts.label == "A6"
    with acts.apply(dit_adapter.module) as handle:
        assert handle.sites


def test_static_is_calibrated_once_and_cached(dit_adapter, dit_inputs, tmp_path, monkeypatch):
    setting = ActivationSetting(bits=8, mode="static", calibration="single_step",
                                calibration_size=4)
    acts = prepare_activations(dit_adapter, setting, conditions=[1, 2], cache_dir=tmp_path,
                               steps=3)
    assert len(list(tmp_path.glob("ranges-A8-single_step-*.safetensors"))) == 1

    def no_recalibration(*args, **kwargs):
        raise AssertionError("cached ranges should have been loaded")

    monkeypatch.setattr(prepare_module, "calibrate_ranges", no_recalibration)
    again = prepare_activations(dit_adapter, setting, conditions=[1, 2], cache_dir=tmp_path,
                                steps=3)
    assert all(torch.equal(acts.ranges.ranges[k], again.ranges.ranges[k])
               for k in acts.ranges.ranges)
    example = dit_inputs()
    with torch.no_grad():
        reference = dit_adapter.module(*example.args, **example.kwargs)[0]
        with again.apply(dit_adapter.module):
            out = dit_adapter.module(*example.args, **example.kwargs)[0]
    assert 0 < (out - reference).abs().max() < reference.abs().max()


def test_static_needs_conditions(dit_adapter):
    setting = ActivationSetting(bits=8, mode="static", calibration="ndtc")
    with pytest.raises(Qua2Error, match="needs conditions"):
        prepare_activations(dit_adapter, setting)


def test_first_last_layers_follow_execution_order(tiny_dit, dit_inputs):
    assert first_last_layers(tiny_dit, dit_inputs()) == ["pos_embed.proj", "proj_out_2"]


def test_first_layer_of_a_unet_is_conv_in():
    from qua2.models.architectures import tiny_denoiser

    module, inputs = tiny_denoiser("unet2d")
    assert first_last_layers(module, inputs) == ["conv_in", "conv_out"]
