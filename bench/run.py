"""``synchrony bench``: every benchmark in one run, compared as ratios measured in that run.

:func:`run_bench` measures, in order: the golden models' learning curves and speed, the engine
under Verilator (learning curves that must match the integer model's, cycles per sample, lane
utilisation), Amaranth's simulator on the same design and samples, the PyTorch CPU baseline,
the synthesis reports, and the cost accounting; it returns one JSON-able dict
(:data:`RESULT_KEYS` at the top level).
"""

import os
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from golden.accounting import account
from golden.integer.train import default_config as engine_config
from golden.netspec import NetSpec
from rtl.layer_geometry import LayerGeometry

from . import boards
from .budget import NETWORKS, RULES
from .models import float_online, integer_online
from .rtl import run_pysim, run_rtl

__all__ = ["RESULT_KEYS", "run_bench", "rule_label", "network_name"]

RESULT_KEYS = ("schema", "date", "started_utc", "mode", "commit", "dirty", "machine", "duration_seconds",
               "engine", "engine_skipped", "hardware", "cpu", "simulation", "golden_speed", "cost",
               "curves", "rtl_matches_integer", "notes")

LANES = 8           # the engine's default: the iCE40 UP5K's 8 multipliers
SEED = 0
CPU_REFERENCE = ("bp", None, "BP")
# The CPU baseline is the best of this many runs: noise on a shared machine only slows it down.
CPU_REPEATS = 3


def rule_label(rule, basis):
    return next(label for r, b, label in RULES if r == rule and (b == basis or rule == "drtp"))


def network_name(layers):
    return "-".join(map(str, layers))


def _git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _machine():
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu or platform.processor(), "cores": os.cpu_count(), "torch_threads": 1,
            "python": platform.python_version(), "torch": torch.__version__,
            "load_average_start": os.getloadavg()[0]}


def _order(n_train, seed=SEED):
    """The host order of the first epoch (``docs/numerics.md`` §12), as every model sees it."""
    return torch.randperm(n_train, generator=torch.Generator().manual_seed(seed)).tolist()


def _points(total, every):
    return sorted(set([0, *range(every, total, every), total])) if every else [0, total]


