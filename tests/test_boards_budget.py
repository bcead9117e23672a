"""The board budget check, PLL parameters and report parsing: fast, no synthesis."""

import pytest

from boards.budget import LOGIC_CALIBRATION, LOGIC_MARGIN, LOGIC_OVERESTIMATE, MemoryNeed, blocks_for, check_budget, logic_estimate
from boards.flow import (ProgrammingRefused, SynthesisError, check_netlist, clock_crossings, critical_path, format_table,
                         parse_pnr_report, program_bitstream, summary_line, timing_warning)
from boards.platforms import BOARDS, ECP5_EBR, ICE40_EBR, board
from boards.pll import ecp5_pll_params, ice40_pll_params
from golden.integer.train import default_config


def test_blocks_pick_the_best_aspect_ratio():
    # 128 bits x 1040 words on 256 x 16 iCE40 blocks: 8 wide x 5 deep.
    assert blocks_for(MemoryNeed("w", 1040, 128), ICE40_EBR) == 40
    # 2048 x 2 fits one block in its narrowest shape.
    assert blocks_for(MemoryNeed("w", 2048, 2), ICE40_EBR) == 1
    # ECP5 in 1R1W: 512 x 36.
    assert blocks_for(MemoryNeed("w", 520, 384), ECP5_EBR) == 22


def test_icebreaker_weights_go_to_spram():
    """On the UP5K the weights are in the SPRAMs (the engine's default there): the digits
    network's 1298 words of 8 lanes are 2596 64-bit addresses of 16384, and no block RAM."""
    budget = check_budget(BOARDS["icebreaker"], default_config("drtp", None, (64, 128, 10)), 8, refuse=False)
    assert budget.weight_store == "spram"
    assert budget.spram_addresses == 2 * (16 * 65 + 2 * 129)
    assert not any("SPRAM" in p or "block RAM" in p for p in budget.problems), budget.problems
    assert "weights0" not in budget.blocks and budget.ram_blocks <= 30
    assert "SPRAM, 2080 x 64" in budget.table()


def test_mnist_hidden_width_on_icebreaker_and_says_why():
    """784-H-10 on 8 lanes: H = 80 is the widest whose weights fit the SPRAMs (16024 of 16384
    addresses); H = 88 is refused, naming the SPRAM."""
    fits = check_budget(BOARDS["icebreaker"], default_config("drtp", None, (784, 80, 10)), 8, refuse=False)
    assert fits.spram_addresses == 2 * (10 * 785 + 2 * 81) <= 16384
    assert not any("SPRAM" in p for p in fits.problems), fits.problems
    with pytest.raises(ValueError) as info:
        check_budget(BOARDS["icebreaker"], default_config("drtp", None, (784, 88, 10)), 8)
    message = str(info.value)
    assert "does not fit icebreaker" in message and "SPRAM addresses" in message and "has 16384" in message


def test_wide_mnist_net_does_not_fit_orangecrab_ebr_and_says_why():
    """Block RAM is counted where the weights are in EBR: 784-256-10 on 24 lanes of the 25F."""
    config = default_config("drtp", None, (784, 256, 10))
    with pytest.raises(ValueError) as info:
        check_budget(BOARDS["orangecrab"], config, 24)
    message = str(info.value)
    assert "does not fit orangecrab" in message
    assert "block RAM" in message and "/ 56" in message
    assert "weights0" in message


def test_too_many_lanes_is_refused():
    config = default_config("drtp", None, (64, 32, 10))
    with pytest.raises(ValueError, match="9 lanes need 9 multipliers"):
        check_budget(BOARDS["icebreaker"], config, 9)


@pytest.mark.parametrize("family, layers, rule, lanes, measured", LOGIC_CALIBRATION,
                         ids=[f"{c[0]}-{c[2]}-p{c[3]}" for c in LOGIC_CALIBRATION])
