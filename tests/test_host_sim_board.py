"""The host tool against the simulated board: ``synchrony host`` over ``socket://`` to
``SystemTop`` (UART pins included) under Verilator (``sim.board_sim``), exactly as against a board.

100 digits samples are trained through the simulated UART; every step's prediction and checksum,
and every weight dumped afterwards, must equal the integer golden model trained on the same
samples in the same order. Then the checkpoint is restored, a checkpoint of another configuration
is refused, and inference matches the golden model.
"""

import json
import re
import threading
import time

import pytest
import torch

from golden.cli import main
from golden.datasets import load_dataset
from golden.integer.network import IntegerNetwork
from golden.integer.train import default_config, flatten, lr_offset, lr_segments
from rtl.layer_geometry import LayerGeometry, pack_weights, weight_checksum
from sim.board_sim import run_board

LANES = 8
SAMPLES = 100
TEST_SAMPLES = 20


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """The simulated board of the default digits network, serving six host sessions, its protocol
    on a clock a quarter of the engine's through the clock crossings, as on the iCEBreaker."""
    config = default_config("lls", None, (64, 128, 10), seed=0)
    port_file = tmp_path_factory.mktemp("board") / "port"
    outcome = {}

    def serve():
        try:
            run_board(config, LANES, "board_serve", mode="uart", host_divider=4, port=0, port_file=str(port_file),
                      sessions=6, run_name="ci-host")
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 1200
    while not port_file.exists():
        assert thread.is_alive(), f"the simulated board stopped: {outcome.get('error')}"
        assert time.monotonic() < deadline, "the simulated board did not come up"
        time.sleep(0.2)
    yield config, f"socket://127.0.0.1:{port_file.read_text().strip()}"
    thread.join(timeout=600)
    assert "error" not in outcome, outcome.get("error")


def host(url, *args):
    return main(["host", "--port", url, "--timeout", "30", *args])


def test_host_tool_trains_the_simulated_board_bit_exactly(board, tmp_path, capsys):
    config, url = board
    geo = LayerGeometry(config, LANES)

    assert host(url, "identify") == 0
    out = capsys.readouterr().out
    assert config.digest() in out and "network 64-128-10" in out

    summary_file = tmp_path / "train.json"
    assert host(url, "train", "--samples", str(SAMPLES), "--no-test", "--quiet", "--json", str(summary_file)) == 0
    summary = json.loads(summary_file.read_text())
    assert summary["samples"] == SAMPLES and summary["retries"] == 0

    checkpoint = tmp_path / "weights.json"
    assert host(url, "dump", str(checkpoint)) == 0
    dumped = json.loads(checkpoint.read_text())
    assert dumped["config_digest"] == config.digest()

    # The golden model on the same samples in the same order (epoch 1 of seed 0), with the run-wide
    # learning-rate schedule over those samples.
    dataset = load_dataset("digits")
    train_x, train_y = flatten(dataset.train_x), dataset.train_y.tolist()
    order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(0)).tolist()[:SAMPLES]
    net = IntegerNetwork(config)
    golden_steps = []
    assert len(lr_segments(config, SAMPLES)) > 1  # the host must write the offset mid-run
    for seen, i in enumerate(order):
        net.lr_offset = lr_offset(config, seen, SAMPLES)
        trace = net.train_step(train_x[i], train_y[i], record=True)
        golden_steps.append([i, trace.prediction, weight_checksum(geo, net.weights, net.biases)])
    assert summary["steps"] == golden_steps
    want = [w.tolist() for w in pack_weights(geo, net.weights, net.biases)]
    compared = 0
    for k in range(config.n_layers):
        assert len(dumped["weights"][k]) == len(want[k])
        for a, (got, exp) in enumerate(zip(dumped["weights"][k], want[k])):
            assert got == exp, f"layer {k} word {a}: board {got}, golden {exp}"
            compared += len(got)
    assert compared == sum(geo.words) * LANES
    print(f"{SAMPLES} samples trained over the simulated UART; {compared} weight lanes bit-exact")

    # A checkpoint of another configuration is refused with a clear error; our own is restored.
    foreign = dict(dumped, config_digest="0" * 64)
    (tmp_path / "foreign.json").write_text(json.dumps(foreign))
    capsys.readouterr()
    assert host(url, "load", str(tmp_path / "foreign.json")) == 2
    err = capsys.readouterr().err
    assert "refusing to restore" in err and "Traceback" not in err
    assert host(url, "load", str(checkpoint)) == 0

    # Inference on the held-out set, as the golden model predicts.
    assert host(url, "infer", "--samples", str(TEST_SAMPLES), "--quiet") == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    accuracy = float(re.search(r"test_accuracy=([0-9.]+)", line).group(1))
    test_x, test_y = flatten(dataset.test_x)[:TEST_SAMPLES], dataset.test_y[:TEST_SAMPLES]
    golden_accuracy = float((net.infer(test_x) == test_y).double().mean())
    assert accuracy == pytest.approx(golden_accuracy, abs=1e-4)


def test_dead_port_is_a_clear_error(capsys):
    assert main(["host", "--port", "socket://127.0.0.1:1", "identify"]) == 2
    err = capsys.readouterr().err
    assert "synchrony host: error: cannot open socket://127.0.0.1:1" in err and "Traceback" not in err


def test_silent_device_times_out(capsys):
    import socket
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        assert main(["host", "--port", f"socket://127.0.0.1:{port}", "--timeout", "0.2", "--retries", "1",
                     "identify"]) == 2
    finally:
        server.close()
    err = capsys.readouterr().err
    assert "IDENTIFY: no valid response" in err and "2 attempts" in err
