"""``synchrony bench``: the benchmark runs end to end and its JSON holds every figure, with sane values.

``--quick`` takes 2-3 minutes (two Verilator builds, one of them 784-128-10, which nothing else in
the suite builds); here the same code runs with a tiny budget on the one engine build the suite
already has (64-128-10 LLS square, 8 lanes, ``test_rtl_engine_cli``), so that it adds well under a
minute to ``make test``. The skipped configurations must then be listed as skipped, with a reason.
A fixture synthesis report exercises the hardware-limit and CPU-ratio arithmetic.
"""

import json
from dataclasses import replace

import pytest

from bench.budget import QUICK, RULES
from bench.report import headline, write_report
from bench.run import RESULT_KEYS, run_bench
from golden.datasets import load_dataset

TINY = replace(QUICK, name="tiny", rtl=(((64, 128, 10), "lls", "square"),), short_samples=1,
               digits_samples=40, digits_every=20, digits_rtl_points=(0, 20), digits_rtl_test=30,
               mnist_samples=30, mnist_every=15, mnist_test=100, pysim_samples=1, cpu_samples=20)

FIXTURE_FMAX = 50.0


def _fixture_reports(root):
    report = {"board": "icebreaker", "device": "iCE40UP5K", "layers": [64, 128, 10], "rule": "lls-square",
              "lanes": 8, "config_digest": None,
              "resources": {"lut": {"used": 4000, "total": 5280}, "ff": {"used": 2000, "total": 5280},
                            "dsp": {"used": 8, "total": 8}, "ram": {"used": 20, "total": 34}},
              "clocks": [{"name": "sync", "fmax_mhz": FIXTURE_FMAX}], "fmax_mhz": FIXTURE_FMAX,
              "target_mhz": 48.0, "timing": "pass", "seconds": 1.0, "tools": {}}
    (root / "icebreaker").mkdir(parents=True)
    (root / "icebreaker" / "report.json").write_text(json.dumps(report))
    (root / "ulx3s").mkdir()
    (root / "ulx3s" / "report.json").write_text("{not json")


def test_bench_core(tmp_path):
    """One run (a pytest-xdist worker each would run it twice), every part checked."""
    try:
        load_dataset("mnist")
    except OSError as error:
        pytest.skip(f"MNIST not available: {error}")
    _fixture_reports(tmp_path / "build")
    result = run_bench(TINY, build_root=tmp_path / "build", log=lambda message: None)
    for check in (_every_field, _engine_efficiency, _hardware_from_reports, _cpu_ratio, _simulation_speed,
                  _cost_against_bp, _learning_curves):
        check(result)
    _report(result, tmp_path)


def _every_field(result):
    assert tuple(result) == RESULT_KEYS
    assert result["mode"] == "tiny" and result["duration_seconds"] > 0
    assert result["commit"] and len(result["commit"]) == 40
    json.dumps(result)      # JSON-able


def _engine_efficiency(result):
    row, = result["engine"]
    assert (row["network"], row["label"], row["lanes"]) == ("64-128-10", "LLS square", 8)
    # The digits step is 2 * (1040 + 258) word issues plus a 6-cycle drain (docs/architecture.md).
    assert row["cycles_per_sample"] == 2602 and row["constant_cycles_per_sample"]
    assert row["samples"] == TINY.digits_rtl_points[-1] and row["bit_exact"]
    assert 0.92 < row["lane_utilisation"] < 0.93
    assert row["ideal_cycles_per_sample"] == (64 * 128 + 128 * 10) * 2 / 8
    assert 0.9 < row["ideal_ratio"] < row["lane_utilisation"]
    skipped = {(s["network"], s["label"]) for s in result["engine_skipped"]}
    assert len(skipped) == 8 and ("784-256-256-10", "DRTP") in skipped
    assert all("tiny mode" in s["reason"] for s in result["engine_skipped"])


