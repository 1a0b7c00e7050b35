"""Inception FID features from a *local* weights file, without torchvision or a download.

FID (Heusel et al., 2017) is defined on the 2048-d pool features of the TensorFlow Inception
network of 2015. The PyTorch port everyone compares against (pytorch-fid; also used by
torchmetrics / torch-fidelity as "inception-v3-compat") is an Inception-v3 whose Mixed_5*,
Mixed_6b–e and Mixed_7b/c blocks differ from torchvision's in their pooling (average pooling that
excludes padding; max pooling in the last block). This module writes that architecture out with
torchvision's parameter names, so the published ``pt_inception-2015-12-05-6726825d.pth`` state
dict loads as is (``torch.load(weights_only=True)``, no pickle of code) or after conversion to
safetensors (:func:`convert_inception_weights`).

Why hand-written: torchvision, torchmetrics, torch-fidelity and clean-fid are not dependencies
of qua2 and all of them fetch the weights from the internet by default. Caveat, stated plainly:
qua2's tests check the architecture and the loading path on random weights only; agreement with
pytorch-fid's numbers on the real weights has not been verified offline. Pre-processing follows
pytorch-fid by default: quantise to 8-bit levels (as if saved to PNG), bilinear resize to
299×299 without antialiasing, scale to [-1, 1]; clean-fid's antialiased bicubic resize is the
alternative (``metrics.fid_resize``, :data:`FID_RESIZE`), and a study records which it used.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from qua2.errors import Qua2Error
from qua2.paths import sha256_file

INCEPTION_ENV = "QUA2_INCEPTION_WEIGHTS"
#: torch-hub names carry the first 8 hex digits of the file's SHA-256.
FID_WEIGHTS_SHA256_PREFIX = "6726825d"


class BasicConv2d(nn.Sequential):
    """Conv (no bias) → BatchNorm (eps 1e-3) → ReLU; keys ``conv.*`` and ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)
        self.relu = nn.ReLU()


def _avg3(x: torch.Tensor) -> torch.Tensor:
    # The TF graph's average pooling ignores padded zeros; torchvision's counts them.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    """Mixed_5b/c/d: 1×1, 5×5, double 3×3 and pooled branches."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg3(x)),
        ], 1)


class InceptionB(nn.Module):
    """Mixed_6a: grid reduction 35 → 17."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class FIDInceptionC(nn.Module):
    """Mixed_6b–e: factorised 7×7 branches."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        row, col = (0, 3), (3, 0)  # paddings of 1×7 and 7×1 kernels
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=row)
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=col)
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=col)
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=row)
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=col)
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=row)
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dbl = x
        for i in range(1, 6):
            dbl = getattr(self, f"branch7x7dbl_{i}")(dbl)
        return torch.cat([
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            dbl,
            self.branch_pool(_avg3(x)),
        ], 1)


class InceptionD(nn.Module):
    """Mixed_7a: grid reduction 17 → 8."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7,
                          F.max_pool2d(x, 3, stride=2)], 1)


class FIDInceptionE(nn.Module):
    """Mixed_7b (average pool) and Mixed_7c (max pool): expanded filter-bank outputs."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        # The 2015 TF graph's last block max-pools here (a bug there, kept for comparability).
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(b3), self.branch3x3_2b(b3),
            self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl),
            self.branch_pool(pooled),
        ], 1)


class FIDInceptionV3(nn.Module):
    """The FID Inception network up to its 2048-d average-pooled features."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, 32)
        self.Mixed_5c = FIDInceptionA(256, 64)
        self.Mixed_5d = FIDInceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, 128)
        self.Mixed_6c = FIDInceptionC(768, 160)
        self.Mixed_6d = FIDInceptionC(768, 160)
        self.Mixed_6e = FIDInceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: [N, 3, 299, 299] in [-1, 1] → pool features [N, 2048]."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean(dim=(2, 3))


# ------------------------------------------------------------------------------ weights
def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a ``.pth``/``.pt`` state dict (weights only)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise Qua2Error(f"could not read Inception weights from {str(path)!r} ({type(err).__name__}"
                        "); give a .safetensors or .pth state-dict file.") from err
    if not isinstance(state, dict):
        raise Qua2Error(f"{str(path)!r} holds no state dict; give the pt_inception .pth file or a "
                        "safetensors copy of it.")
    return state


def load_fid_inception(path: Path) -> FIDInceptionV3:
    """Build :class:`FIDInceptionV3` and load ``path``; extra ``fc``/``AuxLogits`` keys are ok."""
    net = FIDInceptionV3()
    result = net.load_state_dict(read_state_dict(path), strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    unexpected = [k for k in result.unexpected_keys
                  if not k.startswith(("fc.", "AuxLogits."))]
    if missing or unexpected:
        raise Qua2Error(f"{str(path)!r} is not an FID Inception state dict (missing "
                        f"{missing[:3]}, unexpected {unexpected[:3]}); use "
                        "pt_inception-2015-12-05-6726825d.pth or a safetensors copy of it.")
    return net.eval()


def convert_inception_weights(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a ``.pth`` FID Inception state dict to safetensors (loaded without pickle code)."""
    from safetensors.torch import save_file

    state = read_state_dict(Path(src))
    dst = Path(dst)
    save_file({k: v.contiguous() for k, v in state.items()}, str(dst))
    return dst


