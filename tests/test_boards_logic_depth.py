"""boards.logic_depth on a netlist small enough to count by hand."""

import json

import pytest

from boards.logic_depth import LogicDepth, main


def _cell(kind, inputs, outputs):
    ports = {**{p: "input" for p in inputs}, **{p: "output" for p in outputs}}
    return {"type": kind, "port_directions": ports, "connections": {**inputs, **outputs}}


def netlist():
    # a (FF) -> LUT -> LUT -> CARRY -> b (FF);  a -> LUT -> c (FF);  b -> d (FF), no logic.
    cells = {
        "ff_a": _cell("SB_DFF", {"C": [1], "D": [9]}, {"Q": [2]}),
        "l1": _cell("SB_LUT4", {"I0": [2], "I1": ["0"]}, {"O": [3]}),
        "l2": _cell("SB_LUT4", {"I0": [3], "I1": [2]}, {"O": [4]}),
        "cy": _cell("SB_CARRY", {"I0": [4], "CI": ["0"]}, {"CO": [5]}),
        "ff_b": _cell("SB_DFF", {"C": [1], "D": [5]}, {"Q": [6]}),
        "ff_c": _cell("SB_DFF", {"C": [1], "D": [3]}, {"Q": [7]}),
        "ff_d": _cell("SB_DFF", {"C": [1], "D": [6]}, {"Q": [8]}),
    }
    nets = {"clk": [1], "a": [2], "$abc$x": [3], "$abc$y": [4], "$carry": [5], "b": [6], "c": [7],
            "d": [8], "nc": [9]}
    return {"cells": cells, "netnames": {name: {"bits": bits, "hide_name": int(name.startswith("$"))}
                                         for name, bits in nets.items()}}


def test_levels_groups_and_path():
    depth = LogicDepth(netlist())
    rows = depth.endpoint_groups(0.5)
    assert [(g, round(l, 2), n, s, p) for g, l, n, s, p in rows] == [("b", 2.1, 1, "a", "D"), ("c", 1.0, 1, "a", "D")]
    assert depth.endpoint_groups(0) [-1][:3] == ("d", 0.0, 1)
    assert [kind for kind, _ in depth.path("b")] == ["start", "SB_LUT4", "SB_LUT4", "SB_CARRY"]
    assert depth.path("b")[0] == ("start", "a")


def test_cli_errors_name_the_problem(tmp_path, capsys):
    bad = tmp_path / "top.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit, match="is not a Yosys JSON netlist"):
        main([str(bad)])
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"modules": {"top": netlist()}}))
    main([str(good), "--min", "2"])
    assert "b <- a (D)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no endpoint group named 'nosuch'"):
        main([str(good), "--path", "nosuch"])
