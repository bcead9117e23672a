"""Linear-feedback shift registers: the hardware's only source of randomness.

The register is a Galois LFSR written as arithmetic in GF(2)[x]/p(x): the state is a polynomial
of degree < n (bit ``i`` is the coefficient of ``x**i``) and one step multiplies it by ``x``
modulo ``p``. So the state sequence has exactly the period of ``x`` in that ring, which is
``2**n - 1`` for a primitive ``p`` (see :func:`is_primitive`), and the RTL is one shift and
one masked XOR per step. The output bit of a step is the state's top bit before the step.
"""

from functools import lru_cache

__all__ = [
    "LFSR", "POLY16", "POLY32", "is_primitive", "poly_mulmod", "poly_powmod", "prime_factors",
    "lfsr_values",
]

# x^32 + x^22 + x^2 + x + 1 (taps 32, 22, 2, 1 of Xilinx XAPP052), primitive: tests/test_integer_lfsr.py.
POLY32 = (1 << 32) | (1 << 22) | (1 << 2) | (1 << 1) | 1
# x^16 + x^15 + x^13 + x^4 + 1, the small instance whose period is checked exhaustively.
POLY16 = (1 << 16) | (1 << 15) | (1 << 13) | (1 << 4) | 1


class LFSR:
    """A Galois LFSR stepping ``state <- state * x mod poly``.

    Parameters
    ----------
    poly : int
        The feedback polynomial, bit ``i`` = coefficient of ``x**i``; its degree is the width.
    seed : int
        Initial state, ``1 <= seed < 2**width`` (the all-zero state is a fixed point).
    """

    def __init__(self, poly, seed):
        self.poly = poly
        self.width = poly.bit_length() - 1
        if not 0 < seed < (1 << self.width):
            raise ValueError(f"LFSR seed must be in 1..2**{self.width}-1, got {seed}")
        self.state = seed

    def step(self):
        """Advance one step; return the output bit (the top state bit before the step)."""
        state = self.state << 1
        out = state >> self.width
        if out:
            state ^= self.poly
        self.state = state
        return out

    def bits(self, count):
        """The next ``count`` output bits as an unsigned integer, first bit most significant."""
        value = 0
        for _ in range(count):
            value = (value << 1) | self.step()
        return value


def lfsr_values(lfsr, count, bits):
    """``count`` symmetric odd integers of ``bits`` random bits each, in ``[-(2**bits-1), 2**bits-1]``.

    Each value takes the next ``bits`` output bits ``u`` (first bit most significant) and maps
    them to ``2u + 1 - 2**bits``: zero-mean, never zero, and a sign bit alone for ``bits = 1``.
    """
    offset = (1 << bits) - 1
    return [2 * lfsr.bits(bits) - offset for _ in range(count)]


def poly_mulmod(a, b, poly):
    """``a * b mod poly`` in GF(2)[x] (carry-less)."""
    width = poly.bit_length() - 1
    result = 0
    while b:
        if b & 1:
            result ^= a
        b >>= 1
        a <<= 1
        if a >> width:
            a ^= poly
    return result


def poly_powmod(base, exponent, poly):
    """``base ** exponent mod poly`` in GF(2)[x], by square-and-multiply."""
    result = 1
    while exponent:
        if exponent & 1:
            result = poly_mulmod(result, base, poly)
        base = poly_mulmod(base, base, poly)
        exponent >>= 1
    return result


def prime_factors(n):
    """The distinct prime factors of ``n`` (trial division; fine for ``2**32 - 1``)."""
    factors, d = [], 2
    while d * d <= n:
        if n % d == 0:
            factors.append(d)
            while n % d == 0:
                n //= d
        d += 1
    if n > 1:
        factors.append(n)
    return factors


@lru_cache(maxsize=None)
def is_primitive(poly):
    """Whether ``x`` has order exactly ``2**n - 1`` modulo ``poly`` (``poly`` primitive).

    ``x**(2**n - 1) == 1`` and ``x**((2**n - 1) / q) != 1`` for every prime ``q`` dividing
    ``2**n - 1``: then the order of ``x`` is the full ``2**n - 1``, which also makes ``poly``
    irreducible, so this is exactly the period of :class:`LFSR` from any non-zero seed.
    """
    width = poly.bit_length() - 1
    order = (1 << width) - 1
    x = 2
    if poly_powmod(x, order, poly) != 1:
        return False
    return all(poly_powmod(x, order // q, poly) != 1 for q in prime_factors(order))
