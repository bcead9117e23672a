"""Block RAMs whose used reads never meet a write of the same word in the same cycle."""

from amaranth import Cat
from amaranth.hdl import Assert, Format

from .single_port_ram import is_ice40

__all__ = ["collision_free_attrs", "assert_collision_free"]


def collision_free_attrs(platform):
    """The attributes of a memory none of whose used reads meets a write of its word in the
    same cycle (:func:`assert_collision_free` checks it in every simulation).

    An Amaranth read port that is not transparent returns the old word when a write of it
    comes in the same cycle. The iCE40's block RAM does not promise that, so Yosys emulates
    it: an address compare, a register of the written word and a multiplexer on the read
    data, in front of every consumer and behind the address logic. ``no_rw_check``
    (``boards/flow.py`` sets the read port's collision mask from it) leaves the collision
    undefined instead. On the iCE40 only: the ECP5 results were measured without it.
    """
    return {"no_rw_check": 1} if is_ice40(platform) else {}


def assert_collision_free(m, platform, write, read, used=1, what="memory"):
    """In simulation (no ``platform``), assert at every clock edge that no enabled read whose
    data is ``used`` has the address of a write in the same cycle.

    ``write`` and ``read`` are a memory's write port and synchronous read port (or anything
    with their ``addr`` and ``en``).
    """
    if platform is not None:
        return
    m.d.sync += Assert(~(Cat(write.en).any() & read.en & used & (write.addr == read.addr)),
                       Format("{}: a used read met a write of word {}", what, write.addr))
