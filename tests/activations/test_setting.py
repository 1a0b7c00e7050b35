"""ActivationSetting: round trip, labels, and bad settings rejected with one clear sentence."""

from __future__ import annotations

import json

import pytest

from qua2.activations.setting import ActivationSetting
from qua2.errors import Qua2Error


def test_round_trip_through_json():
    setting = ActivationSetting(bits=6, mode="static", calibration="ndtc", objective="mse",
                                keep_fp=["pos_embed.proj", "proj_out*"], qkv_bits=8,
                                softmax_bits=8, timestep_groups=4, bos_fp=True,
                                calibration_size=128)
    data = json.loads(json.dumps(setting.to_dict()))
    assert ActivationSetting.from_dict(data) == setting
    assert setting.keep_fp == ("pos_embed.proj", "proj_out*")


def test_labels():
    assert ActivationSetting(bits=6).label == "A6"
    assert ActivationSetting(bits=8, mode="static", calibration="ndtc").label == "A8-ndtc"
    assert ActivationSetting(bits=8, softmax_bits=6).label == "A8-qkvfp-sm6"
    static = ActivationSetting(bits=8, mode="static", calibration="single_step",
                               timestep_groups=2, bos_fp=True)
    assert static.label == "A8-single_step-g2-bos"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"bits": 3}, "activation bits must be an integer from 4 to 8"),
    ({"bits": 9}, "activation bits must be an integer from 4 to 8"),
    ({"bits": "8"}, "activation bits must be an integer"),
    ({"bits": True}, "activation bits must be an integer"),
    ({"softmax_bits": 12}, "activation softmax_bits must be an integer from 4 to 8 or null"),
    ({"qkv_bits": 2}, "activation qkv_bits"),
    ({"mode": "online"}, "unknown activation mode 'online'"),
    ({"mode": "static", "calibration": "ndtcc"}, "unknown calibration method 'ndtcc'"),
    ({"mode": "static"}, "unknown calibration method None"),
    ({"calibration": "ndtc"}, "dynamic activation quantization needs no calibration"),
    ({"objective": "l3"}, "unknown range-search objective 'l3'"),
    ({"calibration_size": 0}, "the calibration set cannot be empty"),
    ({"timestep_groups": 0}, "timestep_groups must be a positive integer"),
    ({"timestep_groups": 2}, "timestep_groups applies to static ranges only"),
    ({"keep_fp": [""]}, "keep_fp must be a list of layer names"),
    ({"p": -1.0}, "the L_p exponent p must be a positive number"),
])
def test_bad_settings_are_rejected(kwargs, message):
    with pytest.raises(Qua2Error, match=message) as info:
        ActivationSetting(**kwargs)
    text = str(info.value)
    assert text.endswith(".") and "\n" not in text


def test_from_dict_rejects_unknown_keys_and_versions():
    with pytest.raises(Qua2Error, match=r"unknown key\(s\) \['bitz'\]"):
        ActivationSetting.from_dict({"bitz": 8})
    with pytest.raises(Qua2Error, match="format version 99"):
        ActivationSetting.from_dict({"version": 99, "bits": 8})
    with pytest.raises(Qua2Error, match="must be a mapping"):
        ActivationSetting.from_dict([8])  # type: ignore[arg-type]