def test_logic_model_matches_the_measured_builds(family, layers, rule, lanes, measured):
    """The logic model never underestimates a measured build's packed count by more than its
    margin (a refusal is never wrong by more than that), nor overestimates it wildly."""
    estimate = logic_estimate(family, default_config(rule, None, layers), lanes)
    assert (2 - LOGIC_MARGIN) * measured <= estimate <= LOGIC_OVERESTIMATE * measured, (estimate, measured)
    if family == "ice40":
        assert abs(estimate - measured) <= (LOGIC_MARGIN - 1) * measured, (estimate, measured)


def test_icebreaker_logic_estimate_takes_drtp_refuses_lls():
    # Measured: 4940 logic cells for 64-128-10 DRTP on 8 lanes (docs/results.md, session 6); an
    # LLS unit is about 5100 more.
    budget = check_budget(BOARDS["icebreaker"], default_config("drtp", None, (64, 128, 10)), 8)
    assert budget.logic <= 5280
    with pytest.raises(ValueError, match=r"logic is estimated at \d+ logic cells; the iCE40UP5K-SG48 has 5280"):
        check_budget(BOARDS["icebreaker"], default_config("lls", None, (64, 32, 10)), 8)


def test_boards_default_networks_fit():
    for name, lanes, layers in (("orangecrab", 24, (64, 128, 10)), ("ulx3s", 64, (64, 128, 10)),
                                ("ulx3s", 64, (784, 128, 10))):
        budget = check_budget(BOARDS[name], default_config("drtp", None, layers), lanes)
        assert budget.ram_blocks <= BOARDS[name].ram
        # The lanes and the softmax's MULT18X18D (DRTP has no LLS unit).
        assert budget.to_dict()["multipliers"] == {"need": lanes + 1, "have": BOARDS[name].dsp}


def test_unit_multipliers_count():
    """ECP5: the output softmax's and each LLS unit's two MULT18X18D (its shared multiplier, its
    softmax's) beside the lanes' (the 64-lane ULX3S build used 67); the 28-lane OrangeCrab has
    no room for them. The iCE40's are logic."""
    assert check_budget(BOARDS["ulx3s"], default_config("lls", None, (64, 128, 10)), 64).multipliers == 67
    assert check_budget(BOARDS["ulx3s"], default_config("lls", None, (64, 128, 64, 10)), 64).multipliers == 64 + 5
    assert check_budget(BOARDS["icebreaker"], default_config("lls", None, (64, 16, 10)), 8,
                        refuse=False).multipliers == 8
    with pytest.raises(ValueError, match="28 lanes need 28 multipliers and the units 3; the LFE5U-25F"):
        check_budget(BOARDS["orangecrab"], default_config("lls", None, (64, 32, 10)), 28)


def test_unknown_board():
    with pytest.raises(ValueError, match="unknown board"):
        board("nexys")


@pytest.mark.parametrize("f_in,f_out", [(12, 48), (12, 36), (12, 60)])
def test_ice40_pll(f_in, f_out):
    achieved, p = ice40_pll_params(f_in, f_out)
    pfd = f_in / (p["DIVR"] + 1)
    vco = pfd * (p["DIVF"] + 1)
    assert 10 <= pfd <= 133 and 533 <= vco <= 1066
    assert achieved == pytest.approx(vco / 2 ** p["DIVQ"])
    assert abs(achieved - f_out) / f_out < 0.02


def test_ice40_pll_matches_icepll():
    # icepll -i 12 -o 48
    assert ice40_pll_params(12, 48) == (48.0, {"DIVR": 0, "DIVF": 63, "DIVQ": 4, "FILTER_RANGE": 1})


def test_ecp5_pll_matches_ecppll():
    # ecppll -i 48 -o 100 and -i 25 -o 100
    assert ecp5_pll_params(48, 100) == (100.0, {"CLKI_DIV": 12, "CLKFB_DIV": 25, "CLKOP_DIV": 6, "CLKOP_CPHASE": 2})
    assert ecp5_pll_params(25, 100) == (100.0, {"CLKI_DIV": 1, "CLKFB_DIV": 4, "CLKOP_DIV": 6, "CLKOP_CPHASE": 2})


