"""GGUF block quantizers (qua2.quant.gguf): bytes checked against independent decoders (gguf-py's
numpy decoder, diffusers' torch decoder), gguf-py's own quantizer, digests of ggml's reference
quantizer, and error sanity bounds."""

from __future__ import annotations

import hashlib
import itertools
import math

import numpy as np
import pytest
import torch

from qua2.errors import Qua2Error
from qua2.quant.gguf import (
    GGUF_TYPES,
    dequantize_gguf,
    gguf_bits_per_weight,
    gguf_block_size,
    quantize_gguf,
)

gguf = pytest.importorskip("gguf")

QTYPE = {t: gguf.GGMLQuantizationType[t.upper()] for t in GGUF_TYPES}
K_QUANTS = ("q2_k", "q3_k", "q4_k", "q5_k", "q6_k")
#: Bits of each code (a weight's index), not counting the block scales.
CODE_BITS = {"q8_0": 8, "q5_0": 5, "q5_1": 5, "q4_0": 4, "q4_1": 4, "iq4_nl": 4,
             "q2_k": 2, "q3_k": 3, "q4_k": 4, "q5_k": 5, "q6_k": 6}


# Test weights come from integer hashing and IEEE float64 arithmetic (+, ×, /, sqrt) only, so
# they are bit-identical on every CPU (torch.randn is not: its vectorised paths differ between
# instruction sets), and so are the errors compared against fixed bounds below.


def _uniform(count: int, stream: int) -> np.ndarray:
    """splitmix64 → uniform [0, 1) float64: integer arithmetic only, the same on every platform."""
    with np.errstate(over="ignore"):
        z = np.arange(count, dtype=np.uint64) + np.uint64(stream << 32)
        z = z * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _normal(shape: tuple[int, ...], stream: int) -> torch.Tensor:
    """≈ N(0, 1): Irwin-Hall, the sum of 12 uniforms minus 6."""
    n = math.prod(shape)
    x = sum(_uniform(n, 100 * stream + i) for i in range(12)) - 6.0
    return torch.from_numpy(x.reshape(shape).astype(np.float32))


def _student_t2(shape: tuple[int, ...], stream: int) -> torch.Tensor:
    """Student-t with 2 degrees of freedom by inversion: (2u − 1) / sqrt(2u(1 − u))."""
    u = _uniform(math.prod(shape), 100 * stream).clip(1e-9, 1 - 1e-9)
    t = (2 * u - 1) / np.sqrt(2 * u * (1 - u))
    return torch.from_numpy(t.reshape(shape).astype(np.float32))


def _matrices() -> dict[str, torch.Tensor]:
    out = {"normal": _normal((8, 512), 1), "student_t2": _student_t2((8, 512), 2)}
    outliers = _normal((3, 256), 3)
    outliers.view(-1)[::131] *= 50  # 6 outliers
    out["outliers"] = outliers
    special = _normal((8, 512), 4)
    special[1, :256] = 0.0  # an all-zero super-block (and 32-/16-blocks)
    special[2, 256:] = 0.3  # a constant positive super-block
    special[3, 32:64] = 0.0  # a zero sub-block inside a random super-block
    special[4, 64:96] = -0.8  # a constant negative sub-block
    special[5, :16] = 0.0  # a zero 16-weight sub-block (Q2_K/Q3_K/Q6_K)
    special[6, 480:] = 1.5  # a constant positive 32-block
    out["zero_const"] = special
    return out


MATRICES = _matrices()
_CACHE: dict[tuple[str, str], torch.Tensor] = {}


def _quantized(type_name: str, matrix: str) -> torch.Tensor:
    key = (type_name, matrix)
    if key not in _CACHE:
        _CACHE[key] = quantize_gguf(MATRICES[matrix], type_name)
    return _CACHE[key]


def _rel_err(w: torch.Tensor, w_hat: torch.Tensor) -> float:
    return float(((w - w_hat) ** 2).sum() / (w**2).sum())


