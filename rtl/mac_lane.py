"""One multiply-accumulate lane, written so Yosys packs it into one SB_MAC16 (iCE40 UP5K)."""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .pipelined_multiplier import MULT18X18D_BITS, MULTIPLIERS, PipelinedMultiplier

__all__ = ["MACLane"]


class MACLane(wiring.Component):
    """``acc <- acc + a * b`` on signed operands, with a load for starting a new sum.

    The accumulator is the whole datapath of the forward pass (``W x + (b << bias_shift)``,
    :meth:`golden.integer.network.IntegerNetwork._accumulate`): ``load`` starts a neuron with its
    shifted bias, then one ``en`` cycle per input adds ``w * x``.

    It is written for Yosys's ``ice40_dsp`` pattern: the accumulator register has no reset (an
    output-register reset costs ~20 % of Fmax), the sum is ``acc + a * b`` in one assignment, and
    the load is a multiplexer after the adder, which maps to the SB_MAC16's ``OLOAD`` from
    its C/D inputs. Hold (neither control) is the output register's ``OHOLD``. On ECP5 Yosys maps
    the product to a MULT18X18D and builds the adder in fabric.

    The accumulator wraps at ``acc_bits`` like the DSP's; :class:`~golden.integer.config.EngineConfig`
    guarantees a forward pass never gets there.

    Parameters
    ----------
    mult_bits : int
        Signed operand width (16 for SB_MAC16, 18 for MULT18X18D).
    acc_bits : int
        Accumulator width (32 for SB_MAC16).
    input_regs : bool
        Register ``a``, ``b`` and the controls first (the DSP's A/B/C/D registers): one more
        cycle of latency, a shorter path into the multiplier.
    product_reg : bool
        Register the product (and the controls beside it) before the adder: one more cycle of
        latency, and the multiplier and the accumulator's adder on paths of their own. For a
        multiplier Yosys builds without registers (ECP5's MULT18X18D, whose adder is in the
        fabric); the SB_MAC16 has its own pipeline register for this.
    own_registers : bool
        Mark those registers ``keep`` (honoured by boards/flow.py), so that each lane has its
        own: the lanes share their controls and ``b``, and Yosys would merge the copies into one
        flip-flop driving every lane (2048 loads at 64 lanes). For ECP5, whose MULT18X18D takes
        no register; on the iCE40 it would keep the registers out of the SB_MAC16.
    multiplier : str
        One of :data:`MULTIPLIERS`. ``"mult18x18d"`` needs ``input_regs`` and ``product_reg``
        and ``mult_bits <= 18``: the operand registers and the product register are the DSP's
        input and output registers (nextpnr times them as such: the multiply is a path inside
        the block), so only the controls, the adder and the accumulator are in the fabric.
        Yosys infers no DSP registers on ECP5. The instance cannot run in Amaranth's
        simulator; the tests simulate it under Verilator with a model of the primitive.

    Members
    -------
    a, b : In(signed(mult_bits))
        Operands.
    en : In(1)
        Accumulate: ``acc <- acc + a * b``.
    load : In(1)
        Start a sum: ``acc <- load_value`` (wins over ``en``; no product is added that cycle).
    load_value : In(signed(acc_bits))
        The starting value, e.g. ``b << bias_shift`` or 0.
    acc : Out(signed(acc_bits))
        The accumulator: the result of a control appears :attr:`latency` cycles after it
        (``1 + input_regs + product_reg``). Undefined after reset until the first ``load``.
    """

    def __init__(self, mult_bits=16, acc_bits=32, input_regs=False, product_reg=False, own_registers=False,
                 multiplier="inferred"):
        if mult_bits < 2 or acc_bits < 2:
            raise ValueError(f"MACLane widths must be >= 2, got mult_bits={mult_bits}, acc_bits={acc_bits}")
        if multiplier not in MULTIPLIERS:
            raise ValueError(f"MACLane multiplier must be one of {MULTIPLIERS}, got {multiplier!r}")
        if multiplier == "mult18x18d" and not (input_regs and product_reg and mult_bits <= MULT18X18D_BITS):
            raise ValueError("MACLane multiplier='mult18x18d' needs input_regs, product_reg and "
                             f"mult_bits <= {MULT18X18D_BITS}, got input_regs={input_regs}, "
                             f"product_reg={product_reg}, mult_bits={mult_bits}")
        self.multiplier = multiplier
        self.mult_bits = mult_bits
        self.acc_bits = acc_bits
        self.input_regs = bool(input_regs)
        self.product_reg = bool(product_reg)
        self.own_registers = bool(own_registers)
        super().__init__({
            "a": In(signed(mult_bits)),
            "b": In(signed(mult_bits)),
            "en": In(1),
            "load": In(1),
            "load_value": In(signed(acc_bits)),
            "acc": Out(signed(acc_bits)),
        })

    @property
    def latency(self):
        """Cycles from a control to its result on ``acc``."""
        return 1 + self.input_regs + self.product_reg

    @classmethod
    def from_config(cls, config, input_regs=False, product_reg=False, own_registers=False, multiplier="inferred"):
        """A lane of an :class:`~golden.integer.config.EngineConfig` (``mult_bits``, ``acc_bits``)."""
        return cls(config.mult_bits, config.acc_bits, input_regs, product_reg, own_registers, multiplier)

    def elaborate(self, platform):
        m = Module()

        own = {"keep": 1} if self.own_registers else {}
        if self.multiplier == "mult18x18d":
            product, en, load, load_value = self._mult18x18d(m, own)
        else:
            product, en, load, load_value = self._inferred(m, own)

        acc = Signal(signed(self.acc_bits), reset_less=True)
        m.d.comb += self.acc.eq(acc)
        # One multiplexer after the adder and a clock enable, nothing else on the D path: an
        # If/Elif chain leaves an undefined-input mux there that hides the pattern from Yosys.
        with m.If(load | en):
            m.d.sync += acc.eq(Mux(load, load_value, acc + product))

        return m

    def _mult18x18d(self, m, own):
        # The controls and the load value take the DSP's two register stages in the fabric.
        stages = [(self.en, self.load, self.load_value)]
        for suffix in ("q", "p"):
            en, load, load_value = stages[-1]
            en_r = Signal(name=f"en_{suffix}", attrs=own)
            load_r = Signal(name=f"load_{suffix}", attrs=own)
            load_value_r = Signal.like(self.load_value, name=f"load_value_{suffix}", reset_less=True, attrs=own)
            m.d.sync += [en_r.eq(en), load_r.eq(load), load_value_r.eq(load_value)]
            stages.append((en_r, load_r, load_value_r))
        m.submodules.multiplier = multiplier = PipelinedMultiplier(self.a.shape(), self.b.shape(), "mult18x18d")
        m.d.comb += [multiplier.a.eq(self.a), multiplier.b.eq(self.b)]
        en, load, load_value = stages[-1]
        return multiplier.p, en, load, load_value

    def _inferred(self, m, own):
        a, b, en, load, load_value = self.a, self.b, self.en, self.load, self.load_value
        if self.input_regs:
            # Reset-less too: the DSP's input registers share the accumulator's reset wiring.
            a = Signal.like(self.a, name="a_q", reset_less=True, attrs=own)
            b = Signal.like(self.b, name="b_q", reset_less=True, attrs=own)
            load_value = Signal.like(self.load_value, name="load_value_q", reset_less=True, attrs=own)
            # The controls are fabric flip-flops and must reset, or a stray en/load would
            # follow a reset.
            en = Signal(name="en_q", attrs=own)
            load = Signal(name="load_q", attrs=own)
            m.d.sync += [a.eq(self.a), b.eq(self.b), load_value.eq(self.load_value),
                         en.eq(self.en), load.eq(self.load)]

        product = a * b
        if self.product_reg:
            # The product and the controls one stage on; reset-less and resetting as above.
            product_q = Signal(signed(2 * self.mult_bits), name="product_q", reset_less=True)
            load_value_p = Signal.like(self.load_value, name="load_value_p", reset_less=True, attrs=own)
            en_p = Signal(name="en_p", attrs=own)
            load_p = Signal(name="load_p", attrs=own)
            m.d.sync += [product_q.eq(product), load_value_p.eq(load_value), en_p.eq(en), load_p.eq(load)]
            product, load_value, en, load = product_q, load_value_p, en_p, load_p
        return product, en, load, load_value
