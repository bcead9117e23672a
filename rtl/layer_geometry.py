"""Where every weight lives: the weight memories' word layout, the word operations that walk it,
and the checksum of what is written (shared by the RTL, its tests and the host tools)."""

import zlib

import numpy as np
from amaranth import unsigned
from amaranth.lib import data, enum
from amaranth.utils import ceil_log2

__all__ = ["OpKind", "LayerGeometry", "op_layout", "pack_weights", "CHECKSUM_CHUNK_BITS", "fold_word",
           "weight_checksum"]


class OpKind(enum.Enum, shape=1):
    """What the lanes do with one weight word."""
    FORWARD = 0
    UPDATE = 1


class LayerGeometry:
    """Sizes and memory map of an :class:`~golden.integer.config.EngineConfig` on ``lanes`` lanes.

    Layer ``k``'s ``N_k`` outputs are split into ``G_k = ceil(N_k / P)`` groups of ``P`` lanes
    (the last one padded). Its weight memory holds ``G_k * (M_k + 1)`` words of ``P`` weights:
    word ``g * (M_k + 1)`` holds the biases ``b[gP + p]`` and word ``g * (M_k + 1) + 1 + m``
    holds ``W[gP + p, m]``, lane ``p`` in bits ``p * weight_bits[k]``. Padding lanes hold 0.
    A forward pass and an update both read the words in address order.
    """

    def __init__(self, config, lanes):
        if lanes < 1:
            raise ValueError(f"need at least one MAC lane, got {lanes}")
        self.config = config
        self.lanes = P = lanes
        self.n_layers = L = config.n_layers
        self.fan_in = tuple(config.layers[k] for k in range(L))
        self.fan_out = tuple(config.layers[k + 1] for k in range(L))
        self.groups = tuple((n + P - 1) // P for n in self.fan_out)
        self.words = tuple(g * (m + 1) for g, m in zip(self.groups, self.fan_in))
        # Lanes holding a real neuron in each layer's last group.
        self.last_real = tuple(n - (g - 1) * P for n, g in zip(self.fan_out, self.groups))
        self.addr_bits = max(ceil_log2(w) for w in self.words) or 1
        self.layer_shape = unsigned(ceil_log2(L) or 1)
        self.max_groups = max(self.groups)
        self.max_fan_in = max(self.fan_in)
        self.max_fan_out = max(self.fan_out)
        # The checksum sees every lane sign-extended to whole bytes.
        self.checksum_lane_bits = 8 * ((max(config.weight_bits) + 7) // 8)

    def real_lanes(self, k, g):
        return self.last_real[k] if g == self.groups[k] - 1 else self.lanes

    @property
    def busy_per_step(self):
        """Lane-cycles of useful work in one training step: every weight and bias, twice."""
        return 2 * sum((m + 1) * n for m, n in zip(self.fan_in, self.fan_out))

    @property
    def issue_cycles_per_step(self):
        """Cycles of one training step's word issues (forward + update): the lower bound."""
        return 2 * sum(self.words)


def op_layout(geometry):
    """One word operation: issued by the sequencer, one per cycle at most."""
    return data.StructLayout({
        "kind": OpKind,
        "layer": geometry.layer_shape,
        "group": range(geometry.max_groups),
        "word": range(geometry.max_fan_in + 1),
        "addr": unsigned(geometry.addr_bits),
        # The group's last word: a forward pass hands its sums to the requantiser after it.
        "last": 1,
    })


def pack_weights(geometry, weights, biases):
    """The weight memories' contents: per layer an ``int64`` array ``(words, P)``.

    ``weights[k]`` is ``(N_k, M_k)``, ``biases[k]`` is ``(N_k,)`` (tensors or arrays).
    """
    P = geometry.lanes
    out = []
    for k in range(geometry.n_layers):
        M, N, G = geometry.fan_in[k], geometry.fan_out[k], geometry.groups[k]
        w = np.zeros((G * P, M + 1), dtype=np.int64)
        w[:N, 0] = np.asarray(biases[k], dtype=np.int64)
        w[:N, 1:] = np.asarray(weights[k], dtype=np.int64)
        # (G, P, M+1) -> (G, M+1, P) -> words in address order.
        out.append(w.reshape(G, P, M + 1).transpose(0, 2, 1).reshape(G * (M + 1), P))
    return out


CHECKSUM_CHUNK_BITS = 32  #: the checksum folds every written word to this width before its CRC


def fold_word(chunks):
    """The fold of one word's ``32``-bit chunks (chunk 0 = the low bits): ``XOR_j rotl(c_j, j)``.

    Works on Python ints and on ``uint64`` NumPy arrays alike (element-wise).
    """
    mask = (1 << CHECKSUM_CHUNK_BITS) - 1
    folded = 0
    for j, c in enumerate(chunks):
        r = j % CHECKSUM_CHUNK_BITS
        folded = folded ^ ((((c << r) & mask) | (c >> (CHECKSUM_CHUNK_BITS - r))) if r else c)
    return folded


def weight_checksum(geometry, weights, biases):
    """The weight checksum of :class:`~rtl.layer_engine.LayerEngine`: CRC-32 of every written word's 32-bit fold.

    Each word is its ``P`` lanes sign-extended to ``checksum_lane_bits``, lane 0 in the low bits,
    zero-padded to a multiple of 32 bits and cut into 32-bit chunks ``c_j``; the word's fold is
    ``XOR_j rotl(c_j, j)`` (:func:`fold_word`; the rotation keeps the same bit of two lanes from
    cancelling). The checksum is the CRC-32 (zlib / ISO-HDLC) of the folds, in update order, each
    taken as 4 little-endian bytes: the engine's CRC takes one fold per cycle with reflected input,
    which is the same as this byte stream. A 32-bit CRC input instead of the whole word keeps the
    CRC's XOR trees small at any ``P`` (a 128-bit input cost 970 LUT4 on the iCE40, and ``P = 64``
    would be a 1024-bit CRC).
    """
    dtype = {8: "<i1", 16: "<i2", 24: None, 32: "<i4"}[geometry.checksum_lane_bits]
    value = 0
    for words in pack_weights(geometry, weights, biases):
        raw = np.frombuffer(words.astype(dtype).tobytes(), dtype=np.uint8).reshape(len(words), -1)
        pad = -raw.shape[1] % (CHECKSUM_CHUNK_BITS // 8)
        raw = np.pad(raw, ((0, 0), (0, pad)))
        chunks = raw.view("<u4").astype(np.uint64)
        folds = fold_word([chunks[:, j] for j in range(chunks.shape[1])])
        value = zlib.crc32(np.asarray(folds, dtype="<u4").tobytes(), value)
    return value