def test_type_tables_match_gguf():
    assert GGUF_TYPES == ("q8_0", "q5_0", "q5_1", "q4_0", "q4_1", "iq4_nl",
                          "q2_k", "q3_k", "q4_k", "q5_k", "q6_k")
    for t in GGUF_TYPES:
        block, size = gguf.GGML_QUANT_SIZES[QTYPE[t]]
        assert gguf_block_size(t) == block
        assert gguf_bits_per_weight(t) == 8 * size / block
        assert quantize_gguf(torch.zeros(2, block), t).shape == (2, size)
    assert gguf_bits_per_weight("q4_k") == 4.5
    assert gguf_bits_per_weight("Q3_K") == 3.4375
    assert gguf_bits_per_weight("q6_k") == 6.5625


# ----------------------------------------------------------------- ggml's reference quantizer


def _golden_matrix() -> torch.Tensor:
    """(6, 512) float32 built without any RNG library: small and unit normals (Irwin-Hall), a
    heavy-tailed ratio row, 50× outliers, zero / constant / integer / bf16-valued blocks, an
    all-zero super-block and an all-positive one."""
    k = 512
    normal = sum(_uniform(6 * k, s) for s in range(4)).reshape(6, k) - 2.0
    rows = np.empty((6, k), dtype=np.float64)
    rows[0] = normal[0] * 0.02
    rows[1] = normal[1]
    rows[2] = (_uniform(k, 4) - 0.5) / (_uniform(k, 5) + 1e-3)
    rows[3] = normal[3]
    rows[3, ::97] *= 50.0
    rows[4, :32] = 0.0
    rows[4, 32:64] = 0.7
    rows[4, 64:96] = -1.25
    rows[4, 96:256] = np.floor(_uniform(160, 6) * 16) - 8
    bits = normal[4, 256:].astype(np.float32).view(np.uint32) & np.uint32(0xFFFF0000)
    rows[4, 256:] = bits.view(np.float32)
    rows[5, :256] = 0.0
    rows[5, 256:] = _uniform(256, 7) + 0.25
    return torch.from_numpy(rows.astype(np.float32))


#: sha256 (first 32 hex digits) of the bytes ggml's reference quantizers write for
#: ``_golden_matrix()``: ``quantize_row_<type>_ref`` (``quantize_iq4_nl`` for IQ4_NL, what
#: ``ggml_quantize_chunk`` calls without an importance matrix) from ggml/src/ggml-quants.c as
#: vendored in llama-cpp-python 0.3.36, compiled with ``gcc -O2 -DNDEBUG`` on x86-64 (no FMA
#: contraction). A one-off measurement; the harness is not part of this repository.
GGML_REFERENCE_SHA256 = {
    "q8_0": "bad4cd9cba7c780e3836b36774511c5b",
    "q5_0": "29cbf835e08b755ece8d174554629b39",
    "q5_1": "16fdec4f3b3265d4cf6fe2f01c61c97a",
    "q4_0": "1a8774859bf0f2896fc4da7b9f662be3",
    "q4_1": "8a0b126f35748b5248c44f7d9fef9f6e",
    "iq4_nl": "9d0753ae9a602fdef859c3643e6dcdff",
    "q2_k": "ae5de34b343dc61685a63d3f39bb0173",
    "q3_k": "447f51a81d1afce1566d466a8d50366e",
    "q4_k": "7298649e852a363f410f5714394a2607",
    "q5_k": "699e782c5360b9538b97db073d92be85",
    "q6_k": "9fc21ad3626c1bfcbf5687098f405214",
}


@pytest.mark.parametrize("type_name", GGUF_TYPES)
def test_bytes_equal_ggml_reference(type_name):
    raw = quantize_gguf(_golden_matrix(), type_name)
    digest = hashlib.sha256(raw.numpy().tobytes()).hexdigest()[:32]
    assert digest == GGML_REFERENCE_SHA256[type_name]


