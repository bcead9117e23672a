"""Galois LFSR: the hardware's source of pseudo-random bits, as :class:`golden.integer.lfsr.LFSR`."""

from amaranth import C, Cat, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LFSR", "galois_advance", "galois_step"]


def galois_step(state, poly, width):
    """One step ``state <- state * x mod poly`` on an Amaranth value; returns ``(bit, next_state)``.

    The output bit is the state's top bit before the step; the feedback XOR is masked by it.
    Chaining it for several steps nests expressions that Amaranth duplicates (``2**steps``
    copies); use :func:`galois_advance` for that.
    """
    bit = state[width - 1]
    shifted = (state << 1)[:width]
    taps = poly & ((1 << width) - 1)
    return bit, shifted ^ (bit.replicate(width) & taps)


def _xor_of(state, mask):
    picked = [state[j] for j in range(mask.bit_length()) if mask >> j & 1]
    return Cat(*picked).xor() if picked else C(0, 1)


def galois_advance(state, poly, width, steps):
    """``steps`` LFSR steps at once: ``(bits, next_state)``, both flat XORs of ``state``'s bits.

    The map is linear over GF(2), so it is computed here on bit masks and each output bit is
    one XOR of state bits: no chained expressions, nothing for the netlist to duplicate.
    ``bits`` holds the ``steps`` output bits, the first one most significant
    (:meth:`golden.integer.lfsr.LFSR.bits`).
    """
    taps = poly & ((1 << width) - 1)
    masks = [1 << i for i in range(width)]     # masks[i]: which state bits XOR into bit i
    out = []
    for _ in range(steps):
        top = masks[width - 1]
        out.append(top)
        masks = [(masks[i - 1] if i else 0) ^ (top if taps >> i & 1 else 0) for i in range(width)]
    bits = Cat(*[_xor_of(state, mask) for mask in reversed(out)])
    return bits, Cat(*[_xor_of(state, mask) for mask in masks])


class LFSR(wiring.Component):
    """A Galois LFSR stepping ``state <- state * x mod poly``, ``bits`` steps per advance.

    Bit for bit :class:`golden.integer.lfsr.LFSR`: an advance of ``bits`` steps is one
    ``LFSR.bits(bits)`` call, and ``value`` is what :func:`golden.integer.lfsr.lfsr_values` makes
    of those bits. The ``bits`` steps take one cycle (:func:`galois_advance`: XORs only).

    Parameters
    ----------
    poly : int
        Feedback polynomial, bit ``i`` = coefficient of ``x**i``; its degree is the width.
    seed : int
        State after reset, ``1 <= seed < 2**width``.
    bits : int
        Output bits (LFSR steps) per advance.

    Members
    -------
    state : Out(width)
        The current state.
    out : Out(bits)
        The bits the next advance emits, first bit most significant (``LFSR.bits(bits)``).
    value : Out(signed(bits + 1))
        ``2 * out + 1 - 2**bits``: odd, zero-mean, in ``+-(2**bits - 1)`` (``lfsr_values``).
    next : In(1)
        Advance ``bits`` steps at the clock edge.
    load : In(1)
        Replace the state with ``load_value`` (wins over ``next``). Loading 0 locks the register
        at 0, as in the model; the caller only loads states it saved.
    load_value : In(width)
        State to load.
    """

    def __init__(self, poly, seed, bits=1):
        self.poly = poly
        self.width = poly.bit_length() - 1
        if self.width < 2:
            raise ValueError(f"LFSR polynomial {poly:#x} has degree < 2")
        if not 0 < seed < (1 << self.width):
            raise ValueError(f"LFSR seed must be in 1..2**{self.width}-1, got {seed}")
        if bits < 1:
            raise ValueError(f"LFSR needs bits >= 1, got {bits}")
        self.seed = seed
        self.bits = bits
        super().__init__({
            "state": Out(self.width),
            "out": Out(bits),
            "value": Out(signed(bits + 1)),
            "next": In(1),
            "load": In(1),
            "load_value": In(self.width),
        })

    def elaborate(self, platform):
        m = Module()

        state = Signal(self.width, init=self.seed)
        m.d.comb += self.state.eq(state)

        bits, after = galois_advance(state, self.poly, self.width, self.bits)
        m.d.comb += self.out.eq(bits)

        # 2u + 1 - 2**k in k + 1 bits is {~u[k-1], u[k-2:0], 1}: wires, no adder.
        m.d.comb += self.value.eq(Cat(C(1, 1), self.out[:-1], ~self.out[-1]).as_signed())

        with m.If(self.load):
            m.d.sync += state.eq(self.load_value)
        with m.Elif(self.next):
            m.d.sync += state.eq(after)

        return m

