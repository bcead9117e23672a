"""What one training sample costs under each learning rule: MACs and training-state memory.

The figures are analytic, computed from a :class:`~golden.netspec.NetSpec` alone, for batch 1
and plain SGD (no optimiser state, no gradient buffer: each update is applied in place).

Conventions
-----------
Layers are the conv blocks (conv3x3 'same' -> activation -> 2x2 max-pool), then the fully
connected layers of ``NetSpec.fc_layers``. Every layer but the last is *hidden*; the last is
the output layer, trained by its own error ``e = softmax - y*`` (no MACs) in every rule.
A conv block's output, where every rule delivers its learning signal, is the pooled one:
``N_k = C_out * H/2 * W/2``.

MAC
    A multiply whose product is summed into an accumulator or a stored value: matrix and
    convolution products, dot products, outer-product weight updates.
forward
    ``sum M_k N_k`` over fully connected layers plus ``C_in * 9 * C_out * H * W`` per conv
    block (at the conv resolution).
weight update
    The same outer products as the forward pass, for every rule. Bias updates are additions.
    Conv counts are dense: the delta behind a max-pool is zero at three positions in four,
    which an engine could skip in every rule's update and in BP's backward pass alike.
learning signal
    Everything that produces the hidden layers' deltas, including the rule's own trainable
    parameters (LLS-M's ``m``, LLS-MxM's ``M``, DDFA's ``B_k``), so that forward and update are
    the network's and equal in all rules:

    - BP: the error through every layer above the first, ``W^T delta`` (a transposed conv for
      conv blocks), the same size as that layer's forward pass.
    - DFA: ``e B_k``, ``C N_k`` per hidden layer. DRTP: none (row ``c*`` of ``B_k``).
    - LLS: ``z B^T`` and ``(p - y*) B``, ``C W_k`` each, and ``2 W_k`` for the normalisation
      (``|z|^2`` and ``z_hat . g``), where ``W_k = N_k`` for a fully connected layer and
      ``C_out p^2`` for a conv block, whose output is average-pooled to ``p x p`` first.
      The square basis (row ``lls (square)``) turns the ``2 C W_k`` basis products into
      additions.
      LLS-M adds ``3 C`` per hidden layer (scale by ``m``, its transpose, ``m``'s update),
      LLS-MxM ``3 C^2``.
    - DDFA: a tangent pass through every layer above the first (the first layer's input
      tangent is zero), plus ``e B_k`` and the feedback update ``y_dot eps_k^T``, ``C N_k`` each.
elementwise multiplies (not MACs)
    ``f'`` products, one per hidden output in every rule (and once more in DDFA's tangent
    pass, above the first hidden layer); LLS's normalisation scalings, ``2 W_k``.
additions (not MACs)
    Only those that stand in for multiplies or reduce data on the learning-signal path: the
    square basis's products and LLS's average pooling. Bias, softmax, ``p - y*`` and noise
    injection are O(N) or O(C) in every rule and not counted.
weights memory
    Weights and biases, plus trainable rule parameters (LLS-M: ``C`` per hidden layer,
    LLS-MxM: ``C x C``), at ``weight_bits``.
activations memory
    Values kept from a layer's forward pass until its update: its input (``activation_bits``
    each) and, for a hidden layer, ``f'`` of its outputs (``derivative_bits`` each) plus,
    for a conv block, the 2-bit position of each 2x2 pooling window's maximum. BP, DFA and
    DDFA wait for the network output, so they keep this for every layer at once; DRTP and the
    LLS rules update each layer right after its own forward pass, so they need the largest
    single layer. DDFA also keeps its noise ``eps_k`` until ``y_dot`` is known. Working buffers
    (the current layer's output, deltas, logits) exist in every rule and are not counted.
feedback memory
    Matrices used only by the learning rule, at ``weight_bits``: ``B_k`` (``C x N_k``) per hidden
    layer for DFA, DRTP (stored; an LFSR can regenerate it) and DDFA (trainable). LLS's
    sin, cos and square bases are formulas (a phase accumulator) and need none; its random
    basis is stored, ``C x W_k`` per hidden layer.
"""

