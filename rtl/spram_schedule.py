"""The issue rules of the single-port (SPRAM) weight store."""

__all__ = ["SPRAMSchedule"]


class SPRAMSchedule:
    """The issue rules of the single-port weight store, for ``beats`` beats a word and an
    updater of ``updater_stages`` stages: first with lane latency 1, the last paragraph with 2.

    An op issued at cycle ``t`` reads its word's beats at ``t .. t+B-1``; the lanes see the
    whole word at S1 ``= t+B`` and the update products and old word are held from S2
    ``= t+B+1``. The updater, one beat (4 lanes) wide, takes beat ``j`` at ``t+B+1+d0+j`` and
    its output is written at ``t+3B+j``: ``d0 = 2B-1-stages`` places the writes in the two
    free beats of the next update op's ``2B``-cycle slot. So an op may not issue

    - while a read's beats are going (``1 .. B-1`` cycles after any op),
    - ``1 .. 2B-1`` cycles after an update op: the updater may still be reading that op's
      products (until ``B+d0-1``), which the next op's multiply would change, and an update
      word every ``2B`` cycles at most lets the CRC take a word's fold in ``2B`` pieces,
    - ``2B+1 .. 4B-1`` cycles after an update op: its reads would meet that op's writes;

    back-to-back update ops are ``2B`` apart, forward ops ``B``.

    With ``port_reg`` (a registered port, :class:`~rtl.single_port_ram.SinglePortRAM`
    ``registered``) every read and write happens a cycle after it is asked for; the rules are
    the same, in the cycles they are asked for: S1 and S2 come a cycle later (``t+B+1``,
    ``t+B+2``) and ``d0 = 2B-2-stages``, so the writes are asked for at ``t+3B+j`` still.

    With a lane latency ``λ = 1 + e`` (the lanes' operand registers, ``e = 1``: the SB_MAC16's
    input registers) the products are in the accumulators ``e`` cycles later, so S2, the
    updater's reads and its writes are all ``e`` cycles later (``d0`` is unchanged, the writes
    are asked for at ``t+3B+e+j``), and an update op's slot is ``2B+e`` cycles: an op may not
    issue ``1 .. 2B+e-1`` nor ``2B+e+1 .. 4B+e-1`` cycles after an update op. Forward ops are
    still ``B`` apart.
    """

    def __init__(self, beats, updater_stages, port_reg=False, lane_latency=1):
        B = beats
        self.beats = B
        self.port_reg = bool(port_reg)
        if lane_latency not in (1, 2):
            raise ValueError(f"SPRAM weights need lane latency 1 or 2, got {lane_latency}")
        self.lane_latency = lane_latency
        e = lane_latency - 1
        self.updater_delay = 2 * B - 1 - self.port_reg - updater_stages   # d0
        if not 0 <= self.updater_delay <= B:
            raise ValueError(f"SPRAM weights with {B} beats a word need {B - 1 - self.port_reg} <= updater_stages"
                             f" <= {2 * B - 1 - self.port_reg}, got {updater_stages}")
        self.update_slot = 2 * B + e                          # back-to-back update ops
        self.write_delay = 3 * B + e                          # issue -> first write beat
        self.blocked_after_update = tuple(range(1, 2 * B + e)) + tuple(range(2 * B + e + 1, 4 * B + e))
        self.history = 4 * B + e - 1
