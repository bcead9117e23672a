"""The step sequencer: one weight word per cycle into the lanes, waiting only on true dependencies."""

from amaranth import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .fixed import select
from .layer_geometry import LayerGeometry, OpKind, op_layout

__all__ = ["Sequencer"]


class Sequencer(wiring.Component):
    """Issues the word operations of one step: ``fwd 0 .. fwd L-1`` then ``upd 0 .. upd L-1``.

    The phases follow each other with no gap; inside a layer the words go in address order
    (:class:`~rtl.layer_geometry.LayerGeometry`). A word is held back only while what it reads is
    not there yet:

    - forward, layer ``k >= 1``, word ``1 + m``: ``x_m = h_{k-1}[m]`` must be written
      (``h_avail[k-1] > m``); it usually is, since layer ``k - 1``'s last group finished before;
    - forward, a group's last word: the result bank must be free (``bank_ready``);
    - update, a group's first word: its δ word must be complete (``delta_words[k] > g``) and,
      with stochastic rounding, its draws generated (``draws_ready``).

    No layer waits for another layer's learning signal (no update locking): each hidden layer's
    signal is computed while the following phases run, and the output layer's softmax while the
    hidden layers update. An inference step issues the forward phases only.

    Parameters
    ----------
    geometry : LayerGeometry
    registered_can : bool
        Decide from a register: ``op.valid`` comes from the conditions above as they were a
        cycle before, and never in the cycle after an op is taken or a step starts (the word
        they describe changed then). Between ops a condition only turns true (counters count
        up, the bank and the draws are freed; the draws' reset a cycle after a step starts
        comes long before any update op), so a cycle-old "yes" still holds. It
        takes the comparisons out of the consumer's issue path, and costs nothing when ops
        are at least two cycles apart anyway (the SPRAM store's words of two beats or more); a
        held-back op waits a cycle longer. ``op.valid`` is then a flip-flop, and the
        comparisons are registered too (an update group's first word waits a cycle more).

    Members
    -------
    start : In(stream.Signature(data.StructLayout({"train": 1})))
        Begin a step (taken when idle); ``train = 0`` is an inference.
    op : Out(stream.Signature(op_layout(geometry)))
        The next word operation, taken with ``op.ready`` (the layer engine's weight store may
        space them: :class:`~rtl.spram_schedule.SPRAMSchedule`).
    h_avail : In(data.ArrayLayout(range(max_fan_out + 1), L))
        Per layer, outputs written to its activation buffer in this step.
    delta_words : In(data.ArrayLayout(range(max_groups + 1), L))
        Per layer, complete δ words (groups) in this step.
    bank_ready : In(1)
    draws_ready : In(1)
        Stochastic rounding: the next update group's draws are ready (a group's first word waits).
    busy : Out(1)
        A step's words are still being issued.
    """

    def __init__(self, geometry, *, registered_can=False):
        if not isinstance(geometry, LayerGeometry):
            raise TypeError("Sequencer needs a LayerGeometry")
        self.geometry = geo = geometry
        self.registered_can = bool(registered_can)
        super().__init__({
            "start": In(stream.Signature(data.StructLayout({"train": 1}))),
            "op": Out(stream.Signature(op_layout(geo))),
            "h_avail": In(data.ArrayLayout(range(geo.max_fan_out + 1), geo.n_layers)),
            "delta_words": In(data.ArrayLayout(range(geo.max_groups + 1), geo.n_layers)),
            "bank_ready": In(1),
            "draws_ready": In(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        geo = self.geometry
        L = geo.n_layers

        busy = Signal()
        train = Signal()
        kind = Signal(OpKind)
        layer = Signal(geo.layer_shape)
        group = Signal(range(geo.max_groups))
        word = Signal(range(geo.max_fan_in + 1))
        addr = Signal(geo.addr_bits)
        # The word's flags, set an op ahead from the counters: the word and group compares (with
        # their per-layer constants) were in series with the op's enable into the counters (in the
        # engine on the UP5K the op registers were a 27.4 ns group).
        last_word = Signal()      # word == fan_in[layer]: the group's last word
        last_group = Signal(init=geo.groups[0] == 1)  # group == groups[layer] - 1
        first_word = Signal(init=1)                   # word == 0: the bias word
        last_layer = layer == L - 1
        m.d.comb += [self.busy.eq(busy), self.start.ready.eq(~busy)]

        def by_layer(name, value_of):
            """``value_of(k)`` for the current layer ``k`` (constants fold per layer)."""
            return select(m, [value_of(k) for k in range(L)], layer, name=name)

        if self.registered_can:
            issue = Signal()
            taken = issue & self.op.ready
            # The comparisons into registers too, a cycle old (a cycle-old "yes" still holds:
            # they only turn true within a step, and layer 0, where a step starts, needs no
            # input): in the engine on the UP5K their carry chains and the layer's multiplexer
            # were 7 LUT levels into `issue` (22.75 ns). At an op's transfer the next word's
            # inputs are compared ahead (a group's next word is `word + 1`; its first, the bias
            # word, needs none), so a forward word still follows two cycles after the last; an
            # update group's first word waits a cycle for its δ compare (the SPRAM store takes
            # update words four cycles apart anyway).
            inputs_now = by_layer("inputs_now", lambda k: 1 if k == 0 else self.h_avail[k - 1] >= word)
            inputs_ahead = by_layer("inputs_ahead", lambda k: 1 if k == 0 else self.h_avail[k - 1] >= word + 1)
            delta_now = by_layer("delta_now", lambda k: self.delta_words[k] > group)
            inputs_ready = Signal(init=1)
            delta_ready = Signal()
            with m.If(taken):
                m.d.sync += [inputs_ready.eq(last_word | inputs_ahead), delta_ready.eq(0)]
            with m.Else():
                m.d.sync += [inputs_ready.eq(inputs_now), delta_ready.eq(delta_now)]
        else:
            inputs_ready = Signal()
            delta_ready = Signal()
            with m.Switch(layer):
                for k in range(L):
                    with m.Case(k):
                        m.d.comb += [
                            # Layer 0 reads the sample, complete before the step starts.
                            inputs_ready.eq(1 if k == 0 else self.h_avail[k - 1] >= word),
                            delta_ready.eq(self.delta_words[k] > group),
                        ]
        forward = kind == OpKind.FORWARD
        can = Signal()
        with m.If(forward):
            m.d.comb += can.eq(inputs_ready & (~last_word | self.bank_ready))
        with m.Else():
            m.d.comb += can.eq(~first_word | (delta_ready & self.draws_ready))

        if self.registered_can:
            # issue is a flip-flop: busy & can as they were a cycle before, unless an op was taken
            # then (the word changed; a step's start leaves busy low in that cycle).
            m.d.sync += issue.eq(can & (busy & ~taken))
        else:
            issue = busy & can
        op = self.op.payload
        m.d.comb += [
            self.op.valid.eq(issue),
            op.kind.eq(kind),
            op.layer.eq(layer),
            op.group.eq(group),
            op.word.eq(word),
            op.addr.eq(addr),
            op.last.eq(last_word),
        ]

        # The flags' next values when a counter steps on, and when it starts again.
        word_before_last = by_layer("word_before_last", lambda k: word == geo.fan_in[k] - 1)
        group_before_last = by_layer("group_before_last",
                                     lambda k: group == geo.groups[k] - 2 if geo.groups[k] >= 2 else 0)
        next_one_group = by_layer("next_one_group", lambda k: geo.groups[(k + 1) % L] == 1)

        # A step ends with every counter and flag as after reset (kind back to FORWARD): a start
        # only sets busy and train, and the counters' enable is the op's transfer alone (in the
        # engine the start's command decode and the store's gate were both in it, 24.8 ns).
        with m.If(self.start.valid & ~busy):
            m.d.sync += [busy.eq(1), train.eq(self.start.payload.train)]
        with m.If(issue & self.op.ready):
            m.d.sync += [word.eq(word + 1), addr.eq(addr + 1), last_word.eq(word_before_last), first_word.eq(0)]
            with m.If(last_word):
                m.d.sync += [word.eq(0), group.eq(group + 1), last_word.eq(0), first_word.eq(1),
                             last_group.eq(group_before_last)]
                with m.If(last_group):
                    m.d.sync += [group.eq(0), addr.eq(0), layer.eq(layer + 1), last_group.eq(next_one_group)]
                    with m.If(last_layer):
                        m.d.sync += layer.eq(0)
                        with m.If(forward & train):
                            m.d.sync += kind.eq(OpKind.UPDATE)
                        with m.Else():
                            m.d.sync += [busy.eq(0), kind.eq(OpKind.FORWARD)]
        return m