# ------------------------------------------------------------------------ independent decoders


@pytest.mark.parametrize("matrix", sorted(MATRICES))
@pytest.mark.parametrize("type_name", GGUF_TYPES)
def test_gguf_numpy_decoder_agrees(type_name, matrix):
    """gguf-py decodes in float32 in ggml's order ((d·sc)·q − dmin·m), as we do: bit-equal."""
    raw = _quantized(type_name, matrix)
    w = MATRICES[matrix]
    theirs = gguf.quants.dequantize(raw.numpy(), QTYPE[type_name])
    assert theirs.shape == tuple(w.shape)
    assert torch.equal(torch.from_numpy(np.ascontiguousarray(theirs)),
                       dequantize_gguf(raw, type_name, w.shape))


@pytest.mark.parametrize("matrix", sorted(MATRICES))
@pytest.mark.parametrize("type_name", GGUF_TYPES)
def test_diffusers_decoders_agree(type_name, matrix):
    from diffusers.quantizers.gguf.utils import (
        GGUFParameter,
        dequantize_functions,
        dequantize_gguf_tensor,
    )

    raw = _quantized(type_name, matrix)
    w = MATRICES[matrix]
    ours = dequantize_gguf(raw, type_name, w.shape)
    block, size = gguf.GGML_QUANT_SIZES[QTYPE[type_name]]
    # The block functions with float32 arithmetic: bit-equal.
    f32 = dequantize_functions[QTYPE[type_name]](raw.reshape(-1, size), block, size,
                                                 dtype=torch.float32)
    assert torch.equal(f32.reshape(w.shape), ours)
    # diffusers' own path (GGUFLinear → dequantize_gguf_tensor) passes no dtype, so it keeps
    # the fp16 scales and computes in float16 (IQ4_NL: float32, its levels are float32).
    fp16_path = dequantize_gguf_tensor(GGUFParameter(raw, quant_type=QTYPE[type_name]))
    if type_name == "iq4_nl":
        assert torch.equal(fp16_path, ours)
    elif type_name in ("q8_0", "q5_0", "q4_0"):
        # d·q is exact in float32 (11-bit d times ≤ 8-bit q), so float16 rounds it once.
        assert torch.equal(fp16_path, ours.half())
    else:
        # ≤ 4 float16 roundings (d·sc, ·q, dmin·m, the subtraction / + m), each ≤ 2⁻¹¹ of an
        # intermediate ≤ 2·M, M = the block's largest |ŵ|: |Δ| ≤ 8·2⁻¹¹·M.
        dev = (fp16_path.float() - ours).reshape(-1, block).abs()
        bound = 8 * 2.0**-11 * ours.reshape(-1, block).abs().amax(1, keepdim=True)
        assert bool((dev <= bound).all())


@pytest.mark.parametrize("matrix", sorted(MATRICES))
@pytest.mark.parametrize("type_name", GGUF_TYPES)
def test_gguf_numpy_quantizer_agrees(type_name, matrix):
    """gguf-py 0.19 quantizes Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (a numpy port of ggml's reference):
    byte-equal. It cannot quantize IQ4_NL or the K-quants; those are checked against ggml's
    reference digests above."""
    w = MATRICES[matrix]
    try:
        theirs = gguf.quants.quantize(w.numpy(), QTYPE[type_name])
    except NotImplementedError:
        assert type_name == "iq4_nl" or type_name in K_QUANTS
        return
    assert type_name in ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0")
    assert np.array_equal(theirs, _quantized(type_name, matrix).numpy())


# ------------------------------------------------------------------------- error sanity bounds


def _f16(t: torch.Tensor) -> torch.Tensor:
    return t.half().float()


def _super_scaled(v: torch.Tensor, levels: int) -> torch.Tensor:
    """Non-negative sub-block values ``(S, J)`` as integers 0..levels × fp16 ``max/levels``."""
    d = _f16(v.amax(1, keepdim=True) / levels)
    return d * torch.round(v / torch.where(d > 0, d, torch.ones_like(d))).clamp(0, levels)


