from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SplitCounter"]


class SplitCounter(wiring.Component):
    """A wide running total, ``value += inc`` every cycle, as two halves whose carry is registered.

    The low half adds ``inc``; its carry out is added to the high half a cycle later. So no carry
    chain is longer than half the width plus the increment's (a 48-bit chain was over 20 ns on
    the UP5K), and ``value`` is exact from the cycle after the last nonzero ``inc`` on: whenever
    ``settling`` is low.

    Parameters
    ----------
    width : int
        Bits of the total (it wraps modulo ``2**width``).
    inc_width : int
        Bits of the (unsigned) increment, at most ``width // 2``.
    init : int
        The total after reset.

    Members
    -------
    inc : In(inc_width)
        Added at the next clock edge.
    value : Out(width)
        The total, but for a carry still on its way (``settling``).
    settling : Out(1)
        A carry of the low half is still to be added to the high half: ``value`` is short of the
        total by ``2**(width // 2)``.
    """

    def __init__(self, width, inc_width=1, init=0):
        if not 1 <= inc_width <= width // 2:
            self._MustUse__silence = True
            raise ValueError(f"SplitCounter: inc_width must be 1 .. width // 2 = {width // 2}, got {inc_width}")
        self.width = width
        self.half = width // 2
        self.init = init % (1 << width)
        super().__init__({"inc": In(inc_width), "value": Out(width, init=self.init), "settling": Out(1)})

    def elaborate(self, platform):
        m = Module()
        low, high = self.value[:self.half], self.value[self.half:]
        low_sum = Signal(self.half + 1)
        m.d.comb += low_sum.eq(low + self.inc)
        m.d.sync += [low.eq(low_sum[:self.half]), self.settling.eq(low_sum[self.half]),
                     high.eq(high + self.settling)]
        return m