def test_pnr_report_parsing():
    report = {
        "utilization": {"ICESTORM_LC": {"used": 4000, "available": 5280},
                        "ICESTORM_DSP": {"used": 8, "available": 8},
                        "ICESTORM_RAM": {"used": 20, "available": 30},
                        "ICESTORM_SPRAM": {"used": 0, "available": 4}},
        "fmax": {"clock.sync_clk": {"achieved": 51.3, "constraint": 48.0}},
    }
    resources, clocks = parse_pnr_report(report, "ice40", 48, {"SB_DFFE": 10, "SB_DFF": 5, "SB_LUT4": 3})
    assert resources["dsp"] == {"used": 8, "total": 8}
    assert resources["ff"]["used"] == 15
    assert clocks == [{"name": "clock.sync_clk", "fmax_mhz": 51.3, "target_mhz": 48.0, "pass": True}]
    report["fmax"]["clock.sync_clk"]["achieved"] = 40.0
    assert parse_pnr_report(report, "ice40", 48)[1][0]["pass"] is False
    with pytest.raises(SynthesisError, match="no constrained clock"):
        parse_pnr_report({"utilization": report["utilization"], "fmax": {}}, "ice40", 48)


def _step(kind, delay, src, dst, net=None):
    step = {"type": kind, "delay": delay, "from": {"cell": src[0], "port": src[1]},
            "to": {"cell": dst[0], "port": dst[1]}}
    if net:
        step["net"] = net
    return step


def test_critical_path_summary():
    """The worst clock-to-clock path of nextpnr's report: delay split, ends, named nets only."""
    ram, lut, mult, ff = ("lanes.weights0", "DOA1"), ("$abc$1", "F"), ("lane2.$7", "P1"), ("$auto$ff", "M")
    worst = [_step("clk-to-q", 4.1, ram, ram), _step("routing", 1.0, ram, lut, "$auto$port[1]"),
             _step("logic", 0.2, lut, lut), _step("routing", 2.3, lut, mult, "lanes.lane2.a[13]"),
             _step("logic", 3.0, mult, mult), _step("routing", 0.5, mult, ff, "lanes.lane2.a[13]"),
             _step("setup", 0.1, ff, ff)]
    short = [_step("clk-to-q", 0.4, ff, ff), _step("setup", 0.1, ff, ff)]
    report = {"critical_paths": [
        {"from": "<async>", "to": "posedge clk", "path": [_step("routing", 50.0, lut, ff, "pin")]},
        {"from": "posedge clk", "to": "posedge clk", "path": short},
        {"from": "posedge clk", "to": "posedge clk", "path": worst}]}
    path = critical_path(report)
    assert path == {"ns": 11.2, "routing_ns": 3.8, "logic_ns": 7.4, "from": "lanes.weights0.DOA1",
                    "to": "$auto$ff.M", "through": ["lanes.lane2.a[13]"]}
    assert critical_path({"critical_paths": []}) is None
    table = format_table({"resources": {}, "clocks": [], "critical_path": path})
    assert "critical path 11.20 ns (7.40 logic, 3.80 routing): lanes.weights0.DOA1 -> $auto$ff.M" in table


def test_critical_path_is_within_one_clock():
    """A path between the engine's and the protocol's clocks is a crossing's, not the critical path."""
    ff = ("$auto$ff", "M")
    report = {"critical_paths": [
        {"from": "posedge host_clk", "to": "posedge clk", "path": [_step("routing", 30.0, ff, ff, "bridge.waddr")]},
        {"from": "posedge clk", "to": "posedge clk", "path": [_step("routing", 9.0, ff, ff, "lanes.head")]}]}
    assert critical_path(report)["ns"] == 9.0


