"""The supported boards: their amaranth-boards platform, clock, pins and resource totals."""

from dataclasses import dataclass

from amaranth.build import Attrs, Pins, Resource, Subsignal

__all__ = ["Board", "BOARDS", "board"]


@dataclass(frozen=True)
class Board:
    """One board: how to build for it and what its FPGA holds.

    ``ram_configs`` are the block RAM's ``(depth, width)`` aspect ratios in one-read one-write
    mode; ``spram`` the iCE40 UP5K's single-port 16 K x 16 RAMs.
    """
    name: str
    platform: str            #: amaranth_boards module:class
    family: str              #: "ice40" or "ecp5"
    device: str
    clk: str                 #: oscillator resource
    clk_mhz: float
    target_mhz: float        #: the sync domain's PLL frequency
    lanes: int               #: default MAC lanes
    rule: str                #: default learning rule
    lut: int
    dsp: int
    ram: int                 #: block RAMs
    ram_bits: int            #: bits per block RAM
    ram_configs: tuple
    spram: int = 0
    spram_bits: int = 0
    uart: tuple = ()         #: extra UART resource on a connector: (connector, rx pin, tx pin)
    router: str = "router1"  #: nextpnr's router by default (``--router`` overrides)
    placer: str = "heap"     #: nextpnr's placer by default (``--placer`` overrides)
    seed: int = 1            #: nextpnr's placement seed by default (``--seed`` overrides)
    synth_opts: tuple = ()   #: extra ``synth_<family>`` options
    nextpnr_opts: tuple = ()  #: extra ``nextpnr-<family>`` options
    #: Seconds synthesis and place-and-route may take by default (``--timeout`` overrides;
    #: ``None``: no limit).
    timeout: float | None = None
    #: The host protocol's own clock (UART, frame decoder, bridge, encoder, LEDs) in MHz, the
    #: oscillator's (``clk_mhz``); ``None``: it shares ``sync`` with the engine.
    host_mhz: float | None = None
    notes: str = ""

    def make_platform(self):
        import importlib
        module, cls = self.platform.split(":")
        platform = getattr(importlib.import_module(module), cls)()
        if self.uart:
            conn, rx, tx = self.uart
            platform.add_resources([Resource(
                "uart", 0,
                Subsignal("rx", Pins(rx, dir="i", conn=conn)),
                Subsignal("tx", Pins(tx, dir="o", conn=conn)),
                Attrs(IO_TYPE="LVCMOS33"))])
        return platform


ICE40_EBR = ((256, 16), (512, 8), (1024, 4), (2048, 2))
ECP5_EBR = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))

BOARDS = {
    "icebreaker": Board(
        name="icebreaker", platform="amaranth_boards.icebreaker:ICEBreakerPlatform", family="ice40",
        device="iCE40UP5K-SG48", clk="clk12", clk_mhz=12, target_mhz=48, lanes=8, rule="drtp",
        lut=5280, dsp=8, ram=30, ram_bits=4096, ram_configs=ICE40_EBR, spram=4, spram_bits=256 * 1024,
        # ABC9 maps with the UP5K's own delays (Yosys's default is the HX's): 25.15-26.48 MHz
        # against 24.16-25.34 over four placement seeds (session 12). A clock enable shared by
        # fewer than 8 flip-flops becomes LUT logic (`-dffe_min_ce_use 8`): a logic tile's 8
        # cells share one enable, so rare enables split tiles (59 fewer cells). HeAP spreads the
        # cells to at most 75 % density before legalising (`--placer-heap-beta 0.75`; nextpnr's
        # default 0.9), which leaves routing room: both together 27.39-32.07 MHz, mean 30.16,
        # against 22.02-30.63, mean 26.46, over seeds 1 and 3-8 (session 15).
        synth_opts=("-device", "u", "-dffe_min_ce_use", "8"),
        nextpnr_opts=("--placer-heap-beta", "0.75"),
        # Router1: at 88-92 % of the logic cells (session 20) it routes every seed tried, in
        # 1.5-2 minutes, and is faster than router2 at each: 36.03 / 34.29 / 35.81 / 34.06 MHz
        # at seeds 1, 3, 5, 6, where router2 stalled on 4 of 8 seeds (two nets held through one
        # LUT's route-through for thousands of iterations) and reached 33.55 / - / 32.38 / - (its
        # alternate weights: 35.21 / 30.70 / 32.22 / stalled). At 96 % (session 12) router1 did
        # not converge (5300 arcs overused after 59 k iterations) and router2 did.
        router="router1",
        # The engine's clock depends on the placement: on session 23's netlist seeds 1, 3, 4, 5
        # gave 48.14 / 50.63 / 49.16 / 49.03 MHz for the digits network and 45.94 / 48.76 /
        # 49.98 / 48.94 for MNIST 784-80-10: seed 4 meets 48 MHz with both by the widest margin.
        seed=4,
        # Builds take 1-2 minutes (784-80-10 once 12.5 beside another build); router2 (`--router
        # router2`) can stall for good at a couple of overused wires.
        timeout=1800,
        # The protocol from the 12 MHz oscillator (the PLL's reference passed through), so only
        # the engine has to meet the PLL's clock: its paths were as long as the engine's
        # (decoder, bridge and encoder states, 32-38 ns) and need no more than 83 ns.
        host_mhz=12),
    "orangecrab": Board(
        name="orangecrab", platform="amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_25FPlatform",
        family="ecp5", device="LFE5U-25F-8MG285", clk="clk", clk_mhz=48, target_mhz=100, lanes=24,
        # LLS's unit and the lanes' fabric do not fit 24 lanes in 24 K LUTs (measured 90 % before
        # its multipliers went to the fabric); DRTP's does.
        rule="drtp", lut=24288, dsp=28, ram=56, ram_bits=18432, ram_configs=ECP5_EBR,
        # ABC9 stops on the merged session-4 engine with YosysHQ/yosys#4349 ("Assert
        # `count_id(wire->name) == 0'", a name collision); classic ABC maps it.
        synth_opts=("-noabc9",),
        # The Feather header's RX/TX pins (the board's USB is not a UART).
        uart=(("io", 0), "0", "1")),
    "ulx3s": Board(
        name="ulx3s", platform="amaranth_boards.ulx3s:ULX3S_85F_Platform", family="ecp5",
        device="LFE5U-85F-6BG381", clk="clk25", clk_mhz=25, target_mhz=100, lanes=64, rule="lls",
        lut=83640, dsp=156, ram=208, ram_bits=18432, ram_configs=ECP5_EBR, synth_opts=("-noabc9",),
        # The analytic placer spreads the 64 lanes to 70 % density: on session 11's netlist
        # router1 took 192 s after it (103.47 MHz), 848 s after HeAP (97.18 MHz).
        placer="static",
        # On session 23's netlist the margin at 100 MHz depends on the placement: seed 1 99.84
        # MHz (a host address to one block RAM, 8.8 ns of routing), seed 2 105.80.
        seed=2),
}


def board(name):
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; choose one of {', '.join(BOARDS)}") from None
