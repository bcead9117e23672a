"""A two-stage multiplier: operand registers, then a product register; on ECP5 one MULT18X18D."""

from amaranth import ClockSignal, Const, Instance, Module, Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PipelinedMultiplier", "MULTIPLIERS", "MULT18X18D_BITS", "fits_mult18x18d"]


#: How the product is built: ``"inferred"``, registers and ``a * b`` for Yosys to map (on ECP5
#: fabric flip-flops around an unregistered MULT18X18D or a LUT adder tree); ``"mult18x18d"``,
#: an instantiated ECP5 MULT18X18D whose own input and output registers are the two stages.
MULTIPLIERS = ("inferred", "mult18x18d")

#: The MULT18X18D's signed operand width.
MULT18X18D_BITS = 18


def _signed_bits(shape):
    """Bits of a signed value holding every value of ``shape``."""
    shape = Shape.cast(shape)
    return shape.width + (0 if shape.signed else 1)


def fits_mult18x18d(a_shape, b_shape):
    """Whether operands of these shapes fit the MULT18X18D's signed inputs."""
    return max(_signed_bits(a_shape), _signed_bits(b_shape)) <= MULT18X18D_BITS


class PipelinedMultiplier(wiring.Component):
    """``p = a * b`` two clock edges (with ``en``) after ``a`` and ``b`` are presented.

    Stage 1 holds the operands, stage 2 the product; both move only while ``en`` is high, so
    the multiplier stalls with the pipeline around it. With ``"mult18x18d"`` the two stages are
    the DSP block's input and output registers (nextpnr times them as such, the multiply a path
    inside the block; Yosys infers none of them on ECP5, where the product was a path from fabric
    flip-flops through the DSP to fabric flip-flops). Both operands must fit 18-bit signed. The
    instance runs under Verilator with ``sim/models/MULT18X18D.v``, not in Amaranth's simulator.

    Parameters
    ----------
    a_shape, b_shape : ShapeLike
        The operands (signed or unsigned).
    multiplier : str
        One of :data:`MULTIPLIERS`.

    Members
    -------
    a : In(a_shape)
    b : In(b_shape)
    en : In(1, init=1)
        Clock enable of both stages.
    p : Out(signed or unsigned(len(a) + len(b)))
        The product of the operands presented two enabled edges before.
    """

    latency = 2

    def __init__(self, a_shape, b_shape, multiplier="inferred"):
        if multiplier not in MULTIPLIERS:
            raise ValueError(f"PipelinedMultiplier multiplier must be one of {MULTIPLIERS}, got {multiplier!r}")
        a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        self.a_shape, self.b_shape = a_shape, b_shape
        if multiplier == "mult18x18d" and not fits_mult18x18d(a_shape, b_shape):
            raise ValueError(f"PipelinedMultiplier: operands {a_shape} and {b_shape} do not fit the MULT18X18D's "
                             f"{MULT18X18D_BITS}-bit signed inputs")
        self.multiplier = multiplier
        width = a_shape.width + b_shape.width
        self.product_shape = signed(width) if a_shape.signed or b_shape.signed else unsigned(width)
        super().__init__({
            "a": In(a_shape),
            "b": In(b_shape),
            "en": In(1, init=1),
            "p": Out(self.product_shape),
        })

    def elaborate(self, platform):
        m = Module()
        if self.multiplier == "inferred":
            # Reset-less like a DSP's registers: their contents matter only with a valid beside them.
            a = Signal.like(self.a, name="a_q", reset_less=True)
            b = Signal.like(self.b, name="b_q", reset_less=True)
            p = Signal.like(self.p, name="p_q", reset_less=True)
            with m.If(self.en):
                m.d.sync += [a.eq(self.a), b.eq(self.b), p.eq(a * b)]
            m.d.comb += self.p.eq(p)
            return m

        a = Signal(signed(MULT18X18D_BITS), name="dsp_a")
        b = Signal(signed(MULT18X18D_BITS), name="dsp_b")
        p = Signal(signed(2 * MULT18X18D_BITS), name="dsp_p")
        m.d.comb += [a.eq(self.a), b.eq(self.b), self.p.eq(p)]
        ports = {f"i_A{i}": a[i] for i in range(MULT18X18D_BITS)}
        ports |= {f"i_B{i}": b[i] for i in range(MULT18X18D_BITS)}
        ports |= {f"i_C{i}": Const(0, 1) for i in range(MULT18X18D_BITS)}
        ports |= {f"o_P{i}": p[i] for i in range(2 * MULT18X18D_BITS)}
        for i in range(4):
            ports |= {f"i_CLK{i}": ClockSignal() if i == 0 else Const(0, 1),
                      f"i_CE{i}": self.en if i == 0 else Const(1, 1), f"i_RST{i}": Const(0, 1)}
        # A and B registered on CLK0, the product in the output register, all enabled by CE0;
        # no pipeline register (nextpnr's timing has no mode for it), no cascade, no global
        # set/reset. Operands are extended to 18-bit signed, so the block multiplies signed.
        # SOURCEB_MODE stays at its default (B_SHIFT, as Yosys's own map): with SOURCEB = 0 the
        # B port feeds the multiplier, and prjtrellis has no B_INPUT (ecppack fails on it).
        registers = {}
        for reg, clock in (("INPUTA", "CLK0"), ("INPUTB", "CLK0"), ("INPUTC", "NONE"),
                           ("PIPELINE", "NONE"), ("OUTPUT", "CLK0")):
            registers |= {f"p_REG_{reg}_CLK": clock, f"p_REG_{reg}_CE": "CE0", f"p_REG_{reg}_RST": "RST0"}
        m.submodules.dsp = Instance(
            "MULT18X18D",
            **registers,
            p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED", p_CLK3_DIV="ENABLED",
            p_HIGHSPEED_CLK="NONE", p_GSR="DISABLED", p_CAS_MATCH_REG="FALSE", p_SOURCEB_MODE="B_SHIFT",
            p_MULT_BYPASS="DISABLED", p_RESETMODE="SYNC",
            i_SIGNEDA=Const(1, 1), i_SIGNEDB=Const(1, 1), i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
            **ports)
        return m
