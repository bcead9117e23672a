"""A 64-bit single-port RAM: the iCE40 UP5K's four SPRAMs side by side, or a model of them."""

from amaranth import ClockSignal, Instance, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["SinglePortRAM", "SPRAM_DEPTH", "SPRAM_WIDTH", "SPRAM_LANE_BITS", "is_ice40"]

SPRAM_DEPTH = 16384   #: words of one SB_SPRAM256KA
SPRAM_LANE_BITS = 16  #: width of one SB_SPRAM256KA, and of its write-enable lanes here
SPRAM_WIDTH = 64      #: four of them side by side


def is_ice40(platform):
    """Whether ``platform`` is an iCE40 one (Amaranth's SiliconBlue platforms say ``"iCE40"``)."""
    return str(getattr(platform, "family", "")).lower() == "ice40"


class SinglePortRAM(wiring.Component):
    """``depth`` words of 64 bits behind one port: a read or a (lane-masked) write per cycle.

    On an iCE40 platform it is four ``SB_SPRAM256KA`` (16 K x 16 each, the UP5K's 1 Mbit) with
    their address shared; elsewhere (simulation, Verilator) a :class:`~amaranth.lib.memory.Memory`
    with one read and one write port on the same address, which behaves the same as long as no
    cycle reads and writes. Like the SPRAM, a lane's output keeps its word while neither read
    nor written, and is undefined after a write (the model gives a pattern).

    With ``registered``, the port's inputs (address, enables, data) pass a register first: every
    read and write happens a cycle after it is asked for (reads return a cycle later), so the
    wires to the SPRAMs, in a column at the die's edge, are paths of their own.

    Parameters
    ----------
    depth : int
        Words used, at most :data:`SPRAM_DEPTH`.
    registered : bool
        Register the port's inputs (one cycle more of latency for reads and writes alike).

    Members
    -------
    addr : In(range(depth))
    read_en : In(1)
        Read ``addr`` (when nothing is written); otherwise ``read_data`` keeps its word.
    write_en : In(4)
        Per 16-bit lane: write ``write_data``'s lane at ``addr`` (no read this cycle).
    write_data : In(64)
    read_data : Out(64)
        The word read at the last ``read_en`` cycle, from the cycle after it (two after it
        with ``registered``).
    """

    def __init__(self, depth, registered=False):
        if not 1 <= depth <= SPRAM_DEPTH:
            self._MustUse__silence = True   # a refused configuration is not an unused design
            raise ValueError(f"SinglePortRAM: depth must be 1..{SPRAM_DEPTH}, got {depth}")
        self.depth = depth
        self.registered = registered
        self.lanes = SPRAM_WIDTH // SPRAM_LANE_BITS
        super().__init__({
            "addr": In(range(depth)),
            "read_en": In(1),
            "write_en": In(self.lanes),
            "write_data": In(SPRAM_WIDTH),
            "read_data": Out(SPRAM_WIDTH),
        })

    def elaborate(self, platform):
        m = Module()
        # A read only when no lane writes: on the SPRAM a lane not written would read the write's
        # address otherwise; the model's one read port cannot.
        read = Signal()
        addr, write_en, write_data = self.addr, self.write_en, self.write_data
        if self.registered:
            # (The address and data need no reset: nothing happens without an enable.)
            addr = Signal.like(addr, name="addr_q", reset_less=True)
            write_en = Signal.like(write_en, name="write_en_q")
            write_data = Signal.like(write_data, name="write_data_q", reset_less=True)
            m.d.sync += [read.eq(self.read_en & ~self.write_en.any()), addr.eq(self.addr),
                         write_en.eq(self.write_en), write_data.eq(self.write_data)]
        else:
            m.d.comb += read.eq(self.read_en & ~self.write_en.any())
        if is_ice40(platform):
            address = Signal(ceil_log2(SPRAM_DEPTH))
            m.d.comb += address.eq(addr)
            for n in range(self.lanes):
                bits = slice(n * SPRAM_LANE_BITS, (n + 1) * SPRAM_LANE_BITS)
                m.submodules[f"spram{n}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=address,
                    i_DATAIN=write_data[bits],
                    # Whole 16-bit lanes only: the four nibble enables together.
                    i_MASKWREN=write_en[n].replicate(4),
                    i_WREN=write_en[n],
                    # Deselected, the SPRAM keeps DATAOUT (as Yosys's SB_SPRAM256KA model does).
                    i_CHIPSELECT=read | write_en[n],
                    i_CLOCK=ClockSignal("sync"),
                    i_STANDBY=0,
                    i_SLEEP=0,
                    i_POWEROFF=1,   # active low: powered
                    o_DATAOUT=self.read_data[bits],
                )
        else:
            m.submodules.mem = mem = memory.Memory(shape=SPRAM_WIDTH, depth=self.depth, init=[])
            read_port = mem.read_port()
            write = mem.write_port(granularity=SPRAM_LANE_BITS)
            # The SPRAM's output is undefined after a write to it (Yosys's model: x): here a
            # pattern, so a design that relied on it would fail its tests.
            written = Signal(self.lanes)
            with m.If(read):
                m.d.sync += written.eq(0)
            with m.Elif(write_en.any()):
                m.d.sync += written.eq(written | write_en)
            m.d.comb += [
                read_port.addr.eq(addr),
                read_port.en.eq(read),
                write.addr.eq(addr),
                write.en.eq(write_en),
                write.data.eq(write_data),
            ]
            for n in range(self.lanes):
                bits = slice(n * SPRAM_LANE_BITS, (n + 1) * SPRAM_LANE_BITS)
                m.d.comb += self.read_data[bits].eq(Mux(written[n], 0xA5C3, read_port.data[bits]))
        return m