def _log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Bench:
    def __init__(self, budget, data_dir=None, build_root=None, log=_log, synth=True):
        self.budget = budget
        self.synth = synth
        self.data_dir = data_dir
        self.build_root = Path(build_root) if build_root else Path(__file__).resolve().parent.parent / "build"
        self.log = log
        self.datasets = {}
        self.rtl_runs = {}          # (layers, rule, basis, lanes) -> summary
        self.result = {"notes": []}

    def dataset(self, name):
        if name not in self.datasets:
            from golden.datasets import load_dataset
            self.datasets[name] = load_dataset(name, data_dir=self.data_dir)
        return self.datasets[name]

    # -- learning curves (float, integer, RTL) -----------------------------------------------------

    def curves(self):
        b = self.budget
        curves, checks, speed = [], [], []
        plans = [("digits", (64, 128, 10), b.digits_samples, b.digits_every, None,
                  b.digits_rtl_points, b.digits_rtl_test),
                 ("mnist", (784, 128, 10), b.mnist_samples, b.mnist_every, b.mnist_test,
                  b.mnist_rtl_points, b.mnist_rtl_test)]
        for name, layers, samples, every, test, rtl_points, rtl_test in plans:
            dataset = self.dataset(name)
            n_test = len(dataset.test_y)
            rtl_points = sorted(set(rtl_points))
            rtl_samples = rtl_points[-1] if rtl_points else 0
            samples = max(samples, rtl_samples)
            order = _order(len(dataset.train_y))[:samples]
            test_indices = list(range(min(test or n_test, n_test)))
            rtl_test = list(range(min(rtl_test or n_test, n_test))) if rtl_samples else []
            points = sorted(set(_points(samples, every)) | set(rtl_points))
            for rule, basis, label in RULES:
                config = engine_config(rule, basis, layers, seed=SEED)
                self.log(f"curves: {name} {label}: float and integer, {samples} samples")
                fl = float_online(dataset, layers, rule, basis, order, evaluate_at=points,
                                  test_indices=test_indices, seed=SEED)
                integer = integer_online(dataset, config, order, evaluate_at=points,
                                         test_indices=test_indices, compare_indices=rtl_test)
                test_note = "all" if len(test_indices) == n_test else f"first {len(test_indices)}"
                common = {"dataset": name, "network": network_name(layers), "rule": rule, "basis": basis,
                          "label": label}
                curves.append({**common, "model": "float", "test_samples": len(test_indices),
                               "test_set": test_note,
                               "points": [{"samples_seen": p["samples_seen"],
                                           "accuracy": p["accuracy"] if test is None else p["subset_accuracy"]}
                                          for p in fl["curve"]]})
                curves.append({**common, "model": "integer", "test_samples": len(test_indices),
                               "test_set": test_note,
                               "points": [{"samples_seen": p["samples_seen"],
                                           "accuracy": p["accuracy"] if test is None else p["subset_accuracy"]}
                                          for p in integer["curve"]]})
                speed.append({**common, "model": "float32 (PyTorch, batch 1, SGD)", "samples": fl["samples"],
                              "seconds": fl["seconds"], "samples_per_second": fl["samples_per_second"]})
                speed.append({**common, "model": "integer (golden.integer)", "samples": integer["samples"],
                              "seconds": integer["seconds"], "samples_per_second": integer["samples_per_second"]})
                if not rtl_samples or (layers, rule, basis) not in self.budget.rtl:
                    continue
                self.log(f"curves: {name} {label}: RTL (Verilator), {rtl_samples} samples, "
                         f"{len(rtl_test)} test samples at {rtl_points}")
                segments = sorted(set(rtl_points) | ({b.pysim_samples} if name == "digits" else set()))
                summary = self.rtl(config, LANES, name, order[:rtl_samples], segments=segments,
                                   test_indices=rtl_test, evaluate_at=rtl_points)
                rtl_note = "all" if len(rtl_test) == n_test else f"first {len(rtl_test)}"
                curves.append({**common, "model": "rtl", "test_samples": len(rtl_test), "test_set": rtl_note,
                               "points": [{"samples_seen": e["samples_seen"], "accuracy": e["accuracy"]}
                                          for e in summary["evaluations"]]})
                golden = {p["samples_seen"]: p for p in integer["curve"]}
                labels = dataset.test_y[rtl_test].tolist()
                compared, pairs = [], []
                for e in summary["evaluations"]:
                    g = golden[e["samples_seen"]]
                    compared.append(e["predictions"] == g["predictions"])
                    integer_accuracy = sum(int(str(p) == str(y)) for p, y in zip(g["predictions"], labels)) / len(labels)
                    pairs.append({"samples_seen": e["samples_seen"], "rtl_accuracy": e["accuracy"],
                                  "integer_accuracy": integer_accuracy})
                checks.append({**common, "points": pairs, "test_samples": len(rtl_test), "test_set": rtl_note,
                               "identical_predictions": all(compared) and len(compared) == len(rtl_points),
                               "rtl_bit_exact": summary["bit_exact"], "first_mismatch": summary["first_mismatch"]})
        self.result["curves"] = curves
        self.result["rtl_matches_integer"] = {
            "all": bool(checks) and all(c["identical_predictions"] and c["rtl_bit_exact"] for c in checks),
            "checks": checks,
            "how": "at every evaluation point the RTL's predictions on the test subset equal, one by one, those "
                   "of an independent integer-model run on the same samples; every training step's prediction "
                   "and weight CRC, and all weights at the end, equal the lock-step integer model's"}
        self.result["golden_speed"] = speed

    # -- the engine under Verilator ----------------------------------------------------------------

    def rtl(self, config, lanes, dataset_name, order, **kwargs):
        key = (tuple(config.layers), config.rule, config.basis if config.uses_basis else None, lanes)
        if kwargs.get("weight_store"):
            key += (kwargs["weight_store"],)
        summary = run_rtl(config, lanes, dataset_name, order, data_dir=self.data_dir, **kwargs)
        if not summary["bit_exact"]:
            self.result["notes"].append(f"RTL {key}: NOT bit-exact: {summary['first_mismatch']}")
        summary["dataset"] = dataset_name
        self.rtl_runs[key] = summary
        return summary

    def engine_row(self, layers, rule, basis, lanes, weight_store=None):
        """Efficiency of one configuration: from its curve run, or a short run of real samples.
        ``weight_store="spram"``: the iCEBreaker's engine (its single-port schedule)."""
        key = (tuple(layers), rule, basis if rule != "drtp" else None, lanes)
        if weight_store == "spram":
            key += (weight_store,)
        else:
            weight_store = None
        config = engine_config(rule, basis, layers, seed=SEED)
        if key not in self.rtl_runs:
            name = "digits" if layers[0] == 64 else "mnist"
            order = _order(len(self.dataset(name).train_y))[:self.budget.short_samples]
            self.log(f"engine: {network_name(layers)} {rule_label(rule, basis)} P={lanes}"
                     f"{' (SPRAM weights)' if weight_store else ''}: {len(order)} training samples")
            self.rtl(config, lanes, name, order, weight_store=weight_store)
        summary = self.rtl_runs[key]
        segments = summary["segments"]
        samples = sum(s["steps"] for s in segments)
        cycles = sum(s["cycles"] for s in segments)
        busy = sum(s["busy"] for s in segments)
        per_sample = {s["cycles"] // max(s["steps"], 1) for s in segments if s["steps"]}
        cost = account(NetSpec(tuple(layers)), rule, basis=basis or "square")
        lane_macs = cost.forward_macs + cost.update_macs
        geometry = LayerGeometry(config, lanes)
        return {
            "network": network_name(layers), "layers": list(layers), "rule": rule, "basis": basis,
            "weight_store": weight_store or "ebr",
            "label": rule_label(rule, basis), "lanes": lanes, "dataset": summary["dataset"],
            "samples": samples, "cycles_per_sample": cycles / samples,
            "constant_cycles_per_sample": len(per_sample) == 1,
            "busy_lane_cycles_per_sample": busy / samples,
            "lane_utilisation": busy / (lanes * cycles),
            "lane_macs_per_sample": lane_macs,
            "signal_macs_per_sample": cost.signal_macs,
            "ideal_cycles_per_sample": lane_macs / lanes,
            "ideal_ratio": (lane_macs / lanes) / (cycles / samples),
            # What the lane groups allow (ceil(N/P) groups per layer, padding lanes idle) at one word
            # per cycle, and the cycles beyond one word per cycle (sequencing overhead).
            "padding_bound_utilisation": geometry.busy_per_step / (lanes * geometry.issue_cycles_per_step),
            "issue_cycles_per_sample": geometry.issue_cycles_per_step,
            "overhead_cycles_per_sample": cycles / samples - geometry.issue_cycles_per_step,
            "bit_exact": summary["bit_exact"], "config_digest": summary["config_digest"],
        }

    def engine(self):
        rows, skipped = [], []
        for _, layers in NETWORKS:
            for rule, basis, label in RULES:
                if (layers, rule, basis) in self.budget.rtl:
                    rows.append(self.engine_row(layers, rule, basis, LANES))
                else:
                    skipped.append({"network": network_name(layers), "rule": rule, "basis": basis, "label": label,
                                    "reason": f"not simulated in {self.budget.name} mode"})
        self.result["engine"] = rows
        self.result["engine_skipped"] = skipped

    # -- Verilator against Amaranth's simulator ----------------------------------------------------

    def simulation(self):
        layers, rule, basis = (64, 128, 10), "lls", "square"
        config = engine_config(rule, basis, layers, seed=SEED)
        dataset = self.dataset("digits")
        order = _order(len(dataset.train_y))[:self.budget.pysim_samples]
        key = (layers, rule, basis, LANES)
        verilator = self.rtl_runs.get(key)
        first = verilator and verilator["segments"][0]
        if not first or first["end"] != len(order):
            self.log(f"simulation: Verilator, {len(order)} samples")
            verilator = run_rtl(config, LANES, "digits", order, data_dir=self.data_dir)
            first = verilator["segments"][0]
        self.log(f"simulation: Amaranth's simulator, {len(order)} samples")
        pysim = run_pysim(config, LANES, dataset, order)
        v_rate = first["cycles"] / first["seconds"]
        a_rate = pysim["cycles"] / pysim["seconds"]
        long_segments = verilator["segments"]
        self.result["simulation"] = {
            "design": f"Engine {network_name(layers)} {rule_label(rule, basis)}, {LANES} lanes",
            "samples": len(order),
            "same_cycles": first["cycles"] == pysim["cycles"],
            "bit_exact": bool(pysim["bit_exact"] and verilator["bit_exact"]),
            "verilator": {"engine_cycles": first["cycles"], "clock_cycles": first["clock_cycles"],
                          "seconds": first["seconds"], "cycles_per_second": v_rate,
                          "clock_cycles_per_second": first["clock_cycles"] / first["seconds"],
                          "long_run_cycles_per_second":
                              sum(s["cycles"] for s in long_segments) / sum(s["seconds"] for s in long_segments),
                          "long_run_samples": sum(s["steps"] for s in long_segments)},
            "amaranth": {"engine_cycles": pysim["cycles"], "seconds": pysim["seconds"], "cycles_per_second": a_rate,
                         "setup_seconds": pysim["setup_seconds"]},
            "ratio": v_rate / a_rate,
        }

    # -- CPU baseline and boards -------------------------------------------------------------------

    def cpu_baseline(self):
        """PyTorch float32 online training of 784-128-10 on the first MNIST samples: each rule and BP."""
        layers = (784, 128, 10)
        dataset = self.dataset("mnist")
        order = _order(len(dataset.train_y))[:self.budget.cpu_samples]
        baseline = {}
        for rule, basis, label in (*RULES, CPU_REFERENCE):
            self.log(f"cpu: float32 online {label}, {len(order)} samples, best of {CPU_REPEATS}")
            runs = [float_online(dataset, layers, rule, basis, order, seed=SEED) for _ in range(CPU_REPEATS)]
            best = min(runs, key=lambda r: r["seconds"])
            baseline[label] = {"network": network_name(layers), "rule": rule, "basis": basis, "label": label,
                               "samples": best["samples"], "seconds": best["seconds"],
                               "samples_per_second": best["samples_per_second"],
                               "repeats_samples_per_second": [r["samples_per_second"] for r in runs]}
        return baseline

    def hardware(self):
        reports = []
        for board in boards.BOARDS:
            report = boards.load_report(self.build_root, board)
            wanted = self.synth is True or (self.synth and board in self.synth)
            if "missing" in report and self.budget.synth and wanted:
                if boards.synth_available():
                    self.log(f"hardware: synchrony synth --board {board}")
                    log = self.build_root / f"{board}-bench-synth.log"
                    code = boards.run_synth(board, self.build_root, log)
                    report = boards.load_report(self.build_root, board)
                    if "missing" in report:
                        report["missing"] += f" (synchrony synth exited {code}; log {log})"
                else:
                    report["missing"] += "; this checkout has no `synchrony synth` to make one"
            elif "missing" in report:
                report["missing"] += f"; synthesis not run ({'--no-synth' if self.budget.synth else self.budget.name + ' mode'})"
            reports.append(report)
        rows = []
        for report in reports:
            if "missing" in report:
                row = {"board": report["board"], "missing": report["missing"]}
                defined = boards.definition(report["board"])
                if defined:
                    # Fmax cancels in the ceiling fraction: lanes x utilisation / multipliers.
                    rule, basis = boards.parse_rule(defined["rule"])
                    layers, lanes = tuple(defined["layers"]), defined["lanes"]
                    row["definition"] = defined
                    row["network"] = network_name(layers)
                    if self._can_simulate(layers, rule, basis, lanes):
                        engine = self.engine_row(layers, rule, basis, lanes, boards.weight_store(report["board"]))
                        row.update(lane_utilisation=engine["lane_utilisation"],
                                   padding_bound_utilisation=engine["padding_bound_utilisation"],
                                   overhead_cycles_per_sample=engine["overhead_cycles_per_sample"],
                                   cycles_per_sample=engine["cycles_per_sample"],
                                   lanes=lanes, multipliers=defined["multipliers"],
                                   ceiling_fraction_without_fmax=lanes * engine["lane_utilisation"]
                                   / defined["multipliers"])
                rows.append(row)
                continue
            rule, basis = boards.parse_rule(report["rule"])
            layers, lanes = tuple(report["layers"]), int(report["lanes"])
            row = {k: report.get(k) for k in ("board", "device", "rule", "lanes", "fmax_mhz", "target_mhz",
                                              "timing", "resources", "config_digest", "path")}
            row["network"] = network_name(layers)
            multipliers = report["resources"]["dsp"]["total"]
            row["multipliers"] = multipliers
            fmax = float(report["fmax_mhz"])
            row["ceiling_gmacs"] = multipliers * fmax / 1e3
            if self._can_simulate(layers, rule, basis, lanes):
                # The report's own engine: the iCEBreaker's weights are in SPRAM (its schedule).
                store = report.get("pipelines", {}).get("weight_store") or boards.weight_store(report["board"])
                engine = self.engine_row(layers, rule, basis, lanes, store)
                row["weight_store"] = engine["weight_store"]
                row["cycles_per_sample"] = engine["cycles_per_sample"]
                row["lane_utilisation"] = engine["lane_utilisation"]
                row["padding_bound_utilisation"] = engine["padding_bound_utilisation"]
                row["overhead_cycles_per_sample"] = engine["overhead_cycles_per_sample"]
                row["config_matches"] = report.get("config_digest") in (None, engine["config_digest"])
                row["sustained_gmacs"] = lanes * engine["lane_utilisation"] * fmax / 1e3
                row["ceiling_fraction"] = row["sustained_gmacs"] / row["ceiling_gmacs"]
                row["training_samples_per_second"] = fmax * 1e6 / engine["cycles_per_sample"]
            else:
                row["not_simulated"] = f"{network_name(layers)} on {lanes} lanes is not simulated in " \
                                       f"{self.budget.name} mode"
            rows.append(row)
        self.result["hardware"] = rows
        return reports

    def _can_simulate(self, layers, rule, basis, lanes):
        return self.budget.name == "full" or (tuple(layers), rule, basis if rule != "drtp" else None, lanes) in \
            self.rtl_runs

    def cpu(self, reports):
        baseline = self.cpu_baseline()
        layers = (784, 128, 10)
        rows = []
        # Any board: the engine's own figures at 8 lanes, then each board with a report.
        defined = []
        for r in reports:
            d = boards.definition(r["board"]) if "missing" in r else None
            if d:
                defined.append({"board": r["board"], "lanes": d["lanes"], "target_mhz": d["target_mhz"],
                                "missing": r["missing"]})
        for report in [{"board": "(any)", "lanes": LANES, "missing": "no clock: break-even only"}] + \
                [r for r in reports if "missing" not in r] + defined:
            lanes = int(report["lanes"])
            # On a board with other than 8 lanes: LLS square only (each rule is one more engine build).
            for rule, basis, label in RULES:
                if report["board"] != "(any)" and lanes != LANES and (rule, basis) != ("lls", "square"):
                    continue
                row = {"board": report["board"], "network": network_name(layers), "rule": rule, "basis": basis,
                       "label": label, "lanes": lanes,
                       "cpu_samples_per_second": baseline[label]["samples_per_second"],
                       "cpu_bp_samples_per_second": baseline["BP"]["samples_per_second"],
                       "cpu_samples": baseline[label]["samples"]}
                if not self._can_simulate(layers, rule, basis, lanes):
                    row["missing"] = f"{network_name(layers)} {label} on {lanes} lanes not simulated in " \
                                     f"{self.budget.name} mode"
                    rows.append(row)
                    continue
                store = boards.weight_store(report["board"]) if report["board"] != "(any)" else None
                if store == "spram" and not boards.spram_fits(report["board"], layers, rule, basis, lanes):
                    row["missing"] = (f"{network_name(layers)} does not fit the {report['board']}'s SPRAM weight "
                                      f"store on {lanes} lanes (boards/budget.py)")
                    rows.append(row)
                    continue
                engine = self.engine_row(layers, rule, basis, lanes, store)
                row["weight_store"] = engine["weight_store"]
                per_sample = engine["cycles_per_sample"]
                row["cycles_per_sample"] = per_sample
                # The clock at which the engine trains as fast as the CPU: measured, whatever the board.
                row["break_even_mhz"] = baseline[label]["samples_per_second"] * per_sample / 1e6
                if "missing" in report:
                    row["missing"] = report["missing"]
                    if report.get("target_mhz"):
                        # The clock the build is constrained to: a projection, not a measured Fmax.
                        row["target_mhz"] = report["target_mhz"]
                        row["ratio_at_target_clock"] = report["target_mhz"] * 1e6 / per_sample \
                            / row["cpu_samples_per_second"]
                else:
                    fmax = float(report["fmax_mhz"])
                    row["fmax_mhz"] = fmax
                    row["fmax_network"] = network_name(report["layers"])
                    row["onchip_samples_per_second"] = fmax * 1e6 / per_sample
                    row["ratio"] = row["onchip_samples_per_second"] / row["cpu_samples_per_second"]
                    row["ratio_vs_cpu_bp"] = row["onchip_samples_per_second"] / row["cpu_bp_samples_per_second"]
                rows.append(row)
        self.result["cpu"] = {"baseline": list(baseline.values()), "rows": rows,
                              "boards_missing": [{"board": r["board"], "missing": r["missing"]}
                                                 for r in reports if "missing" in r]}

    # -- cost accounting ---------------------------------------------------------------------------

    def cost(self):
        rows = []
        for _, layers in NETWORKS:
            spec = NetSpec(layers)
            bp = account(spec, "bp")
            for rule, basis, label in RULES:
                cost = account(spec, rule, basis=basis or "square")
                rows.append({"network": network_name(layers), "rule": rule, "basis": basis, "label": label,
                             "macs": cost.total_macs, "signal_macs": cost.signal_macs,
                             "memory_bits": cost.memory_bits, "feedback_bits": cost.feedback_memory_bits,
                             "activation_bits": cost.activation_memory_bits,
                             "bp_macs": bp.total_macs, "bp_signal_macs": bp.signal_macs,
                             "bp_memory_bits": bp.memory_bits,
                             "macs_vs_bp": cost.total_macs / bp.total_macs,
                             "signal_macs_vs_bp": cost.signal_macs / bp.signal_macs,
                             "memory_vs_bp": cost.memory_bits / bp.memory_bits})
        self.result["cost"] = rows


def run_bench(budget, *, data_dir=None, build_root=None, log=_log, synth=True):
    """Run every benchmark within ``budget``; returns the result dict (see :data:`RESULT_KEYS`).

    ``synth=False``: never run ``synchrony synth``, even for a board without a report; a list of
    board names: only for those.
    """
    start = time.perf_counter()
    bench = Bench(budget, data_dir=data_dir, build_root=build_root, log=log, synth=synth)
    now = datetime.now(timezone.utc)
    result = bench.result
    result.update({"schema": 1, "date": now.strftime("%Y-%m-%d"), "started_utc": now.isoformat(timespec="seconds"),
                   "mode": budget.name, "commit": _git("rev-parse", "HEAD"),
                   "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")), "machine": _machine()})
    bench.cost()
    bench.curves()
    bench.engine()
    bench.simulation()
    reports = bench.hardware()
    bench.cpu(reports)
    result["duration_seconds"] = time.perf_counter() - start
    return {key: result[key] for key in RESULT_KEYS}
