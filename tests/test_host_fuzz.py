"""Fuzzing the protocol unit (Verilator): bad frames are refused or dropped, never executed, and
never hang it; the weights are unchanged and training afterwards is still the golden model's.

10 000 frames in ``make test`` (~25 s), 50 000 with another seed under ``make regress``. The
counts (sent per kind, responses per status code, drops) are printed and written to
``sim_build/fuzz-<frames>.json``.
"""

import json
import random

import pytest

from golden.integer.network import IntegerNetwork
from golden.integer.train import default_config
from rtl.layer_geometry import LayerGeometry, pack_weights, weight_checksum
from sim.board_sim import run_board
from sim.cocotb_runner import REPO_ROOT

# The protocol test's configuration: padding lanes in both layers, a layer narrower than the word.
CONFIG = default_config("lls", None, (16, 6, 3), weight_bits=(16, 12), weight_frac=(13, 9), init_bits=(11, 8),
                        act_shift=(15, 10))
LANES = 4


def fuzz(frames, tmp_path, seed=1, host_divider=4):
    """``host_divider`` 4: the protocol a quarter of the engine's clock, through the clock
    crossings, as on the iCEBreaker (12 and 48 MHz)."""
    rng = random.Random(seed)
    sample = lambda: ([rng.randrange(256) for _ in range(CONFIG.layers[0])], rng.randrange(CONFIG.n_classes))
    warmup = [sample() for _ in range(3)]
    after = sample()
    result_file = tmp_path / "fuzz.json"
    run_board(CONFIG, LANES, "protocol_fuzz", mode="direct", host_divider=host_divider, frames=frames, seed=seed,
              warmup=warmup, after=after, result_file=str(result_file), run_name=f"fuzz{frames}")
    result = json.loads(result_file.read_text())

    net = IntegerNetwork(CONFIG)
    geo = LayerGeometry(CONFIG, LANES)
    golden = []
    for pixels, label in warmup:
        trace = net.train_step(pixels, label, record=True)
        golden.append([trace.prediction, weight_checksum(geo, net.weights, net.biases)])
    assert result["warmup"] == golden
    packed = [w.tolist() for w in pack_weights(geo, net.weights, net.biases)]
    assert result["weights_before"] == packed

    assert result["unexpected"] == [], f"frames answered wrongly: {result['unexpected'][:5]}"
    assert result["weights_after"] == result["weights_before"], "the fuzzing changed the weights"
    before, after_counters = result["counters_before"], result["counters_after"]
    assert after_counters["steps"] == before["steps"], "a bad frame ran a step"
    assert after_counters["lr_offset"] == before["lr_offset"] == 0

    trace = net.train_step(*after, record=True)
    assert result["after"] == [trace.prediction, weight_checksum(geo, net.weights, net.biases)]
    assert result["weights_final"] == [w.tolist() for w in pack_weights(geo, net.weights, net.biases)]

    sent = sum(result["sent"].values())
    summary = {"frames": frames, "bad_frames": sent, "readonly_ok": result["readonly_ok"],
               "sent": result["sent"], "answered_with_an_error": result["answered"],
               "responses": result["rejected"], "dropped": result["dropped"],
               "truncated_no_pause": result["truncated_no_pause"],
               "rejected_with_the_next_frame": result["rejected_late"],
               "probe_retries": result["probe_retries"],
               "device_counters": {k: after_counters[k] - before[k]
                                   for k in ("frames_ok", "frames_rejected", "frames_dropped")},
               "fuzz_cycles": result["fuzz_cycles"], "fuzz_seconds": round(result["fuzz_seconds"], 1)}
    print(json.dumps(summary, indent=1))
    out = REPO_ROOT / "sim_build" / f"fuzz-{frames}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    answered = sum(result["answered"].values())
    dropped = sum(result["dropped"].values())
    # Every bad frame was answered with an error or dropped (a frame cut short and followed at once
    # by the probe is answered with it, or its remains are hunted through).
    assert answered + dropped + result["truncated_no_pause"] == sent
    return summary


def test_fuzz_10k(tmp_path):
    fuzz(10000, tmp_path)


@pytest.mark.slow
def test_fuzz_50k(tmp_path):
    fuzz(50000, tmp_path, seed=2)