from dataclasses import dataclass

__all__ = ["BASES", "RULES", "Cost", "account", "account_all", "format_table"]

# The names golden.rules trains by.
RULES = ("bp", "dfa", "drtp", "lls", "lls-m", "lls-mxm", "ddfa")
BASES = ("sin", "cos", "square", "random")

# Rules that update a layer as soon as its own forward pass is done.
_LOCAL = frozenset({"drtp", "lls", "lls-m", "lls-mxm"})

# Which of the four inputs of a 2x2 max-pool won, needed to route the delta back.
_ARGMAX_BITS = 2


@dataclass(frozen=True)
class Cost:
    """The cost of training on one sample with one rule.

    Attributes
    ----------
    forward_macs, signal_macs, update_macs : int
        MACs of the forward pass, the learning signal and the weight update.
    signal_mults : int
        Elementwise multiplies of the learning signal (``f'`` products, scalings): not MACs.
    signal_adds : int
        Additions of the learning signal that replace multiplies or pool data: not MACs.
    weight_memory_bits, activation_memory_bits, feedback_memory_bits : int
        Training-state memory in bits: weights, biases and trainable rule parameters;
        activations kept until the update; feedback matrices.
    notes : tuple of str
        What the figures assume for this rule, and the options that would change them.
    """

    forward_macs: int
    signal_macs: int
    update_macs: int
    signal_mults: int
    signal_adds: int
    weight_memory_bits: int
    activation_memory_bits: int
    feedback_memory_bits: int
    notes: tuple = ()

    @property
    def total_macs(self):
        """Forward, learning-signal and update MACs together."""
        return self.forward_macs + self.signal_macs + self.update_macs

    @property
    def memory_bits(self):
        """Weights, kept activations and feedback together."""
        return self.weight_memory_bits + self.activation_memory_bits + self.feedback_memory_bits


@dataclass(frozen=True)
class _Layer:
    macs: int       # forward MACs; also the update's, and BP's backward through this layer
    params: int     # weights and biases
    inputs: int     # input values
    outputs: int    # output values, after pooling for a conv block
    conv: bool
    lls_width: int  # values entering LLS's local loss
    lls_adds: int   # additions of LLS's average pooling


