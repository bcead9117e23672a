"""The budget check: does a configuration fit a board's multipliers and block RAM?

It runs before synthesis and in milliseconds, so a network that cannot fit is refused with its
budget shown instead of failing after minutes of place-and-route. Block counts follow the RAM's
aspect ratios (:data:`~boards.platforms.ICE40_EBR`, :data:`~boards.platforms.ECP5_EBR`) the way
Yosys tiles a memory: the cheapest ``ceil(width / w) * ceil(depth / d)``.
"""

from dataclasses import dataclass, field

from rtl.layer_geometry import LayerGeometry
from rtl.single_port_ram import SPRAM_DEPTH, SPRAM_LANE_BITS, SPRAM_WIDTH

__all__ = ["Budget", "MemoryNeed", "blocks_for", "engine_memories", "check_budget", "logic_estimate",
           "LOGIC_MODEL", "LOGIC_CALIBRATION", "LOGIC_MARGIN", "LOGIC_OVERESTIMATE"]

# Memories smaller than this many bits become LUT RAM or flip-flops, not block RAM.
SMALL_MEMORY_BITS = 1024

# Logic estimate, fitted to this project's builds (LOGIC_CALIBRATION): a fixed part (SystemTop's
# UART and protocol, the Engine's control, softmax, sequencer, DRTP unit), a part per MAC lane
# (updater, lane muxes and increments, result bank, δ words) and the LLS unit per hidden layer.
# iCE40 in logic cells (nextpnr's ICESTORM_LC), ECP5 in TRELLIS_COMB.
LOGIC_MODEL = {
    # The UP5K engine (SPRAM weights, serial host side) as of session 6: refitted to its 4- and
    # 8-lane digits builds and centred between them and the MNIST build (784 pixels: wider
    # counters and addresses, about 3 % more). The LLS unit is session 3's figure, not
    # re-measured (it does not fit the UP5K).
    "ice40": {"fixed": 4560, "per_lane": 55, "lls_unit": 5100},
    "ecp5": {"fixed": 4700, "per_lane": 620, "lls_unit": 3900},
}
# Measured packed counts (nextpnr's utilisation after packing), as (family, layers, rule, lanes,
# count): tests/test_boards_budget.py checks the model against every one of them.
LOGIC_CALIBRATION = (
    ("ice40", (64, 128, 10), "drtp", 4, 4720),
    ("ice40", (64, 128, 10), "drtp", 8, 4940),
    ("ice40", (784, 80, 10), "drtp", 8, 5103),
    ("ecp5", (64, 32, 10), "drtp", 4, 7134),
    ("ecp5", (64, 32, 10), "lls", 4, 11021),
    ("ecp5", (64, 128, 10), "drtp", 24, 19485),
    ("ecp5", (64, 128, 10), "lls", 64, 37248),
)
# An estimate is refused only when it is this far over: it is a model, not a netlist.
LOGIC_MARGIN = 1.05
# The model may overestimate wide ECP5 engines (the 64-lane build packs 30 % below the linear
# model: the per-lane share shrinks with P there), never underestimate by more than the margin.
LOGIC_OVERESTIMATE = 1.35


def logic_estimate(family, config, lanes):
    model = LOGIC_MODEL[family]
    hidden = config.n_layers - 1
    return model["fixed"] + model["per_lane"] * lanes + (model["lls_unit"] * hidden if config.uses_basis else 0)


@dataclass(frozen=True)
class MemoryNeed:
    name: str
    depth: int
    width: int

    @property
    def bits(self):
        return self.depth * self.width


