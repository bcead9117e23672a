"""PLLs that make the ``sync`` clock domain from a board's oscillator, with parameters computed
for any reachable frequency (the same searches as ``icepll`` and ``ecppll``)."""

from amaranth import ClockDomain, Const, Instance, Module, Signal
from amaranth.lib import cdc, wiring
from amaranth.lib.wiring import In

__all__ = ["ice40_pll_params", "ecp5_pll_params", "ClockReset"]


def ice40_pll_params(f_in, f_out):
    """``SB_PLL40`` simple-feedback parameters closest to ``f_out`` MHz from ``f_in`` MHz.

    Returns ``(achieved_mhz, {"DIVR", "DIVF", "DIVQ", "FILTER_RANGE"})``; the PFD (10–133 MHz)
    and VCO (533–1066 MHz) ranges are the iCE40 data sheet's.
    """
    best = None
    for divr in range(16):
        pfd = f_in / (divr + 1)
        if not 10 <= pfd <= 133:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not 533 <= vco <= 1066:
                continue
            for divq in range(1, 7):
                out = vco / (1 << divq)
                if best is None or abs(out - f_out) < abs(best[0] - f_out):
                    best = (out, divr, divf, divq, pfd)
    if best is None:
        raise ValueError(f"no iCE40 PLL setting makes {f_out} MHz from {f_in} MHz")
    out, divr, divf, divq, pfd = best
    filter_range = next(i for i, top in enumerate((17, 26, 44, 66, 101, 1e9), 1) if pfd < top)
    return out, {"DIVR": divr, "DIVF": divf, "DIVQ": divq, "FILTER_RANGE": filter_range}


def ecp5_pll_params(f_in, f_out):
    """``EHXPLLL`` parameters (CLKOP feedback) closest to ``f_out`` MHz from ``f_in`` MHz.

    Returns ``(achieved_mhz, {"CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV", "CLKOP_CPHASE"})``; PFD
    3.125–400 MHz, VCO 400–800 MHz (ECP5 data sheet), as ``ecppll`` searches.
    """
    best = None
    for clki in range(1, 129):
        pfd = f_in / clki
        if not 3.125 <= pfd <= 400:
            continue
        for clkfb in range(1, 81):
            out = pfd * clkfb
            for clkop in range(1, 129):
                vco = out * clkop
                # Closest frequency first, then a VCO mid-range (as ecppll prefers).
                key = (abs(out - f_out), abs(vco - 600))
                if 400 <= vco <= 800 and (best is None or key < best[0]):
                    best = (key, out, clki, clkfb, clkop)
    if best is None:
        raise ValueError(f"no ECP5 PLL setting makes {f_out} MHz from {f_in} MHz")
    _, out, clki, clkfb, clkop = best
    return out, {"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop, "CLKOP_CPHASE": (clkop - 1) // 2}


class ClockReset(wiring.Component):
    """Drives the ``sync`` domain at ``f_out`` MHz from the oscillator pin, held in reset until the PLL
    locks and while the reset button is pressed (synchronised to ``sync``).

    Parameters
    ----------
    family : str
        ``"ice40"`` or ``"ecp5"``.
    clk_pin :
        The oscillator: on iCE40 the raw pad (``request(..., dir="-")``, for ``SB_PLL40_PAD``),
        on ECP5 the buffered input (``request(...).i``).
    f_in, f_out : float
        MHz.
    domain : ClockDomain
        The ``sync`` domain, defined by the caller; its clock is the PLL's output.
    host_domain : ClockDomain, optional
        iCE40 only: a second domain on the oscillator's own clock (``SB_PLL40_2_PAD``'s port A
        passes the reference through to a global buffer), reset with ``sync``.

    Members
    -------
    button : In(1)
        Reset while 1.
    """

    def __init__(self, family, clk_pin, f_in, f_out, domain=None, host_domain=None):
        # The top defines the domain (Amaranth 0.6 wants domains defined by a parent of their users).
        self.domain = domain if domain is not None else ClockDomain("sync")
        if host_domain is not None and family != "ice40":
            raise ValueError(f"a host clock domain on the oscillator is built for iCE40 only, not {family!r}")
        self.host_domain = host_domain
        self.family = family
        self.clk_pin = clk_pin
        self.f_in = f_in
        if family == "ice40":
            self.f_out, self.params = ice40_pll_params(f_in, f_out)
        elif family == "ecp5":
            self.f_out, self.params = ecp5_pll_params(f_in, f_out)
        else:
            raise ValueError(f"unknown FPGA family {family!r}")
        super().__init__({"button": In(1)})

    def elaborate(self, platform):
        m = Module()
        cd_sync = self.domain
        locked = Signal()
        p = self.params
        if self.family == "ice40" and self.host_domain is not None:
            m.submodules.pll = Instance(
                "SB_PLL40_2_PAD",
                p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT_PORTB="GENCLK",
                p_DIVR=p["DIVR"], p_DIVF=p["DIVF"], p_DIVQ=p["DIVQ"], p_FILTER_RANGE=p["FILTER_RANGE"],
                i_PACKAGEPIN=self.clk_pin,
                i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBALA=self.host_domain.clk, o_PLLOUTGLOBALB=cd_sync.clk,
                o_LOCK=locked)
        elif self.family == "ice40":
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=p["DIVR"], p_DIVF=p["DIVF"], p_DIVQ=p["DIVQ"], p_FILTER_RANGE=p["FILTER_RANGE"],
                i_PACKAGEPIN=self.clk_pin,
                i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=cd_sync.clk,
                o_LOCK=locked)
        else:
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=str(self.f_in),
                a_FREQUENCY_PIN_CLKOP=f"{self.f_out:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"],
                p_CLKOP_CPHASE=p["CLKOP_CPHASE"], p_CLKOP_FPHASE=0,
                p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p["CLKFB_DIV"],
                i_RST=0, i_STDBY=0, i_CLKI=self.clk_pin, o_CLKOP=cd_sync.clk,
                i_CLKFB=cd_sync.clk, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
                i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
                o_LOCK=locked)
        if platform is not None:
            platform.add_clock_constraint(cd_sync.clk, self.f_out * 1e6)
            if self.host_domain is not None:
                platform.add_clock_constraint(self.host_domain.clk, self.f_in * 1e6)
        if self.family == "ecp5":
            # The synchronised reset drives every resetting flip-flop's LSR (13 000 at 64 lanes):
            # through a DCCA nextpnr routes it on a global network instead of the fabric, where
            # its one net was a large part of the ULX3S's congestion. (nextpnr-ecp5 promotes only
            # clocks to globals by itself.)
            rst = Signal(name="rst_sync")
            m.submodules.reset_sync = cdc.AsyncFFSynchronizer(~locked | self.button, rst, o_domain="sync")
            m.submodules.reset_buffer = Instance("DCCA", i_CLKI=rst, i_CE=Const(1), o_CLKO=cd_sync.rst)
        else:
            m.submodules.reset_sync = cdc.ResetSynchronizer(~locked | self.button, domain="sync")
        if self.host_domain is not None:
            m.submodules.host_reset_sync = cdc.ResetSynchronizer(~locked | self.button,
                                                                 domain=self.host_domain.name)
        return m