def _rtn_affine(w, n, nmax, levels):
    """Plain min/max round-to-nearest in the Q2_K/Q4_K/Q5_K format (sub-block scale and min
    quantized to ``levels`` steps of fp16 super-block scales)."""
    x = w.reshape(-1, 256 // n, n)
    lo, hi = x.amin(2).clamp(max=0), x.amax(2)
    dl, ml = _super_scaled((hi - lo) / nmax, levels), _super_scaled(-lo, levels)
    q = torch.round((x + ml[..., None]) / torch.where(dl > 0, dl, 1.0)[..., None]).clamp(0, nmax)
    return (dl[..., None] * q - ml[..., None]).reshape(w.shape)


def _signed_absmax(x, dim):
    return x.gather(dim, x.abs().argmax(dim, keepdim=True)).squeeze(dim)


def _rtn_symmetric(w, n, qmin, qmax, levels):
    """Plain max-abs round-to-nearest in the Q3_K/Q6_K format (signed sub-block scales quantized
    to ``levels`` steps of an fp16 super-block scale)."""
    x = w.reshape(-1, 256 // n, n)
    s = _signed_absmax(x, 2) / qmin
    d = _f16(_signed_absmax(s, 1)[:, None] / -levels)
    dl = d * torch.round(s / torch.where(d != 0, d, 1.0)).clamp(-levels, levels - 1)
    q = torch.round(x / torch.where(dl != 0, dl, 1.0)[..., None]).clamp(qmin, qmax)
    return (dl[..., None] * q).reshape(w.shape)


def _rtn_iq4_nl(w):
    """The IQ4_NL levels with the plain ``d = max/-127`` scale and nearest-level codes."""
    values = torch.tensor([-127., -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89,
                           113])
    x = w.reshape(-1, 32)
    d = _f16(_signed_absmax(x, 1)[:, None] / -127)
    k = (x / torch.where(d != 0, d, 1.0))[..., None]
    return (d * values[(k - values).abs().argmin(-1)]).reshape(w.shape)


BASELINES = {
    "q2_k": lambda w: _rtn_affine(w, 16, 3, 15),
    "q3_k": lambda w: _rtn_symmetric(w, 16, -4, 3, 32),
    "q4_k": lambda w: _rtn_affine(w, 32, 15, 63),
    "q5_k": lambda w: _rtn_affine(w, 32, 31, 63),
    "q6_k": lambda w: _rtn_symmetric(w, 16, -32, 31, 128),
    "iq4_nl": _rtn_iq4_nl,
}


#: Light-tailed matrices, where every reference search beats plain rounding in squared error
#: (measured ratios 0.80–0.95). On heavy tails the searches' *weighted* objectives (Q2_K:
#: |x|-weighted absolute error; Q3_K, Q6_K, IQ4_NL: x²-weighted; Q4_K/Q5_K: (rms+|x|)-weighted)
#: and the unweighted squared error disagree, and the reference can lose slightly (measured
#: Q3_K 1.003× with outliers, IQ4_NL 1.051× on Student-t₂; elsewhere 0.41–1.00×). That is
#: ggml's behaviour, not ours — the bytes equal ggml's (test_bytes_equal_ggml_reference, whose
#: matrix has heavy tails and outliers too) — so there the bound is only a sanity check.
LIGHT_TAILED = ("normal", "zero_const")


@pytest.mark.parametrize("matrix", sorted(MATRICES))
@pytest.mark.parametrize("type_name", sorted(BASELINES))
def test_search_beats_plain_rounding_in_same_format(type_name, matrix):
    """Reference error vs plain round-to-nearest in the same format (same sub-block sizes, same
    quantized sub-block scales): never worse on light tails, within 1.25× on heavy tails."""
    w = MATRICES[matrix]
    ours = _rel_err(w, dequantize_gguf(_quantized(type_name, matrix), type_name, w.shape))
    plain = _rel_err(w, BASELINES[type_name](w))
    assert ours <= plain * (1.0 if matrix in LIGHT_TAILED else 1.25)


def test_errors_follow_the_bits():
    """On normal weights each extra code bit cuts the squared error ≈4× (6 dB/bit): K-quant
    errors are strictly ordered with ratios in [3, 6], and every type's relative error lies
    within [1, 2] × 4^-bits."""
    w = _normal((16, 1024), 5)
    err = {t: _rel_err(w, dequantize_gguf(quantize_gguf(w, t), t, w.shape)) for t in GGUF_TYPES}
    for lower, higher in itertools.pairwise(K_QUANTS):
        assert 3 <= err[lower] / err[higher] <= 6, (lower, higher, err)
    for t, e in err.items():
        assert 1.0 <= e * 4 ** CODE_BITS[t] <= 2.0, (t, e)
    assert err["iq4_nl"] < err["q4_0"]  # same 4.5 bits per weight, non-linear levels win
    assert err["q4_k"] < err["q4_1"]


# ----------------------------------------------------------------------- shapes and bad input


@pytest.mark.parametrize("type_name", GGUF_TYPES)
def test_shapes_round_trip(type_name):
    block, size = gguf.GGML_QUANT_SIZES[QTYPE[type_name]]
    for i, shape in enumerate([(3, 256), (2, 512), (512,), (2, 4, 8, 8)]):  # conv: (O, I, kh, kw)
        w = _normal(shape, 10 + i)
        raw = quantize_gguf(w, type_name)
        rows = shape[0] if len(shape) > 1 else 1
        assert raw.dtype == torch.uint8
        assert raw.shape == (rows, w.numel() // rows // block * size)
        w_hat = dequantize_gguf(raw, type_name, shape)
        assert w_hat.shape == shape and w_hat.dtype == torch.float32
        assert _rel_err(w, w_hat) < 0.15
        assert torch.equal(dequantize_gguf(raw.reshape(-1), type_name, shape), w_hat)
    # Half-precision weights are read exactly as float32.
    wh = _normal((2, 256), 20).to(torch.bfloat16)
    assert torch.equal(quantize_gguf(wh, type_name), quantize_gguf(wh.float(), type_name))


@pytest.mark.parametrize("type_name", GGUF_TYPES)
def test_row_length_not_a_multiple_is_refused(type_name):
    block = gguf_block_size(type_name)
    with pytest.raises(Qua2Error) as info:
        quantize_gguf(torch.randn(4, 100), type_name)
    message = str(info.value)
    assert type_name in message and "100" in message and f"multiple of {block}" in message
    with pytest.raises(Qua2Error, match="multiple of"):
        dequantize_gguf(torch.zeros(10, dtype=torch.uint8), type_name, (4, 100))


def test_bad_input_is_refused():
    with pytest.raises(Qua2Error, match="unknown GGUF type"):
        quantize_gguf(torch.randn(2, 256), "q4_2")
    with pytest.raises(Qua2Error, match="NaN or infinite"):
        quantize_gguf(torch.tensor([[math.inf] + [0.0] * 31]), "q8_0")
    raw = quantize_gguf(torch.randn(2, 256), "q4_k")
    with pytest.raises(Qua2Error, match="bytes"):
        dequantize_gguf(raw[:, :-1], "q4_k", (2, 256))
    with pytest.raises(Qua2Error, match="uint8"):
        dequantize_gguf(raw.to(torch.int16), "q4_k", (2, 256))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("type_name", GGUF_TYPES)
def test_cuda_matches_cpu(type_name):
    w = _golden_matrix()
    raw = quantize_gguf(w.cuda(), type_name)
    assert raw.is_cuda
    assert torch.equal(raw.cpu(), quantize_gguf(w, type_name))
    assert torch.equal(dequantize_gguf(raw, type_name, w.shape).cpu(),
                       dequantize_gguf(raw.cpu(), type_name, w.shape))
