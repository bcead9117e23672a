"""EngineConfig: serialisation, the configuration hash, and rejection of impossible hardware."""

import hashlib
import json

import pytest

from golden.integer.config import EngineConfig
from golden.integer.train import default_config


def test_round_trip_and_digest():
    config = default_config("lls", "sin", (784, 128, 10), seed=3)
    data = config.to_dict()
    assert json.loads(json.dumps(data)) == data
    again = EngineConfig.from_dict(data)
    assert again == config and again.digest() == config.digest()
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    assert config.digest() == hashlib.sha256(canonical.encode()).hexdigest()
    assert default_config("lls", "sin", (784, 128, 10), seed=4).digest() != config.digest()


def test_field_defaults_are_the_tuned_lls_configuration():
    assert EngineConfig() == default_config("lls", "square", (64, 128, 10))


def test_defaults_are_valid_for_every_rule():
    for rule, basis in (("lls", "square"), ("lls", "sin"), ("lls-m", None), ("drtp", None)):
        for layers in ((64, 128, 10), (784, 128, 10), (784, 256, 128, 10)):
            config = default_config(rule, basis, layers)
            assert max(config.weight_bits) <= config.mult_bits


@pytest.mark.parametrize("changes, field", [
    (dict(layers=(784, 128, 10), weight_bits=(16, 16), weight_frac=(13, 13), init_bits=(6, 6),
          act_shift=(13, 14), lr_shift=(16, 11)), "acc_bits"),
    (dict(weight_bits=(18, 16)), "weight_bits"),
    (dict(rule="bp"), "rule"),
    (dict(basis="cos"), "basis"),
    (dict(activation="gelu"), "activation"),
    (dict(act_shift=(0, 14)), "act_shift"),
    (dict(act_shift=(40, 14)), "act_shift"),
    (dict(lr_shift=(14,)), "lr_shift"),
    (dict(recip_shift=10), "recip_shift"),
    (dict(norm_guard=12), "norm_guard"),
    (dict(delta_shift=11), "delta_shift"),
    (dict(lfsr_poly=(1 << 32) | 1), "lfsr_poly"),
    (dict(init_seed=0), "init_seed"),
    (dict(rounding="truncate"), "rounding"),
    (dict(act_bits=16), "act_bits"),
    (dict(lr_decay=(0, 50)), "lr_decay"),
    (dict(lr_decay=(50, 100)), "lr_decay"),
    (dict(lr_decay=(80, 60)), "lr_decay"),
])
def test_invalid_configurations_name_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"EngineConfig\.{field}: "):
        EngineConfig(**changes)


def test_accumulator_message_explains_the_bound():
    with pytest.raises(ValueError) as error:
        EngineConfig(layers=(784, 128, 10), weight_bits=(16, 16), weight_frac=(13, 13), init_bits=(6, 6),
                     act_shift=(13, 14), lr_shift=(16, 11))
    message = str(error.value)
    assert "fan-in 784" in message and "34 bits" in message


def test_unknown_field_in_dict_is_rejected():
    data = EngineConfig().to_dict()
    data["learning_rate"] = 0.1
    with pytest.raises(ValueError, match="learning_rate"):
        EngineConfig.from_dict(data)