def _bins(size, p):
    """Total number of inputs over the ``p`` windows of a 1-D adaptive average pool."""
    # Same windows as torch.nn.AdaptiveAvgPool: [floor(i*size/p), ceil((i+1)*size/p)).
    return sum(-(-(i + 1) * size // p) - i * size // p for i in range(p))


def _layers(spec, lls_pool):
    layers = []
    windows = lls_pool * lls_pool
    for c_in, c_out, h, w in spec.conv_shapes:
        h_out, w_out = h // 2, w // 2
        layers.append(_Layer(
            macs=c_in * 9 * c_out * h * w, params=c_in * 9 * c_out + c_out,
            inputs=c_in * h * w, outputs=c_out * h_out * w_out, conv=True,
            lls_width=c_out * windows,
            # Summing k values takes k - 1 additions per window.
            lls_adds=c_out * (_bins(h_out, lls_pool) * _bins(w_out, lls_pool) - windows)))
    fc = spec.fc_layers
    for m, n in zip(fc, fc[1:]):
        layers.append(_Layer(macs=m * n, params=m * n + n, inputs=m, outputs=n, conv=False,
                             lls_width=n, lls_adds=0))
    return layers


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def account(spec, rule, *, weight_bits=16, activation_bits=8, derivative_bits=None, lls_pool=2,
            basis="sin"):
    """Count the MACs and training-state bits of one training sample.

    Parameters
    ----------
    spec : NetSpec
        The network.
    rule : str
        One of :data:`RULES`.
    weight_bits : int
        Bits per weight, bias, trainable rule parameter and feedback entry.
    activation_bits : int
        Bits per kept activation (layer input, DDFA noise).
    derivative_bits : int or None
        Bits per kept ``f'`` value; ``None`` means ``activation_bits``. One bit is enough for
        a ReLU-family activation.
    lls_pool : int
        LLS average-pools a conv block's output to ``lls_pool x lls_pool`` per channel.
    basis : str
        The LLS family's basis, one of :data:`BASES`; ignored by the other rules.

    Returns
    -------
    Cost

    Raises
    ------
    ValueError
        For an unknown rule or basis, or a size that is not a positive integer.
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; expected one of {', '.join(RULES)}")
    if basis not in BASES:
        raise ValueError(f"unknown LLS basis {basis!r}; expected one of {', '.join(BASES)}")
    if derivative_bits is None:
        derivative_bits = activation_bits
    for name, value in (("weight bits", weight_bits), ("activation bits", activation_bits),
                        ("derivative bits", derivative_bits), ("LLS pool size", lls_pool)):
        _check_positive(name, value)

    layers = _layers(spec, lls_pool)
    hidden, output = layers[:-1], layers[-1]
    classes = spec.n_classes
    forward = sum(layer.macs for layer in layers)
    hidden_outputs = sum(layer.outputs for layer in hidden)
    kept = [layer.inputs * activation_bits
            + layer.outputs * (derivative_bits + (_ARGMAX_BITS if layer.conv else 0))
            for layer in hidden]
    kept.append(output.inputs * activation_bits)

    signal, mults, adds = 0, hidden_outputs, 0
    rule_params = feedback = 0
    activations = max(kept) if rule in _LOCAL else sum(kept)
    notes = []
    if rule in ("dfa", "drtp", "ddfa"):
        feedback = classes * hidden_outputs * weight_bits

    if rule == "bp":
        signal = sum(layer.macs for layer in layers[1:])
        notes.append("backward pass through W^T (weight transport); keeps every layer's input "
                     "and f' until it gets there")
    elif rule == "dfa":
        signal = classes * hidden_outputs
        notes.append("hidden layers wait for the output error: keeps every layer's input and f' "
                     "as BP does (or recomputes the forward pass)")
    elif rule == "drtp":
        notes.append(f"feedback B_k stored; regenerated by an LFSR it takes 0 bits "
                     f"(saves {feedback:,})")
    elif rule == "ddfa":
        signal = (sum(layer.macs for layer in layers[1:])
                  + 2 * classes * hidden_outputs)
        mults += sum(layer.outputs for layer in hidden[1:])
        noise = hidden_outputs * activation_bits
        activations += noise
        notes.append(f"tangent pass through every layer above the first; noise eps_k kept "
                     f"until y_dot ({noise:,} bits, 0 if regenerated from an LFSR seed)")
        notes.append("feedback B_k trainable (momentum form; Adam would add twice its size)")
    else:
        width = sum(layer.lls_width for layer in hidden)
        products = 2 * classes * width
        signal = 2 * width
        mults += 2 * width
        adds = sum(layer.lls_adds for layer in hidden)
        if basis == "square":
            adds += products
        else:
            signal += products
        if basis == "random":
            feedback = classes * width * weight_bits
        if rule == "lls":
            notes.append({
                "square": f"square basis, a phase accumulator's sign bit: nothing stored, "
                          f"its {products:,} products are additions",
                "random": "fixed random basis: stored, counted as feedback",
            }.get(basis, f"{basis} basis from a phase accumulator: nothing stored; "
                         f"a square basis makes its {products:,} products additions"))
            if spec.conv:
                notes.append(f"conv outputs average-pooled to {lls_pool}x{lls_pool} per channel "
                             f"before the local loss")
        elif rule == "lls-m":
            signal += 3 * classes * len(hidden)
            rule_params = classes * len(hidden)
            notes.append(f"as lls, plus {classes} trainable scalars m per hidden layer "
                         f"(counted as weights)")
        else:
            signal += 3 * classes * classes * len(hidden)
            rule_params = classes * classes * len(hidden)
            notes.append(f"as lls, plus a trainable {classes}x{classes} matrix M per hidden layer "
                         f"(counted as weights)")

    return Cost(
        forward_macs=forward, signal_macs=signal, update_macs=forward,
        signal_mults=mults, signal_adds=adds,
        weight_memory_bits=(sum(layer.params for layer in layers) + rule_params) * weight_bits,
        activation_memory_bits=activations, feedback_memory_bits=feedback, notes=tuple(notes))


def account_all(spec, *, basis="sin", **options):
    """Account every rule of :data:`RULES`, and LLS with the square basis.

    Parameters
    ----------
    spec : NetSpec
        The network.
    basis : str
        The LLS family's basis. Unless it is ``"square"``, a row ``"lls (square)"`` follows
        ``"lls"`` to show what the square basis saves.
    **options
        Passed to :func:`account`.

    Returns
    -------
    dict of str to Cost
        Keyed by rule in the order of :data:`RULES`, with ``"lls (square)"`` after ``"lls"``.
    """
    costs = {}
    for rule in RULES:
        costs[rule] = account(spec, rule, basis=basis, **options)
        if rule == "lls" and basis != "square":
            costs["lls (square)"] = account(spec, rule, basis="square", **options)
    return costs


def _ratio(value, base):
    if base == 0:
        return "-"
    ratio = value / base
    return f"x{ratio:.0f}" if ratio >= 100 else f"x{ratio:#.3g}"


def _section(title, headers, costs, figures):
    """Render one table: a row per rule, each figure followed by its ratio to BP's."""
    base = [figure(costs["bp"]) for figure in figures]
    cells = [[(f"{figure(cost):,}", _ratio(figure(cost), b)) for figure, b in zip(figures, base)]
             for cost in costs.values()]
    name_width = max(len(title), *(len(rule) for rule in costs))
    value_widths = [max(len(row[i][0]) for row in cells) for i in range(len(figures))]
    ratio_widths = [max(len(row[i][1]) for row in cells) for i in range(len(figures))]
    cell_widths = [max(len(header), v + 1 + r)
                   for header, v, r in zip(headers, value_widths, ratio_widths)]
    lines = ["  ".join([title.ljust(name_width)]
                       + [header.rjust(width) for header, width in zip(headers, cell_widths)])]
    for rule, row in zip(costs, cells):
        lines.append("  ".join(
            [rule.ljust(name_width)]
            + [f"{value.rjust(v)} {ratio.ljust(r)}".rjust(width)
               for (value, ratio), v, r, width in zip(row, value_widths, ratio_widths, cell_widths)]
        ).rstrip())
    return "\n".join(lines)


def format_table(costs):
    """Render costs as aligned text tables, each figure beside its ratio to BP's.

    Parameters
    ----------
    costs : dict of str to Cost
        As returned by :func:`account_all`; must include ``"bp"``.

    Returns
    -------
    str
        Three tables (MACs, other learning-signal operations, memory bits) and the notes.
        A ratio is ``-`` where BP's figure is zero.
    """
    if "bp" not in costs:
        raise ValueError("format_table needs the 'bp' cost to compute ratios")
    sections = [
        _section("MACs per sample", ("forward", "learning signal", "weight update", "total"), costs,
                 (lambda c: c.forward_macs, lambda c: c.signal_macs,
                  lambda c: c.update_macs, lambda c: c.total_macs)),
        _section("learning signal, not MACs", ("elementwise mults", "adds"), costs,
                 (lambda c: c.signal_mults, lambda c: c.signal_adds)),
        _section("memory (bits)", ("weights", "activations", "feedback", "total"), costs,
                 (lambda c: c.weight_memory_bits, lambda c: c.activation_memory_bits,
                  lambda c: c.feedback_memory_bits, lambda c: c.memory_bits)),
    ]
    notes = [f"  {rule}: {note}" for rule, cost in costs.items() for note in cost.notes]
    return "\n\n".join(["Each figure is followed by its ratio to bp's (xR; - where bp's is 0)."]
                       + sections + ["notes:\n" + "\n".join(notes)])