def blocks_for(memory, configs):
    """Block RAMs a ``depth x width`` 1R1W memory takes with the best aspect ratio."""
    return min(-(-memory.width // w) * -(-memory.depth // d) for d, w in configs)


def engine_memories(config, lanes):
    """The engine's memories (``rtl/engine.py``, ``rtl/layer_engine.py``): weights per layer,
    sample double buffer, activation buffers, δ memories."""
    geo = LayerGeometry(config, lanes)
    mems = [MemoryNeed(f"weights{k}", geo.words[k], lanes * config.weight_bits[k]) for k in range(geo.n_layers)]
    mems.append(MemoryNeed("samples", 2 * geo.fan_in[0], config.input_bits))
    for k in range(geo.n_layers - 1):
        mems.append(MemoryNeed(f"activations{k}", geo.fan_out[k], config.act_bits + 1))
    # The output layer's δ words follow the last hidden layer's in its memory.
    L = geo.n_layers
    for k in range(max(L - 1, 1)):
        depth = (geo.groups[k] if k < L - 1 else 0) + (geo.groups[L - 1] if k == max(L - 2, 0) else 0)
        mems.append(MemoryNeed(f"delta{k}", depth, lanes * config.delta_bits))
    return mems


def unit_multipliers(family, config):
    """Multiplier blocks the engine takes besides the lanes' (``rtl/engine.py``): on ECP5 the
    output softmax's product and, per LLS unit, its shared multiplier and its own softmax's
    product are instantiated MULT18X18D (the engine's ``dsp``); on the iCE40 they are logic.
    (Yosys may infer more: the 24-lane DRTP OrangeCrab build uses one beyond these.)"""
    if family != "ecp5":
        return 0
    return 1 + (2 * (len(config.layers) - 2) if config.uses_basis else 0)


@dataclass
class Budget:
    board: object
    lanes: int
    memories: list
    blocks: dict
    logic: int
    problems: list = field(default_factory=list)
    #: "spram": the weights are in the SPRAMs (rtl.layer_engine.LayerEngine weight_store), the
    #: other memories in block RAM.
    weight_store: str = "ebr"
    #: Multiplier blocks besides the lanes' (:func:`unit_multipliers`).
    unit_multipliers: int = 0

    @property
    def multipliers(self):
        return self.lanes + self.unit_multipliers

    @property
    def beats(self):
        """64-bit SPRAM beats a weight word takes."""
        return -(-self.lanes * SPRAM_LANE_BITS // SPRAM_WIDTH)

    @property
    def spram_addresses(self):
        words = sum(m.depth for m in self.memories if m.name.startswith("weights"))
        return words * self.beats if self.weight_store == "spram" else 0

    @property
    def ram_blocks(self):
        return sum(self.blocks.values())

    @property
    def weight_bits(self):
        return sum(m.bits for m in self.memories if m.name.startswith("weights"))

    @property
    def read_bits_per_cycle(self):
        """Weight bits the lanes read every cycle (one word of the widest layer)."""
        return max(m.width for m in self.memories if m.name.startswith("weights"))

    def table(self):
        b = self.board
        lines = [f"budget for {b.name} ({b.device}), {self.lanes} lanes:",
                 f"  logic (est.) {self.logic:>7} / {b.lut}   ({'LC' if b.family == 'ice40' else 'LUT4'}; "
                 f"refused above {LOGIC_MARGIN:.0%} of the device)",
                 f"  multipliers  {self.multipliers:>7} / {b.dsp}   (one per MAC lane"
                 + (f", {self.unit_multipliers} for the softmax and LLS units)" if self.unit_multipliers else ")"),
                 f"  block RAM    {self.ram_blocks:>7} / {b.ram}   ({b.ram_bits // 1024} Kbit each)"]
        for m in self.memories:
            n = self.blocks.get(m.name, 0)
            where = f"{n} blocks" if n else "logic (small)"
            if self.weight_store == "spram" and m.name.startswith("weights"):
                where = f"SPRAM, {m.depth * self.beats} x 64"
            lines.append(f"    {m.name:<14} {m.depth:>6} x {m.width:<4} = {m.bits / 1024:8.1f} Kbit -> {where}")
        if self.weight_store == "spram":
            lines.append(f"  SPRAM        {self.spram_addresses:>7} / {SPRAM_DEPTH} addresses of 64 bits "
                         f"({b.spram} x {b.spram_bits // 1024} Kbit side by side; a word of {self.lanes} lanes "
                         f"is {self.beats} beats)")
            lines.append(f"  weight read bandwidth {SPRAM_WIDTH} bits/cycle (single port: a forward word every "
                         f"{self.beats} cycles, an update word every {2 * self.beats})")
        else:
            lines.append(f"  weight read bandwidth {self.read_bits_per_cycle} bits/cycle")
        return "\n".join(lines)

    def to_dict(self):
        return {
            "logic_estimate": {"need": self.logic, "have": self.board.lut},
            "multipliers": {"need": self.multipliers, "have": self.board.dsp},
            "ram_blocks": {"need": self.ram_blocks, "have": self.board.ram},
            "weight_store": self.weight_store,
            "spram_addresses": {"need": self.spram_addresses, "have": SPRAM_DEPTH if self.board.spram else 0},
            "weight_bits": self.weight_bits,
            "read_bits_per_cycle": self.read_bits_per_cycle,
            "memories": {m.name: {"depth": m.depth, "width": m.width, "blocks": self.blocks.get(m.name, 0)}
                         for m in self.memories},
        }


def _in_logic(board, memory):
    """Memories Yosys keeps out of block RAM: tiny ones, and on ECP5 shallow ones (LUT RAM;
    measured: the 24-lane OrangeCrab build's 6 x 384 δ memory)."""
    return memory.bits < SMALL_MEMORY_BITS or (board.family == "ecp5" and memory.depth <= 16)


def check_budget(board, config, lanes, refuse=True):
    """The :class:`Budget` of ``config`` on ``lanes`` lanes; ``ValueError`` (with the budget
    table) if it cannot fit ``board`` (unless ``refuse`` is false: the problems are listed).

    On a board with SPRAM (the iCE40 UP5K) the weights are there, as the engine builds them
    (:func:`rtl.layer_engine.default_weight_store`); everything else is in block RAM."""
    memories = engine_memories(config, lanes)
    store = "spram" if board.spram else "ebr"
    blocks = {m.name: blocks_for(m, board.ram_configs) for m in memories
              if not _in_logic(board, m) and not (store == "spram" and m.name.startswith("weights"))}
    budget = Budget(board, lanes, memories, blocks, logic_estimate(board.family, config, lanes), weight_store=store,
                    unit_multipliers=unit_multipliers(board.family, config))
    if store == "spram":
        if max(config.weight_bits) > SPRAM_LANE_BITS:
            budget.problems.append(f"weights of {max(config.weight_bits)} bits; the SPRAM lanes hold {SPRAM_LANE_BITS}")
        if budget.spram_addresses > SPRAM_DEPTH:
            budget.problems.append(
                f"the weights need {budget.spram_addresses} SPRAM addresses of 64 bits "
                f"({budget.weight_bits / 1024:.0f} Kbit); the {board.device} has {SPRAM_DEPTH}")
    if budget.multipliers > board.dsp:
        units = f" and the units {budget.unit_multipliers}" if budget.unit_multipliers else ""
        budget.problems.append(f"{lanes} lanes need {lanes} multipliers{units}; the {board.device} has {board.dsp}")
    if config.mult_bits > (16 if board.family == "ice40" else 18):
        budget.problems.append(f"mult_bits={config.mult_bits} is wider than the {board.device}'s multipliers")
    if budget.ram_blocks > board.ram:
        budget.problems.append(
            f"the memories need {budget.ram_blocks} block RAMs ({budget.weight_bits / 1024:.0f} Kbit of weights); "
            f"the {board.device} has {board.ram} ({board.ram * board.ram_bits / 1024:.0f} Kbit)")
    if budget.logic > LOGIC_MARGIN * board.lut:
        budget.problems.append(
            f"the logic is estimated at {budget.logic} {'logic cells' if board.family == 'ice40' else 'LUTs'}; "
            f"the {board.device} has {board.lut}")
    if budget.problems and refuse:
        raise ValueError(f"{'-'.join(map(str, config.layers))} rule={config.rule} does not fit {board.name}: "
                         + "; ".join(budget.problems) + "\n" + budget.table())
    return budget