#: How images reach Inception's 299×299 input: ``pytorch-fid`` (bilinear, no antialiasing; the
#: convention of most published diffusion FIDs) or ``clean-fid`` (Parmar, Zhang & Zhu, 2022,
#: "On Aliased Resizing and Surprising Subtleties in GAN Evaluation", CVPR: PIL's bicubic with
#: antialiasing on the 8-bit image, channel by channel).
FID_RESIZE = ("pytorch-fid", "clean-fid")


def resize_for_inception(images: torch.Tensor, convention: str = "pytorch-fid") -> torch.Tensor:
    """8-bit-level images in [-1, 1] ``[N, 3, H, W]`` → ``[N, 3, 299, 299]`` by ``convention``.

    Both resizes are linear, so they commute with the [0, 255] → [-1, 1] scaling the two tools
    apply at different points. torch's antialiased bicubic is PIL's filter (Keys' cubic with
    a = −0.5, support widened when downsampling): it matches ``Image.resize(BICUBIC)`` on
    float channels to ~1e-5 of the range (tests/metrics).
    """
    if convention == "clean-fid":
        return F.interpolate(images, size=(299, 299), mode="bicubic", antialias=True,
                             align_corners=False)
    return F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)


class InceptionFeatures:
    """:class:`~qua2.metrics.frechet.FeatureExtractor` of FID's 2048-d Inception features."""

    def __init__(self, net: FIDInceptionV3, weights_sha256: str, batch_size: int = 64,
                 resize: str = "pytorch-fid") -> None:
        if resize not in FID_RESIZE:
            raise Qua2Error(f"unknown FID resize convention {resize!r}; choose one of "
                            f"{', '.join(FID_RESIZE)}.")
        self.net = net.eval()
        self.weights_sha256 = weights_sha256
        self.batch_size = batch_size
        self.resize = resize
        # The convention is part of the features' identity: cached real-image statistics
        # computed under one must never be reused under the other.
        suffix = "" if resize == "pytorch-fid" else f"-{resize}"
        self.id = f"inception-fid-{weights_sha256[:12]}{suffix}"

    @classmethod
    def from_file(cls, path: str | os.PathLike, device: torch.device | str = "cpu",
                  resize: str = "pytorch-fid") -> InceptionFeatures:
        """Load weights from a local ``.pth`` or ``.safetensors`` file."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise Qua2Error(f"Inception weights file {str(path)!r} does not exist; set "
                            f"${INCEPTION_ENV} to the pt_inception-2015-12-05 weights file.")
        return cls(load_fid_inception(path).to(device), sha256_file(path), resize=resize)

    @classmethod
    def from_config(cls, path: str | os.PathLike | None = None,
                    device: torch.device | str = "cpu",
                    resize: str = "pytorch-fid") -> InceptionFeatures:
        """Like :meth:`from_file`, falling back to ``$QUA2_INCEPTION_WEIGHTS``."""
        chosen = path if path is not None else os.environ.get(INCEPTION_ENV)
        if not chosen:
            raise Qua2Error(f"no Inception weights are configured for FID; pass the path of "
                            f"pt_inception-2015-12-05-6726825d.pth (or a safetensors copy) or set "
                            f"${INCEPTION_ENV} (qua2 never downloads metric networks).")
        return cls.from_file(chosen, device, resize)

    @property
    def is_reference_weights(self) -> bool:
        """Whether the file is byte-identical to the published .pth (by its hub hash prefix)."""
        return self.weights_sha256.startswith(FID_WEIGHTS_SHA256_PREFIX)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Images [-1, 1] ``[N, 1|3, H, W]`` → features ``[N, 2048]`` on the CPU."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise Qua2Error(f"Inception FID takes images [N, 1 or 3, H, W] in [-1, 1], got "
                            f"shape {tuple(images.shape)}.")
        dev = next(self.net.parameters()).device
        out = []
        for batch in images.split(self.batch_size):
            x = ((batch.float().clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1
            x = resize_for_inception(x.to(dev).expand(-1, 3, -1, -1), self.resize)
            out.append(self.net(x).cpu())
        return torch.cat(out)
