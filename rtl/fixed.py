"""Fixed-point helpers on Amaranth values: the rounding shifts and saturation of ``docs/numerics.md`` §1,
and element selection from register arrays.

The arithmetic helpers build combinational expressions only (no state), so every learning-signal
unit spells rounding and saturation exactly as :mod:`golden.integer.arith` does.

:func:`select` and :func:`write_element` replace ``view[index]`` on a register array indexed by a
signal: Amaranth lowers that to a shift by ``index * element_width``, which Yosys maps to a
barrel shifter over the whole array (hundreds of LUTs for ``C`` 16-bit elements) when the element
width is not a power of two; a ``Switch`` becomes a ``C``-way multiplexer (reads) or per-element
enables (writes).
"""

from amaranth import Cat, Const, Mux, Shape, Signal, signed
from amaranth.hdl import Value

__all__ = ["round_shift", "round_shift_var", "rounding_half", "saturate", "select", "signed_range",
           "signed_width", "write_element"]


def signed_range(bits):
    """``(-2**(bits-1), 2**(bits-1) - 1)``: the two's-complement range of ``bits`` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def signed_width(low, high):
    """Fewest bits of a signed shape holding every integer in ``[low, high]``."""
    bits = 1
    while not (-(1 << (bits - 1)) <= low and high <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def round_shift(value, shift):
    """``rnd(value, shift) = (value + 2**(shift-1)) >> shift`` for a constant ``shift >= 0``.

    Round to nearest, ties towards +infinity; ``shift = 0`` returns ``value``. The result is
    signed when ``value`` is (the shift is arithmetic).
    """
    if shift < 0:
        raise ValueError(f"round_shift: negative shift {shift}")
    value = Value.cast(value)
    if shift == 0:
        return value
    return (value + (1 << (shift - 1))) >> shift


def rounding_half(shift):
    """``(1 << shift) >> 1`` for a variable, unsigned ``shift``: what :func:`round_shift_var` adds."""
    return (Const(1, 1) << Value.cast(shift)) >> 1


def round_shift_var(value, shift, half=None):
    """``rnd(value, shift)`` for a variable, unsigned ``shift`` (a value): ``(value + ((1 << shift) >> 1)) >> shift``.

    ``(1 << shift) >> 1`` is ``2**(shift-1)`` for ``shift >= 1`` and 0 for ``shift = 0``, so one
    adder and one barrel shifter cover every shift amount, including none. ``half``, when given,
    is that term (:func:`rounding_half` of the same shift) from elsewhere, e.g. a register loaded a
    cycle ahead: its decode is then not in front of the adder.
    """
    value = Value.cast(value)
    shift = Value.cast(shift)
    if half is None:
        half = rounding_half(shift)
    return (value + half) >> shift


def saturate(value, bits):
    """``sat_bits(value)``: ``value`` clamped to ``bits``-bit two's complement, as ``signed(bits)``.

    Overflow is detected from the bits above ``bits - 1`` (they must all equal the sign bit), a
    reduction rather than two full-width comparisons.
    """
    value = Value.cast(value)
    shape = value.shape()
    if not shape.signed:
        value = Cat(value, Const(0, 1)).as_signed()   # zero-extend by one bit: now signed
    if len(value) <= bits:
        return value
    low, high = signed_range(bits)
    top = value[bits - 1:]
    sign = value[-1]
    overflow = ~(top.all() | ~top.any())
    return Mux(overflow, Mux(sign, low, high), value[:bits].as_signed())


def select(m, elements, index, *, name=None):
    """A signal equal to ``elements[index]`` (``elements`` a sequence of values or an array view).

    Out-of-range indices give 0.
    """
    elements = [Value.cast(e) for e in elements]
    shapes = [Shape.cast(e.shape()) for e in elements]
    signed_ = any(s.signed for s in shapes)
    width = max(s.width + (1 if signed_ and not s.signed else 0) for s in shapes)
    out = Signal(signed(width) if signed_ else width, name=name)
    with m.Switch(index):
        for i, element in enumerate(elements):
            with m.Case(i):
                m.d.comb += out.eq(element)
    return out


def write_element(m, domain, elements, index, value):
    """``elements[index] <= value`` in ``domain``, one enable per element (no wide multiplexer)."""
    with m.Switch(index):
        for i, element in enumerate(elements):
            with m.Case(i):
                m.d[domain] += element.eq(value)