def test_critical_path_of_one_clock():
    """With a clock named, its own path: the protocol's 12 MHz clock had the longest path of the
    UP5K build (29.26 ns, in budget) while the engine's set its Fmax."""
    ff = ("$auto$ff", "M")
    report = {"critical_paths": [
        {"from": "posedge host_clk", "to": "posedge host_clk", "path": [_step("routing", 29.0, ff, ff, "access")]},
        {"from": "posedge clk", "to": "posedge clk", "path": [_step("routing", 26.0, ff, ff, "softmax.top")]}]}
    assert critical_path(report)["ns"] == 29.0
    assert critical_path(report, "clk")["through"] == ["softmax.top"]
    assert critical_path(report, "host_clk")["ns"] == 29.0
    assert critical_path(report, "sync") is None


def test_clock_crossings_against_two_destination_periods():
    """Each clock pair's longest path against ``DEFAULT_STAGES - 1`` periods of its destination
    (48 MHz: 41.67 ns; 12 MHz: 166.67 ns); paths from or to the pins are not crossings."""
    ff = ("$auto$ff", "M")
    clocks = [{"name": "clk", "target_mhz": 48.0}, {"name": "host_clk", "target_mhz": 12.0}]

    def path(start, end, ns):
        return {"from": start, "to": end, "path": [_step("clk-to-q", 1.0, ff, ff), _step("routing", ns - 1.0, ff, ff)]}

    report = {"critical_paths": [path("posedge clk", "posedge clk", 50.0), path("<async>", "posedge clk", 90.0),
                                 path("posedge host_clk", "posedge clk", 41.5),
                                 path("posedge clk", "posedge host_clk", 170.0)]}
    assert clock_crossings(report, clocks) == [
        {"from": "host_clk", "to": "clk", "ns": 41.5, "budget_ns": 41.67, "pass": True},
        {"from": "clk", "to": "host_clk", "ns": 170.0, "budget_ns": 166.67, "pass": False}]
    table = format_table({"resources": {}, "clocks": [], "crossings": clock_crossings(report, clocks)})
    assert "crossing clk -> host_clk: 170.00 ns, budget 166.67 ns  FAIL" in table


def test_summary_line():
    report = {"board": "icebreaker", "fmax_mhz": 51.25, "target_mhz": 48.0, "timing": "pass",
              "resources": {"lut": {"used": 4000, "total": 5280}, "dsp": {"used": 8, "total": 8},
                            "ram": {"used": 20, "total": 30}}}
    assert summary_line(report) == ("board=icebreaker fmax_mhz=51.25 target_mhz=48 lut=4000/5280 dsp=8/8 "
                                    "ram=20/30 timing=pass")


def test_timing_warning_names_a_clock_that_works():
    report = {"fmax_mhz": 25.54, "target_mhz": 48.0, "timing": "fail"}
    warning = timing_warning(report)
    assert "not met at 48 MHz" in warning and "--target-mhz 24 " in warning
    assert timing_warning(dict(report, timing="pass")) is None


def test_programming_refuses_a_build_that_fails_timing(tmp_path, monkeypatch):
    # Refused before the programmer or the bitstream is looked at (the forced and passing cases
    # program for real: tests/test_boards_synth.py).
    monkeypatch.setenv("ICEPROG", str(tmp_path / "no-such-programmer"))
    report = {"board": "icebreaker", "fmax_mhz": 27.56, "target_mhz": 48.0, "timing": "fail"}
    with pytest.raises(ProgrammingRefused, match=r"not met at 48 MHz .* --target-mhz 26, or add --force") as refused:
        program_bitstream(report, tmp_path)
    assert refused.value.report is report


def test_incomplete_yosys_run_is_an_error(tmp_path):
    # What a YoWASP Yosys that left inside ABC leaves behind: a log with no end of script.
    (tmp_path / "top.rpt").write_text("2.43.14.5. Executing ABC9.\nRunning ABC command: ...\n")
    with pytest.raises(SynthesisError, match="stopped before the end"):
        check_netlist(tmp_path)


