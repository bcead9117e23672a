"""Board tops, the budget check and the bitstream flow (``synchrony synth``)."""
