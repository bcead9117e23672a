"""The iCEBreaker bitstream, built for real (Yosys + nextpnr), and its report checked.

Marked ``synth``: ``.ci/run`` runs it as its own step after ``make test`` (``make synth-test``);
``make test`` deselects it (``-m "not synth"``).
"""

import json

import pytest

from boards.cli import board_config
from boards.flow import build, summary_line
from boards.platforms import BOARDS

pytestmark = pytest.mark.synth

# The iCEBreaker configuration CI builds (docs/boards.md).
ICEBREAKER_LAYERS = (64, 32, 10)


def test_icebreaker_bitstream(tmp_path):
    board = BOARDS["icebreaker"]
    config = board_config(board, ICEBREAKER_LAYERS)
    report = build("icebreaker", config, build_root=tmp_path, log=lambda *_: None)
    print(summary_line(report))
    assert (tmp_path / "icebreaker" / "top.bin").stat().st_size > 0
    written = json.loads((tmp_path / "icebreaker" / "report.json").read_text())
    assert written["config_digest"] == config.digest()
    assert report["resources"]["dsp"] == {"used": 8, "total": 8}
    assert report["timing"] == "pass"
    assert report["fmax_mhz"] >= 48
