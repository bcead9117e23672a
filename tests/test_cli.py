"""The ``synchrony`` command line: output contract and clear errors."""

import json

import pytest

from golden.cli import main


def test_train_prints_epochs_and_ends_with_test_accuracy(tmp_path, capsys):
    path = tmp_path / "history.json"
    assert main(["train", "--rule", "lls", "--layers", "64,16,10", "--epochs", "2", "--quiet",
                 "--json", str(path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("dataset: digits")
    assert sum(line.startswith("epoch ") for line in lines) == 2
    assert lines[-1].startswith("test_accuracy=0.")
    history = json.loads(path.read_text())
    assert history["test_accuracy"] == float(lines[-1].split("=")[1]) or \
        f"{history['test_accuracy']:.4f}" == lines[-1].split("=")[1]
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]


def test_convnet_option_trains(capsys):
    assert main(["train", "--rule", "bp", "--conv", "4", "--layers", "64,16,10", "--epochs", "8",
                 "--quiet"]) == 0
    accuracy = float(capsys.readouterr().out.strip().splitlines()[-1].split("=")[1])
    assert accuracy > 0.6


@pytest.mark.parametrize("argv, message", [
    (["train", "--rule", "bp", "--basis", "sin"], "--basis only applies"),
    (["train", "--rule", "lls", "--layers", "64,x,10"], "comma-separated positive integers"),
    (["train", "--rule", "lls", "--layers", "784,16,10"], "784 inputs, but digits has 64"),
    (["train", "--rule", "lls", "--dataset", "nosuchset"], "nosuchset"),
    (["train", "--rule", "lls", "--conv", "4,4,4,4", "--layers", "64,16,10"], "--conv"),
    (["train", "--rule", "bp", "--numerics", "int"], "--numerics int supports"),
    (["train", "--rule", "lls", "--numerics", "int", "--batch-size", "8"], "online"),
    (["account", "--layers", "10"], "at least inputs and classes"),
])
def test_bad_input_is_a_clear_error(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
