"""The shape of a network: what every model, cost account and engine configuration is built from."""

from dataclasses import dataclass

__all__ = ["NetSpec", "parse_int_list"]


def parse_int_list(text, what="--layers"):
    """Parse ``"784,128,10"`` into ``(784, 128, 10)`` with a clear error on bad input."""
    try:
        values = tuple(int(part) for part in str(text).split(",") if part.strip() != "")
    except ValueError:
        raise ValueError(f"{what}: expected comma-separated positive integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"{what}: expected comma-separated positive integers, got {text!r}")
    return values


@dataclass(frozen=True)
class NetSpec:
    """A network: optional conv3x3 -> activation -> 2x2 max-pool blocks, then fully connected layers.

    Parameters
    ----------
    layers : tuple of int
        ``(inputs, hidden..., classes)``. ``inputs`` is the flattened image size; with ``conv``
        the fully connected part's input is derived from the last conv block instead.
    conv : tuple of int
        Output channels of each conv block (empty for an MLP).
    image_shape : tuple of int
        ``(channels, height, width)`` of the input, used by the conv blocks.
    """

    layers: tuple
    conv: tuple = ()
    image_shape: tuple = None

    def __post_init__(self):
        layers = tuple(int(v) for v in self.layers)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "conv", tuple(int(v) for v in self.conv))
        if len(layers) < 2:
            raise ValueError(f"--layers needs at least inputs and classes, got {layers}")
        if any(v <= 0 for v in layers) or any(v <= 0 for v in self.conv):
            raise ValueError(f"layer sizes must be positive, got layers={layers} conv={self.conv}")
        if self.image_shape is None:
            side = int(round(layers[0] ** 0.5))
            if side * side != layers[0] and self.conv:
                raise ValueError(f"--conv needs a square image, but the input size {layers[0]} is not a square")
            object.__setattr__(self, "image_shape", (1, side, side) if side * side == layers[0] else (1, 1, layers[0]))
        c, h, w = self.image_shape
        if c * h * w != layers[0]:
            raise ValueError(f"input size {layers[0]} does not match image shape {self.image_shape}")
        for i, _ in enumerate(self.conv):
            h, w = h // 2, w // 2
            if h == 0 or w == 0:
                raise ValueError(f"--conv: {len(self.conv)} pooling blocks do not fit a {self.image_shape[1]}x{self.image_shape[2]} image")

    @property
    def n_classes(self):
        return self.layers[-1]

    @property
    def conv_shapes(self):
        """Per conv block: ``(in_ch, out_ch, height, width)`` at the convolution (before pooling)."""
        c, h, w = self.image_shape
        shapes = []
        for out_ch in self.conv:
            shapes.append((c, out_ch, h, w))
            c, h, w = out_ch, h // 2, w // 2
        return tuple(shapes)

    @property
    def fc_layers(self):
        """``(inputs, hidden..., classes)`` of the fully connected part."""
        if not self.conv:
            return self.layers
        c, h, w = self.image_shape
        for out_ch in self.conv:
            c, h, w = out_ch, h // 2, w // 2
        return (c * h * w,) + self.layers[1:]

    def describe(self):
        fc = "-".join(str(v) for v in self.fc_layers)
        if not self.conv:
            return fc
        return "conv" + "x".join(str(c) for c in self.conv) + "-" + fc
