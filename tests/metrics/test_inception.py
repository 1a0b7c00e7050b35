"""Inception FID: architecture and loading path on random weights (no real weights offline)."""

import pytest
import torch
from safetensors.torch import save_file

from qua2.errors import Qua2Error
from qua2.metrics.inception import FIDInceptionV3, InceptionFeatures, convert_inception_weights


def test_parameter_names_and_count_match_torchvision_layout():
    net = FIDInceptionV3()
    names = set(net.state_dict())
    for key in ("Conv2d_1a_3x3.conv.weight", "Mixed_5b.branch_pool.bn.running_var",
                "Mixed_6e.branch7x7dbl_5.conv.weight", "Mixed_7c.branch3x3dbl_3b.bn.bias"):
        assert key in names
    # torchvision's Inception3 without AuxLogits and fc has 21,785,568 parameters.
    assert sum(p.numel() for p in net.parameters()) == 21_785_568


def test_no_weights_configured(monkeypatch, tmp_path):
    monkeypatch.delenv("QUA2_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(Qua2Error, match="QUA2_INCEPTION_WEIGHTS"):
        InceptionFeatures.from_config()
    with pytest.raises(Qua2Error, match="does not exist"):
        InceptionFeatures.from_config(tmp_path / "missing.pth")


def test_wrong_files_rejected(tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(2, 2)}, str(other))
    with pytest.raises(Qua2Error, match="not an FID Inception state dict"):
        InceptionFeatures.from_file(other)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    with pytest.raises(Qua2Error, match="could not read"):
        InceptionFeatures.from_file(junk)


def test_pth_and_safetensors_load_to_same_id(pth_weights, tmp_path):
    from_pth = InceptionFeatures.from_file(pth_weights)
    copy = convert_inception_weights(pth_weights, tmp_path / "inception.safetensors")
    from_st = InceptionFeatures.from_file(copy)
    assert not from_pth.is_reference_weights
    for a, b in zip(from_pth.net.state_dict().values(), from_st.net.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_features_shape_end_to_end(pth_weights, monkeypatch):
    monkeypatch.setenv("QUA2_INCEPTION_WEIGHTS", str(pth_weights))
    features = InceptionFeatures.from_config()
    out = features(torch.rand(2, 1, 8, 8) * 2 - 1)
    assert out.shape == (2, 2048) and torch.isfinite(out).all()


@pytest.mark.parametrize("side", [64, 512])  # upsampled (small models) and downsampled
def test_clean_fid_resize_is_pils_antialiased_bicubic(side):
    import numpy as np
    from PIL import Image

    from qua2.metrics.inception import resize_for_inception

    levels = torch.randint(0, 256, (1, 3, side, side), generator=torch.Generator().manual_seed(0))
    resized = resize_for_inception(levels.float() / 127.5 - 1, "clean-fid")
    pil = np.stack([np.asarray(Image.fromarray(levels[0, c].numpy().astype(np.float32), mode="F")
                               .resize((299, 299), Image.Resampling.BICUBIC))
                    for c in range(3)]) / 127.5 - 1
    # Two implementations of one filter in float32: they agree to ~3e-3 of 255 levels (seen
    # 2.6e-3); 1e-4 in [-1, 1] units (0.013 levels) leaves 5× headroom, while pytorch-fid's
    # bilinear resize differs from PIL's bicubic by more than one level.
    assert np.abs(resized[0].numpy() - pil).max() < 1e-4
    bilinear = resize_for_inception(levels.float() / 127.5 - 1, "pytorch-fid")
    assert np.abs(bilinear[0].numpy() - pil).max() > 1 / 127.5


def test_resize_convention_is_part_of_the_features_identity(pth_weights):
    default = InceptionFeatures.from_file(pth_weights)
    clean = InceptionFeatures.from_file(pth_weights, resize="clean-fid")
    assert default.id != clean.id and clean.id.startswith(default.id)
    with pytest.raises(Qua2Error, match="unknown FID resize convention"):
        InceptionFeatures.from_file(pth_weights, resize="lanczos")
