"""The weight checksum's definition (``rtl.layer_geometry.weight_checksum``), against a byte-by-byte
reference written from its docstring; the engine tests compare the RTL's checksum with it."""

import zlib

import numpy as np
import pytest
import torch

from golden.integer.network import IntegerNetwork
from golden.integer.train import default_config
from rtl.layer_geometry import LayerGeometry, fold_word, pack_weights, weight_checksum


def reference_checksum(geometry, weights, biases):
    """Word by word with Python ints: lanes -> bytes -> 32-bit chunks -> rotated XOR -> CRC-32."""
    lane_bytes = geometry.checksum_lane_bits // 8
    value = 0
    for words in pack_weights(geometry, weights, biases):
        for word in words.tolist():
            raw = b"".join(int(w).to_bytes(lane_bytes, "little", signed=True) for w in word)
            raw += bytes(-len(raw) % 4)
            folded = 0
            for j in range(len(raw) // 4):
                c = int.from_bytes(raw[4 * j:4 * j + 4], "little")
                r = j % 32
                folded ^= ((c << r) | (c >> (32 - r))) & 0xFFFFFFFF
            value = zlib.crc32(folded.to_bytes(4, "little"), value)
    return value


@pytest.mark.parametrize("lanes", [1, 3, 8, 24, 64])
def test_checksum_matches_its_definition(lanes):
    config = default_config("drtp", None, (20, 13, 10))
    net = IntegerNetwork(config)
    geo = LayerGeometry(config, lanes)
    assert weight_checksum(geo, net.weights, net.biases) == reference_checksum(geo, net.weights, net.biases)


def test_fold_rotates_each_chunk_by_its_index():
    assert fold_word([0x1, 0x1]) == 0x3
    assert fold_word([0x80000000, 0x80000000]) == 0x80000001
    assert fold_word([0x1] * 33) == fold_word([0x1] * 32) ^ 0x1


@pytest.mark.parametrize("lanes", [8, 24])
def test_checksum_sees_every_weight(lanes):
    """A change of one LSB anywhere (any lane, any layer, biases too) changes the checksum."""
    config = default_config("drtp", None, (12, 17, 10))
    net = IntegerNetwork(config)
    geo = LayerGeometry(config, lanes)
    base = weight_checksum(geo, net.weights, net.biases)
    for k in range(config.n_layers):
        for tensor in (net.weights[k], net.biases[k]):
            flat = tensor.view(-1)
            for i in range(flat.numel()):
                flat[i] += 1
                assert weight_checksum(geo, net.weights, net.biases) != base, (k, i)
                flat[i] -= 1
    assert weight_checksum(geo, net.weights, net.biases) == base
