"""The protocol unit: frames in, frames out, the engine behind them (no UART)."""

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .engine import Engine
from .frame_decoder import FrameDecoder
from .frame_encoder import FrameEncoder
from .host_bridge import HostBridge
from .host_protocol import max_payload as default_max_payload
from .layer_engine import fabric_arithmetic
from .skid_buffer import SkidBuffer

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

    def __init__(self, config, lanes=8, *, frame_timeout=0, max_payload=None, registered_enables=None):
        self.config = config
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
        m.submodules.engine = engine = self.engine
        m.submodules.bridge = bridge = self.bridge
        m.submodules.decoder = decoder = FrameDecoder(self.max_payload, self.frame_timeout, tail=bridge.buffer_tail)
        m.submodules.encoder = encoder = FrameEncoder(bridge.max_response)
        wiring.connect(m, wiring.flipped(self.i), decoder.i)
        wiring.connect(m, decoder.frame, bridge.frame)
        m.d.comb += [decoder.read_addr.eq(bridge.read_addr), bridge.read_data.eq(decoder.read_data),
                     bridge.dropped.eq(decoder.dropped),
                     decoder.drop_ready.eq(bridge.drop_ready), bridge.engine_ready.eq(engine.ready)]
        wiring.connect(m, bridge.header, encoder.header)
        registered = self.bridge.registered_enables
        if registered is None:
            registered = fabric_arithmetic(platform)
        payload_busy = 0
        if registered:
            m.submodules.payload_slice = payload_slice = SkidBuffer(bridge.payload.payload.shape())
            wiring.connect(m, bridge.payload, payload_slice.i)
            wiring.connect(m, payload_slice.o, encoder.payload)
            payload_busy = payload_slice.busy
        else:
            wiring.connect(m, bridge.payload, encoder.payload)
        wiring.connect(m, encoder.o, wiring.flipped(self.o))
        for name in ("pixels", "cmd", "access"):
            wiring.connect(m, getattr(bridge, name), getattr(engine, name))
        for name in ("result", "response"):
            wiring.connect(m, getattr(engine, name), getattr(bridge, name))
        m.d.comb += [
            self.busy.eq(decoder.busy | bridge.busy | payload_busy | encoder.busy),
            self.receiving.eq(decoder.receiving),
            self.error.eq(bridge.rejected | decoder.dropped),
            self.ready.eq(engine.ready),
        ]
        return m
