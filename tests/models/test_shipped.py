"""The shipped digits weights (qua2/shipped.py): used by default, checked, and never silently
replaced; training stays available as an explicit option."""

import json
import shutil

import pytest
import torch

from qua2.errors import Qua2Error
from qua2.models import digits
from qua2.models.registry import load_model
from qua2.shipped import MANIFEST, SHIPPED_DIR


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a shipped model was trained instead of loaded")

    monkeypatch.setattr(digits, "train_digits_model", refuse)


@pytest.mark.parametrize("name", ["digits-dit", "digits-unet"])
def test_default_models_load_the_shipped_float16_weights_without_training(name, no_training):
    entry = json.loads(MANIFEST.read_text())[name]
    spec = digits.SPECS[name]
    assert entry["key"] == json.loads(json.dumps(digits.digits_key(spec, spec.recipe),
                                                 default=list))  # the code's recipe
    adapter = load_model(name)
    for parameter in adapter.module.parameters():
        assert parameter.dtype == torch.float32
        assert torch.equal(parameter.half().float(), parameter)  # exactly the float16 file


def test_a_damaged_shipped_file_is_refused_with_its_fix(tmp_path, monkeypatch, no_training):
    copy = tmp_path / "shipped"
    shutil.copytree(SHIPPED_DIR, copy)
    data = bytearray((copy / "digits-dit.safetensors").read_bytes())
    data[-7] ^= 0xFF
    (copy / "digits-dit.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr("qua2.shipped.SHIPPED_DIR", copy)
    monkeypatch.setattr("qua2.shipped.MANIFEST", copy / "manifest.json")
    with pytest.raises(Qua2Error, match=r"damaged .*retrain: true"):
        load_model("digits-dit")


def test_retrain_is_an_explicit_option(tmp_path, monkeypatch):
    """``model.options: {retrain: true}`` trains the default recipe instead of loading."""
    monkeypatch.setenv("QUA2_CACHE_DIR", str(tmp_path))
    trained = []

    def quick_train(spec, recipe):  # the real loop is tested with train_steps elsewhere
        trained.append(recipe)
        return digits._build(spec)

    monkeypatch.setattr(digits, "train_digits_model", quick_train)
    load_model("digits-dit", retrain=True)
    assert trained == [digits.SPECS["digits-dit"].recipe]
    assert (digits.model_dir(digits.SPECS["digits-dit"], trained[0]) / "model.safetensors"
            ).exists()
