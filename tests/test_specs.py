import pytest

from qua2.errors import Qua2Error
from qua2.specs import QuantConfig, QuantOption, SearchSpace


def test_option_key_round_trip():
    for option in [QuantOption("uaq", 4), QuantOption("group", 3, 64), QuantOption("rtn", 8)]:
        assert QuantOption.parse(option.key) == option
        assert QuantOption.from_dict(option.to_dict()) == option


@pytest.mark.parametrize("bits", [1, 9, 3.5, "4"])
def test_bits_out_of_range_rejected(bits):
    with pytest.raises(Qua2Error, match="bits must be an integer from 2 to 8"):
        QuantOption("uaq", bits)


def test_group_size_rules():
    with pytest.raises(Qua2Error, match="needs a positive integer group_size"):
        QuantOption("group", 4)
    with pytest.raises(Qua2Error, match="takes no group_size"):
        QuantOption("uaq", 4, 32)


@pytest.mark.parametrize("key", ["uaq", "uaq-4", "uaq-w4-x2", "group-w3-gx"])
def test_bad_option_keys(key):
    with pytest.raises(Qua2Error, match="cannot read quantization option"):
        QuantOption.parse(key)


def test_grid_space():
    space = SearchSpace.grid(["uaq", "kmeans_c", "group"], [3, 4], group_sizes=[32, 64])
    assert len(space) == 2 + 2 + 4
    assert space.bits == (3, 4)
    assert SearchSpace.from_dict(space.to_dict()) == space
    assert space.digest() != SearchSpace.grid(["uaq"], [3, 4]).digest()
    with pytest.raises(Qua2Error, match="needs group_sizes"):
        SearchSpace.grid(["group"], [4])


def test_config_is_order_independent_and_serialises():
    a = QuantConfig({"b": QuantOption("uaq", 3), "a": QuantOption("kmeans_a", 4)})
    b = QuantConfig({"a": QuantOption("kmeans_a", 4), "b": QuantOption("uaq", 3)})
    assert a == b and hash(a) == hash(b) and a.digest() == b.digest()
    assert QuantConfig.from_dict(a.to_dict()) == a
    assert a.digest() != QuantConfig({"a": QuantOption("kmeans_a", 3)}).digest()


def test_config_validation_names_the_offender():
    space = SearchSpace.grid(["uaq"], [3, 4])
    config = QuantConfig({"blocks.0.attn.to_q": QuantOption("uaq", 4)})
    config.validate(["blocks.0.attn.to_q"], space)
    with pytest.raises(Qua2Error, match=r"'blocks.0.attn.to_q'.*similar: blocks.1.attn.to_q"):
        config.validate(["blocks.1.attn.to_q"], space)
    with pytest.raises(Qua2Error, match="search space does not cover"):
        QuantConfig({"x": QuantOption("uaq", 2)}).validate(["x"], space)


def test_config_version_checked():
    with pytest.raises(Qua2Error, match="format version 99"):
        QuantConfig.from_dict({"version": 99, "layers": {}})