def test_unmapped_netlist_is_an_error(tmp_path):
    import json
    (tmp_path / "top.rpt").write_text("End of script. Logfile hash: 0\n")
    (tmp_path / "synth_stat.json").write_text(json.dumps(
        {"modules": {"\\top": {"num_cells_by_type": {"$_AND_": 4, "SB_LUT4": 3}}}}))
    with pytest.raises(SynthesisError, match="generic cells"):
        check_netlist(tmp_path)
    (tmp_path / "synth_stat.json").write_text(json.dumps(
        {"modules": {"\\top": {"num_cells_by_type": {"SB_DFF": 4, "SB_LUT4": 3, "$scopeinfo": 2}}}}))
    assert check_netlist(tmp_path) == {"SB_DFF": 4, "SB_LUT4": 3, "$scopeinfo": 2}


@pytest.mark.parametrize("timeout", ["0", "-5"])
def test_synth_refuses_a_timeout_that_is_not_positive(timeout, tmp_path, capsys):
    from golden.cli import main

    code = main(["synth", "--board", "icebreaker", "--timeout", timeout, "--build-dir", str(tmp_path / "b")])
    assert code == 2
    assert "timeout must be a positive number of seconds" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()     # refused before anything is built


@pytest.mark.parametrize("family", ["ecp5", "ice40"])
def test_reset_goes_through_a_global_buffer_on_ecp5(family):
    """On ECP5 the synchronised reset reaches the domain only through a DCCA (nextpnr routes its
    output on a global network; 13 000 LSR loads at 64 lanes); the iCE40 keeps the plain
    synchroniser."""
    from amaranth import ClockDomain, Fragment, Instance, Signal

    from boards.pll import ClockReset

    domain = ClockDomain("sync")
    clock = ClockReset(family, Signal(), 25 if family == "ecp5" else 12, 50, domain)
    fragment = Fragment.get(clock, None)
    instances = {}

    def walk(fragment):
        for sub, _name, _src in fragment.subfragments:
            if isinstance(sub, Instance):
                instances[sub.type] = sub
            else:
                walk(sub)
    walk(fragment)
    if family == "ecp5":
        dcca = instances["DCCA"]
        out, out_dir = dcca.ports["CLKO"]
        into, _ = dcca.ports["CLKI"]
        assert out is domain.rst and out_dir == "o"
        # Its input is the synchroniser's output, not the domain's reset again.
        assert into is not domain.rst and into.name == "rst_sync"
    else:
        assert "DCCA" not in instances


def test_seed_lists():
    from boards.cli import parse_seeds
    assert parse_seeds("1") == [1] and parse_seeds("1,3,4,5") == [1, 3, 4, 5]
    for bad in ("x", "1,,2", "1,1", "-1", "2.5"):
        with pytest.raises(ValueError, match="--seed"):
            parse_seeds(bad)


@pytest.mark.parametrize("board_name, argv, seed", [("ulx3s", [], 2), ("ulx3s", ["--seed", "1"], 1),
                                                     ("icebreaker", [], 4), ("orangecrab", [], 1),
                                                     ("orangecrab", ["--seed", "3"], 3)])
def test_synth_seed_defaults_to_the_boards(board_name, argv, seed, tmp_path, monkeypatch, capsys):
    """Without ``--seed`` a build places with the board's seed (``Board.seed``: 4 on the
    iCEBreaker and 2 on the ULX3S, whose margins depend on the placement), with it the one given."""
    import boards.flow
    from golden.cli import main

    seen = []

    def no_build(board, config, lanes=None, *, seed, **options):
        seen.append(seed)
        raise boards.flow.SynthesisError("not built here")
    monkeypatch.setattr(boards.flow, "build", no_build)
    assert main(["synth", "--board", board_name, "--build-dir", str(tmp_path), *argv]) == 1
    assert seen == [seed]
    assert "not built here" in capsys.readouterr().err