def _hardware_from_reports(result):
    rows = {r["board"]: r for r in result["hardware"]}
    assert set(rows) == {"icebreaker", "orangecrab", "ulx3s"}
    assert "does not exist" in rows["orangecrab"]["missing"]
    assert "unreadable" in rows["ulx3s"]["missing"]
    ice = rows["icebreaker"]
    # The iCEBreaker's own engine: weights in SPRAM, whose single port lets the lanes work a
    # third of the cycles at most (docs/architecture.md §2), not the EBR engine's 0.92.
    assert ice["weight_store"] == "spram"
    utilisation = ice["lane_utilisation"]
    assert 0.25 < utilisation < 1 / 3 < result["engine"][0]["lane_utilisation"]
    assert ice["cycles_per_sample"] > 2.5 * 2602
    assert ice["ceiling_gmacs"] == pytest.approx(8 * FIXTURE_FMAX / 1e3)
    assert ice["sustained_gmacs"] == pytest.approx(8 * utilisation * FIXTURE_FMAX / 1e3)
    assert ice["ceiling_fraction"] == pytest.approx(utilisation)
    assert ice["training_samples_per_second"] == pytest.approx(FIXTURE_FMAX * 1e6 / ice["cycles_per_sample"])


def _cpu_ratio(result):
    cpu = result["cpu"]
    base = {b["label"]: b for b in cpu["baseline"]}
    assert set(base) == {"LLS square", "LLS sine", "DRTP", "BP"}
    for b in base.values():
        assert b["samples"] == TINY.cpu_samples and b["samples_per_second"] > 10
        assert b["samples_per_second"] == max(b["repeats_samples_per_second"])
    # 784-128-10 is not simulated with this budget: no cycles, no ratio, and a reason.
    assert cpu["rows"] and all("ratio" not in r and "not simulated" in r["missing"] for r in cpu["rows"])
    assert {m["board"] for m in cpu["boards_missing"]} == {"orangecrab", "ulx3s"}


def _simulation_speed(result):
    sim = result["simulation"]
    assert sim["bit_exact"] and sim["same_cycles"] and sim["samples"] == 1
    assert sim["verilator"]["engine_cycles"] == sim["amaranth"]["engine_cycles"] == 2602
    assert sim["ratio"] == pytest.approx(sim["verilator"]["cycles_per_second"] / sim["amaranth"]["cycles_per_second"])
    assert sim["ratio"] > 5
    speeds = {(g["dataset"], g["label"], g["model"].split()[0]) for g in result["golden_speed"]}
    assert len(speeds) == 12 and all(g["samples_per_second"] > 1 for g in result["golden_speed"])


def _cost_against_bp(result):
    cost = {(c["network"], c["label"]): c for c in result["cost"]}
    assert len(cost) == 9
    lls = cost[("784-128-10", "LLS square")]
    # README: on 784-128-10 the square basis's total is 0.995x BP's.
    assert lls["macs_vs_bp"] == pytest.approx(0.995, abs=0.001)
    assert all(0.5 < c["macs_vs_bp"] < 1.5 and 0.5 < c["memory_vs_bp"] < 1.5 for c in cost.values())
    assert cost[("784-128-10", "DRTP")]["signal_macs_vs_bp"] == 0


def _learning_curves(result):
    curves = {(c["dataset"], c["label"], c["model"]): c for c in result["curves"]}
    for dataset in ("digits", "mnist"):
        for _, _, label in RULES:
            for model in ("float", "integer"):
                points = curves[(dataset, label, model)]["points"]
                assert points[0]["samples_seen"] == 0 and points[-1]["samples_seen"] == \
                    (TINY.digits_samples if dataset == "digits" else TINY.mnist_samples)
                assert all(0 <= p["accuracy"] <= 1 for p in points)
    rtl = curves[("digits", "LLS square", "rtl")]
    assert [p["samples_seen"] for p in rtl["points"]] == [0, 20] and rtl["test_samples"] == 30
    check = result["rtl_matches_integer"]
    assert check["all"] is True
    c, = check["checks"]
    assert c["identical_predictions"] and c["rtl_bit_exact"]
    assert all(p["rtl_accuracy"] == p["integer_accuracy"] for p in c["points"])


def _report(result, tmp_path):
    docs = tmp_path / "docs" / "benchmarks.md"
    write_report(result, docs, json_path=tmp_path / "r.json")
    text = docs.read_text()
    for section in ("## 1. Engine efficiency", "## 2. Hardware limit", "## 3. Against a CPU", "## 4. Simulation speed",
                    "## 5. Cost per rule", "## 6. Learning curves", result["commit"][:12]):
        assert section in text
    for png in ("bench_utilisation", "bench_cost", "bench_curves_digits", "bench_curves_mnist"):
        assert (tmp_path / "docs" / "img" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    assert "icebreaker" in headline(result)


def test_bench_is_a_subcommand(capsys):
    from golden.cli import main
    with pytest.raises(SystemExit) as exited:
        main(["bench", "--help"])
    assert exited.value.code == 0
    assert "--quick" in capsys.readouterr().out
