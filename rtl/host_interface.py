"""The protocol unit: frames in, frames out, the engine behind them (no UART)."""

from amaranth import DomainRenamer, Module, Signal
from amaranth.lib import cdc, stream, wiring
from amaranth.lib.wiring import In, Out

from .engine import Engine
from .frame_decoder import FrameDecoder
from .frame_encoder import FrameEncoder
from .host_bridge import HostBridge
from .host_protocol import max_payload as default_max_payload
from .layer_engine import fabric_arithmetic
from .skid_buffer import SkidBuffer
from .stream_crossing import StreamCrossing

__all__ = ["HostInterface"]


class HostInterface(wiring.Component):
    """:class:`~rtl.frame_decoder.FrameDecoder` -> :class:`~rtl.host_bridge.HostBridge` (with its
    :class:`~rtl.engine.Engine`) -> :class:`~rtl.frame_encoder.FrameEncoder`, on byte streams.

    Parameters
    ----------
    config : EngineConfig
    lanes : int
    frame_timeout : int
        Cycles a frame may stall mid-way before it is dropped (0: never).
    max_payload : int, optional
        Default :func:`~rtl.host_protocol.max_payload`.
    registered_enables : bool, optional
        The bridge's (:class:`~rtl.host_bridge.HostBridge`; ``None``: by the platform). With
        them, the response bytes also pass a register slice (:class:`~rtl.skid_buffer.SkidBuffer`)
        into the encoder: the encoder's ``ready`` was 5 LUT levels into the copies of the
        bridge's shift decision, across the die at 64 lanes.
    host_domain : str, optional
        The domain of the decoder, bridge and encoder (and of every member below); the engine
        stays in ``sync``. Another domain than ``sync`` puts a
        :class:`~rtl.stream_crossing.StreamCrossing` on each of the five streams between the
        bridge and the engine, and the engine's ready through a synchroniser: on the iCE40 the
        protocol runs from the 12 MHz oscillator, where its byte-at-a-time paths have 83 ns,
        and only the engine has to meet the fast clock.

    Members
    -------
    i : In(stream.Signature(8))
        Request bytes.
    o : Out(stream.Signature(8))
        Response bytes.
    busy : Out(1)
        A complete frame is being checked, executed or answered.
    receiving : Out(1)
        Inside a request frame, waiting for its next byte.
    error : Out(1)
        Pulses when a frame is refused (an error response) or dropped (timeout).
    ready : Out(1)
        The engine is initialised and idle.
    """

    def __init__(self, config, lanes=8, *, frame_timeout=0, max_payload=None, registered_enables=None,
                 host_domain="sync"):
        self.config = config
        self.host_domain = host_domain
        self.lanes = lanes
        self.frame_timeout = frame_timeout
        self.max_payload = max_payload or default_max_payload(config, lanes)
        # The protocol reads weights and counters only: no trace regions.
        self.engine = Engine(config, lanes, trace=False)
        self.bridge = HostBridge(self.engine, self.max_payload, registered_enables=registered_enables)
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(8)),
            "busy": Out(1),
            "receiving": Out(1),
            "error": Out(1),
            "ready": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        host = self.host_domain
        crossing = host != "sync"

        def add(name, block):
            # The protocol's blocks in the host domain (the object kept for its ports).
            m.submodules[name] = DomainRenamer(host)(block) if crossing else block
            return block

        m.submodules.engine = engine = self.engine
        bridge = add("bridge", self.bridge)
        decoder = add("decoder", FrameDecoder(self.max_payload, self.frame_timeout, tail=bridge.buffer_tail))
        encoder = add("encoder", FrameEncoder(bridge.max_response))
        engine_ready = engine.ready
        if crossing:
            engine_ready = Signal(name="engine_ready_host")
            m.submodules.ready_sync = cdc.FFSynchronizer(engine.ready, engine_ready, o_domain=host)
        wiring.connect(m, wiring.flipped(self.i), decoder.i)
        wiring.connect(m, decoder.frame, bridge.frame)
        m.d.comb += [decoder.read_addr.eq(bridge.read_addr), bridge.read_data.eq(decoder.read_data),
                     bridge.dropped.eq(decoder.dropped),
                     decoder.drop_ready.eq(bridge.drop_ready), bridge.engine_ready.eq(engine_ready)]
        wiring.connect(m, bridge.header, encoder.header)
        registered = self.bridge.registered_enables
        if registered is None:
            registered = fabric_arithmetic(platform)
        payload_busy = 0
        if registered:
            payload_slice = add("payload_slice", SkidBuffer(bridge.payload.payload.shape()))
            wiring.connect(m, bridge.payload, payload_slice.i)
            wiring.connect(m, payload_slice.o, encoder.payload)
            payload_busy = payload_slice.busy
        else:
            wiring.connect(m, bridge.payload, encoder.payload)
        wiring.connect(m, encoder.o, wiring.flipped(self.o))
        for name, source, sink, i_domain, o_domain in [
                ("pixels", bridge, engine, host, "sync"), ("cmd", bridge, engine, host, "sync"),
                ("access", bridge, engine, host, "sync"),
                ("result", engine, bridge, "sync", host), ("response", engine, bridge, "sync", host)]:
            if crossing:
                cross = StreamCrossing(getattr(source, name).payload.shape(), i_domain=i_domain, o_domain=o_domain)
                m.submodules[f"{name}_crossing"] = cross
                wiring.connect(m, getattr(source, name), cross.i)
                wiring.connect(m, cross.o, getattr(sink, name))
            else:
                wiring.connect(m, getattr(source, name), getattr(sink, name))
        m.d.comb += [
            self.busy.eq(decoder.busy | bridge.busy | payload_busy | encoder.busy),
            self.receiving.eq(decoder.receiving),
            self.error.eq(bridge.rejected | decoder.dropped),
            self.ready.eq(engine_ready),
        ]
        return m
