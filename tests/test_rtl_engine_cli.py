"""``synchrony sim``: the simulated RTL trains and tests, checked by the golden model; output contract."""

import json
import re

from golden.cli import main

LAST_LINE = re.compile(r"bit_exact=(true|false) mismatches=(\d+) samples=(\d+) test_accuracy=(0\.\d{4}|1\.0000) "
                       r"cycles_per_sample=(\d+) lane_utilisation=(\d\.\d\d)")


def test_sim_short_run_is_bit_exact(tmp_path, capsys):
    summary = tmp_path / "sim.json"
    assert main(["sim", "--samples", "40", "--quiet", "--json", str(summary)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("dataset: digits")
    match = LAST_LINE.fullmatch(lines[-1])
    assert match, lines[-1]
    bit_exact, mismatches, samples, accuracy, cycles, utilisation = match.groups()
    assert (bit_exact, mismatches, samples) == ("true", "0", "40")
    data = json.loads(summary.read_text())
    assert data["test_accuracy"] == data["golden_test_accuracy"]
    # The simulation's own time is part of the run's wall time (a consistency check, not a target).
    assert 0 < data["sim_seconds"] <= data["wall_seconds"], data
    assert f"{data['test_accuracy']:.4f}" == accuracy
    assert int(cycles) == 2602 and float(utilisation) >= 0.90


def test_sim_bad_input_is_a_clear_error(capsys):
    assert main(["sim", "--layers", "64,16"]) == 2
    err = capsys.readouterr().err
    assert "does not fit digits" in err and "Traceback" not in err
