"""``docs/benchmarks.md`` and its plots, generated from one ``synchrony bench`` result."""

import os
from pathlib import Path

__all__ = ["headline", "plot_curves", "plot_engine", "write_report"]

UTILISATION_TARGET = 0.90
CEILING_TARGET = 0.85


def _pct(value):
    return "—" if value is None else f"{100 * value:.1f} %"


def _num(value, digits=3):
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _ratio(value):
    return "—" if value is None else (f"{value:,.0f}×" if value >= 100 else f"{value:.3g}×")


def _table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def headline(result):
    """One line per acceptance figure, for the terminal and the README."""
    lines = []
    for row in result["engine"]:
        if row["lanes"] == 8 and row["label"] == "LLS square":
            lines.append(f"lane utilisation {row['network']} {row['label']} P=8: {row['lane_utilisation']:.3f} "
                         f"({row['cycles_per_sample']:.0f} cycles/sample, {row['ideal_ratio']:.3f} of ideal)")
    for row in result["hardware"]:
        if "missing" in row:
            lines.append(f"{row['board']}: no hardware figures ({row['missing']})")
        elif "ceiling_fraction" in row:
            lines.append(f"{row['board']}: {row['sustained_gmacs']:.3f} GMAC/s sustained = "
                         f"{row['ceiling_fraction']:.3f} of the multiplier ceiling at {row['fmax_mhz']:.1f} MHz")
    for row in result["hardware"]:
        if "ceiling_fraction_without_fmax" in row:
            lines.append(f"{row['board']} default build ({row['lanes']} lanes / {row['multipliers']} multipliers, "
                         f"{row['network']} {row['definition']['rule']}): {row['ceiling_fraction_without_fmax']:.3f} "
                         f"of the multiplier ceiling (Fmax cancels)")
    for row in result["cpu"]["rows"]:
        if row["label"] != "LLS square":
            continue
        if "ratio_at_target_clock" in row:
            lines.append(f"784-128-10 LLS square on {row['board']} (P={row['lanes']}): break-even "
                         f"{row['break_even_mhz']:.1f} MHz; {row['ratio_at_target_clock']:.2f}× this CPU at its "
                         f"{row['target_mhz']:g} MHz target clock (no report: projection)")
        elif "ratio" in row:
            lines.append(f"784-128-10 LLS square on {row['board']} (P={row['lanes']}, {row['fmax_mhz']:.1f} MHz): "
                         f"{row['ratio']:.2f}× PyTorch float32 online on this CPU")
        elif "break_even_mhz" in row:
            lines.append(f"784-128-10 LLS square, P={row['lanes']}: trains as fast as PyTorch on this CPU at "
                         f"{row['break_even_mhz']:.1f} MHz")
    sim = result["simulation"]
    lines.append(f"Verilator / Amaranth simulator: {sim['ratio']:.0f}× ({sim['design']}, {sim['samples']} samples)")
    for row in result["cost"]:
        if row["network"] == "784-128-10":
            lines.append(f"784-128-10 {row['label']}: MACs {row['macs_vs_bp']:.3f}× BP, memory "
                         f"{row['memory_vs_bp']:.3f}× BP")
    lines.append(f"RTL curves identical to the integer model's: {result['rtl_matches_integer']['all']}")
    lines.append(f"duration {result['duration_seconds']:.0f} s ({result['mode']})")
    return "\n".join(lines)


# -- plots ------------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_curves(result, dataset, path):
    plt = _pyplot()
    curves = [c for c in result["curves"] if c["dataset"] == dataset]
    labels = list(dict.fromkeys(c["label"] for c in curves))
    checks = {c["label"]: c for c in result["rtl_matches_integer"]["checks"] if c["dataset"] == dataset}
    fig, axes = plt.subplots(1, len(labels), figsize=(4.2 * len(labels), 3.4), sharey=True, squeeze=False)
    for ax, label in zip(axes[0], labels):
        for c in curves:
            if c["label"] != label:
                continue
            xs = [p["samples_seen"] for p in c["points"]]
            ys = [100 * p["accuracy"] for p in c["points"]]
            if c["model"] == "float":
                ax.plot(xs, ys, "-", color="tab:blue", label=f"float32 ({c['test_set']} test)")
            elif c["model"] == "integer":
                ax.plot(xs, ys, "-", color="tab:orange", label=f"integer ({c['test_set']} test)")
        check = checks.get(label)
        if check:
            xs = [p["samples_seen"] for p in check["points"]]
            ax.plot(xs, [100 * p["integer_accuracy"] for p in check["points"]], "o", mfc="none", ms=9,
                    color="tab:orange", label=f"integer ({check['test_set']} test)")
            ax.plot(xs, [100 * p["rtl_accuracy"] for p in check["points"]], "x", color="tab:red", ms=7,
                    label=f"RTL, Verilator ({check['test_set']} test)")
        ax.set_title(f"{dataset}: {label}")
        ax.set_xlabel("training samples seen (online, batch 1)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("test accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_engine(result, path):
    plt = _pyplot()
    rows = [r for r in result["engine"] if r["lanes"] == 8]
    networks = list(dict.fromkeys(r["network"] for r in rows))
    labels = list(dict.fromkeys(r["label"] for r in rows))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / max(len(labels), 1)
    for i, label in enumerate(labels):
        xs, ys = [], []
        for j, network in enumerate(networks):
            row = next((r for r in rows if r["network"] == network and r["label"] == label), None)
            if row:
                xs.append(j + (i - (len(labels) - 1) / 2) * width)
                ys.append(row["lane_utilisation"])
        ax.bar(xs, ys, width, label=label)
    ax.axhline(UTILISATION_TARGET, color="k", ls="--", lw=1, label=f"target {UTILISATION_TARGET}")
    ax.set_xticks(range(len(networks)), networks)
    ax.set_ylim(0.8, 1.0)
    ax.set_ylabel("lane utilisation (RTL counters)")
    ax.set_title("Engine, 8 MAC lanes: busy lane-cycles / (lanes × cycles)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cost(result, path):
    plt = _pyplot()
    rows = result["cost"]
    networks = list(dict.fromkeys(r["network"] for r in rows))
    labels = list(dict.fromkeys(r["label"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    width = 0.8 / len(labels)
    for ax, key, title in ((axes[0], "macs_vs_bp", "MACs per sample ÷ BP's"),
                           (axes[1], "memory_vs_bp", "training-state memory ÷ BP's")):
        for i, label in enumerate(labels):
            ys = [next(r[key] for r in rows if r["network"] == n and r["label"] == label) for n in networks]
            ax.bar([j + (i - (len(labels) - 1) / 2) * width for j in range(len(networks))], ys, width, label=label)
        ax.axhline(1.0, color="k", lw=1)
        ax.set_xticks(range(len(networks)), networks, fontsize=8)
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- Markdown ---------------------------------------------------------------------------------------

def write_report(result, path, json_path=None):
    """Write the Markdown report to ``path`` and its PNGs to ``<path's dir>/img/``."""
    path = Path(path)
    img = path.parent / "img"
    img.mkdir(parents=True, exist_ok=True)
    plots = {"engine": img / "bench_utilisation.png", "cost": img / "bench_cost.png"}
    plot_engine(result, plots["engine"])
    plot_cost(result, plots["cost"])
    for dataset in dict.fromkeys(c["dataset"] for c in result["curves"]):
        plots[dataset] = img / f"bench_curves_{dataset}.png"
        plot_curves(result, dataset, plots[dataset])
    rel = {k: os.path.relpath(v, path.parent) for k, v in plots.items()}
    json_rel = os.path.relpath(json_path, path.parent) if json_path else None
    m = result["machine"]
    out = [
        "# Benchmarks",
        "",
        f"Generated by `synchrony bench{' --quick' if result['mode'] == 'quick' else ''}` (`make bench`) on "
        f"{result['date']} at commit `{(result['commit'] or 'unknown')[:12]}`"
        f"{' (with uncommitted changes)' if result['dirty'] else ''}, {result['mode']} run, "
        f"**{result['duration_seconds'] / 60:.1f} min** wall on {m['cpu']} ({m['cores']} cores, shared; load "
        f"{m['load_average_start']:.1f} at the start; PyTorch {m['torch']} on {m['torch_threads']} thread)."
        + (f" Raw figures: [`{json_rel}`]({json_rel})." if json_rel else ""),
        "",
        "Every comparison below is measured in the same run and given as a ratio: absolute times on this "
        "shared machine are noisy, ratios much less so. Nothing here is estimated: a figure that could "
        "not be measured says why.",
        "",
        "## Headline",
        "",
        "```",
        headline(result),
        "```",
        "",
    ]
    out += _engine_section(result, rel)
    out += _hardware_section(result)
    out += _cpu_section(result)
    out += _simulation_section(result)
    out += _cost_section(result, rel)
    out += _curves_section(result, rel)
    if result["notes"]:
        out += ["## Notes from the run", ""] + [f"- {n}" for n in result["notes"]] + [""]
    path.write_text("\n".join(out))


def _engine_section(result, rel):
    rows = [[r["network"], r["label"], r["lanes"], r["dataset"], r["samples"], f"{r['cycles_per_sample']:,.0f}",
             f"{r['ideal_cycles_per_sample']:,.0f}", f"{r['ideal_ratio']:.3f}", f"**{r['lane_utilisation']:.3f}**",
             f"{r['padding_bound_utilisation']:.3f}", f"{r['overhead_cycles_per_sample']:.0f}",
             "yes" if r["bit_exact"] else "**no**"] for r in result["engine"]]
    out = ["## 1. Engine efficiency (RTL under Verilator)", "",
           "Cycles per training sample from the RTL's own counters (`Status.CYCLES`, `Status.BUSY`) over real "
           "training samples, every step checked against the integer model. *Lane utilisation* = busy lane-cycles "
           "÷ (lanes × cycles), a lane-cycle being busy when it loads a bias or multiplies for a neuron that "
           "exists. *Ideal* = the MACs the lanes must do (forward + weight update, `golden/accounting.py`) ÷ "
           "lanes; the ratio is ideal ÷ measured cycles (the bias loads make it a little lower than the "
           "utilisation). The learning signal (LLS unit, DRTP projection, softmax) runs beside the lanes and "
           "costs no lane cycles.", "",
           "*Padding bound* is the utilisation the lane groups allow at one word per cycle (a layer of N "
           "neurons takes ⌈N/P⌉ groups of P lanes; padding lanes idle); *overhead* is the cycles per sample "
           "beyond one word per cycle (start handshake, pipeline drain, waits).", "",
           _table(["network", "rule", "P", "samples of", "samples", "cycles/sample", "ideal", "ideal ÷ measured",
                   "utilisation", "padding bound", "overhead cycles", "bit-exact"], rows), ""]
    if result["engine_skipped"]:
        out += ["Not measured in this run: " + ", ".join(f"{s['network']} {s['label']} ({s['reason']})"
                                                          for s in result["engine_skipped"]) + ".", ""]
    out += [f"![lane utilisation]({rel['engine']})", ""]
    for r in result["engine"]:
        if r["lane_utilisation"] < UTILISATION_TARGET:
            out += [f"**{r['network']} {r['label']} below the {UTILISATION_TARGET:.2f} target** "
                    f"({r['lane_utilisation']:.3f}). " + _limit(r), ""]
    return out


def _hardware_section(result):
    out = ["## 2. Hardware limit (synthesis reports)", "",
           "Per board, from `build/<board>/report.json` (`synchrony synth`): sustained GMAC/s while training = "
           "lanes × utilisation × Fmax (utilisation of the report's network on its lane count, measured above "
           "or in this run), against the ceiling = every multiplier of the part busy at Fmax.", ""]
    rows, missing = [], []
    for r in result["hardware"]:
        if "missing" in r:
            missing.append(f"- **{r['board']}**: {r['missing']}")
            continue
        res = r["resources"]
        rows.append([r["board"], r.get("device") or "—", r["network"], r["rule"], r["lanes"],
                     f"{r['fmax_mhz']:.1f}", _num(r.get("target_mhz")), r.get("timing") or "—",
                     " ".join(f"{k} {res[k]['used']}/{res[k]['total']}" for k in ("lut", "ff", "dsp", "ram")),
                     _num(r.get("lane_utilisation")), _num(r.get("sustained_gmacs")), _num(r["ceiling_gmacs"]),
                     f"**{_num(r.get('ceiling_fraction'))}**"])
    if rows:
        out += [_table(["board", "device", "network", "rule", "lanes", "Fmax MHz", "target", "timing", "resources",
                        "utilisation", "GMAC/s", "ceiling GMAC/s", "fraction"], rows), ""]
    if missing:
        out += ["No synthesis figures for:", ""] + missing + [""]
    projected = [r for r in result["hardware"] if "ceiling_fraction_without_fmax" in r]
    if projected:
        out += ["Without a report, the ceiling *fraction* is still known, because Fmax cancels: sustained ÷ "
                "ceiling = lanes × utilisation × Fmax ÷ (multipliers × Fmax). Lanes, rule and multipliers "
                "below are the board's default build (`boards/platforms.py`), utilisation is measured on its "
                "network and lane count in this run; GMAC/s needs the Fmax of a report.", "",
                _table(["board", "network", "rule", "lanes", "multipliers", "cycles/sample", "utilisation",
                        "padding bound", "fraction of the ceiling"],
                       [[r["board"], r["network"], r["definition"]["rule"], r["lanes"], r["multipliers"],
                         f"{r['cycles_per_sample']:,.0f}", f"{r['lane_utilisation']:.3f}",
                         f"{r['padding_bound_utilisation']:.3f}", f"**{r['ceiling_fraction_without_fmax']:.3f}**"]
                        for r in projected]), ""]
    for r in result["hardware"]:
        fraction = r.get("ceiling_fraction", r.get("ceiling_fraction_without_fmax"))
        if fraction is None or fraction >= CEILING_TARGET:
            continue
        out += [f"**{r['board']} below {CEILING_TARGET} of its ceiling** ({fraction:.3f} = "
                f"{r['lanes']}/{r['multipliers']} multipliers used as lanes × utilisation {r['lane_utilisation']:.3f}). "
                + _limit(r) + (f" The {r['multipliers'] - r['lanes']} multipliers left are outside the lanes "
                               "(the board's lane count)." if r["multipliers"] > r["lanes"] else ""), ""]
    return out


def _limit(r):
    """What keeps a row's lane utilisation below 1, from its padding bound and overhead cycles."""
    padding, measured = r["padding_bound_utilisation"], r["lane_utilisation"]
    text = (f"The lane groups allow {padding:.3f} on {r['network']} at P = {r['lanes']}; measured "
            f"{measured:.3f}, with {r['overhead_cycles_per_sample']:.0f} cycles per sample beyond one word per "
            "cycle. ")
    if r.get("weight_store") == "spram":
        text += ("The single-port weight store sets the pace: every weight crosses the SPRAMs' one 64-bit port "
                 "three times a training sample (forward read, update read, write back) and a word of P lanes "
                 "takes ⌈P/4⌉ beats, so the lanes can be busy at most a third of the time (× the padding bound: "
                 f"{padding / 3:.3f}; docs/architecture.md §2). Fix: the weights in dual-ported block RAM "
                 "(a read and a write each cycle), which the UP5K has room for only on small networks.")
    elif measured >= 0.98 * padding:
        text += ("Padding, not sequencing, limits it: a layer of N neurons takes ⌈N/P⌉ groups of P lanes, so "
                 "the 10-class output layer leaves P − 10 lanes idle in its group and a hidden width P does not "
                 "divide leaves a part-empty last group. Fix: P dividing the layer widths (and P close to 10 "
                 "or a multiple for the output layer), or wider layers on a wide engine.")
    else:
        layers = [int(v) for v in r["network"].split("-")]
        short = [k for k, m in enumerate(layers[:-1]) if m + 1 < r["lanes"] + 3]
        if short:
            text += (f"Sequencing costs more than padding here: a forward group of layer "
                     f"{', '.join(map(str, short))} is M + 1 = {layers[short[0]] + 1} words, shorter than P + 3 = "
                     f"{r['lanes'] + 3}, so its last word waits for the result bank (docs/architecture.md §3). "
                     "Fix: a second result bank, so that short groups overlap (784-input layers never wait).")
        else:
            text += ("Sequencing costs more than padding here: the sequencer waits for activations or δ words. "
                     "Fix: deeper prefetch of the next layer's inputs.")
    return text


def _cpu_section(result):
    cpu = result["cpu"]
    base = cpu["baseline"]
    out = ["## 3. Against a CPU", "",
           "PyTorch float32 online training (batch 1, plain SGD, the rule's online recipe, "
           f"{base[0]['samples']} MNIST samples, the same ones the engine trains on first) on this machine, one "
           "thread, measured in this run; against the engine's projected throughput, Fmax ÷ cycles per sample "
           "(cycles measured in simulation at the board's lane count). *Break-even* is the clock at which the "
           "engine would train as fast as this CPU: it needs no synthesis report.", "",
           _table(["rule (float32, CPU)", "samples/s (best)", "µs/sample", "the repeats (samples/s)"],
                  [[b["label"], f"{b['samples_per_second']:,.0f}", f"{1e6 / b['samples_per_second']:,.0f}",
                    ", ".join(f"{v:,.0f}" for v in b["repeats_samples_per_second"])] for b in base]), "",
           "The engine's side is exact (cycle counts); the CPU's varies with the load of this shared machine: "
           "the best of the repeats is used, and two full runs an hour apart on 2026-11-22 differed by up to "
           "2× on the CPU side (1,994 against 3,794 LLS-square samples/s), so read the ratios as ±2×. The "
           "iCEBreaker rows project the engine's cycles at that board's clock; 784-128-10's 1.44 Mbit of "
           "weights does not fit the UP5K (docs/architecture.md §2), whose MNIST build is a narrower 784-H-10.", ""]
    rows = []
    for r in cpu["rows"]:
        at_target = (f"{_ratio(r['ratio_at_target_clock'])} at {r['target_mhz']:g} MHz"
                     if "ratio_at_target_clock" in r else "—")
        note = "" if "ratio" in r else ("no synthesis report" if "target_mhz" in r else r.get("missing", ""))
        rows.append([r["board"], r["label"], r["lanes"], _num(r.get("cycles_per_sample")),
                     _num(r.get("break_even_mhz")), _num(r.get("fmax_mhz")),
                     _num(r.get("onchip_samples_per_second")), f"{r['cpu_samples_per_second']:,.0f}",
                     f"**{_ratio(r.get('ratio'))}**", _ratio(r.get("ratio_vs_cpu_bp")), at_target, note])
    out += ["*At target* is the ratio at the clock the board's build is constrained to (its PLL, "
            "`boards/platforms.py`): a projection, not a measured Fmax; it holds once timing is met.", "",
            _table(["board", "rule (784-128-10)", "lanes", "cycles/sample", "break-even MHz", "Fmax MHz",
                    "on-chip samples/s", "CPU samples/s", "on-chip ÷ CPU", "÷ CPU BP", "at target clock",
                    "note"], rows), ""]
    if cpu["boards_missing"]:
        out += ["No on-chip/CPU ratio for:", ""] + [f"- **{m['board']}**: {m['missing']}"
                                                      for m in cpu["boards_missing"]] + [""]
    return out


def _simulation_section(result):
    s = result["simulation"]
    v, a = s["verilator"], s["amaranth"]
    golden = result["golden_speed"]
    rows = [[g["dataset"], g["network"], g["label"], g["model"], f"{g['samples_per_second']:,.0f}"] for g in golden]
    return ["## 4. Simulation speed", "",
            f"The same design ({s['design']}) trained on the same {s['samples']} digits samples under Verilator "
            "(cocotb, `bench/cocotb_bench.py`) and under Amaranth's simulator (`bench/rtl.py`), both timed "
            "without their golden checks, then checked bit for bit "
            f"({'both bit-exact' if s['bit_exact'] else '**not bit-exact**'}; "
            f"{'identical' if s['same_cycles'] else '**different**'} engine cycle counts). Rates are engine "
            "cycles (the RTL's counter) per wall second.", "",
            _table(["simulator", "engine cycles", "seconds", "cycles/s", "note"],
                   [["Verilator", v["engine_cycles"], f"{v['seconds']:.3f}", f"{v['cycles_per_second']:,.0f}",
                     f"{v['clock_cycles_per_second']:,.0f} clock cycles/s; {v['long_run_cycles_per_second']:,.0f} "
                     f"cycles/s over its {v['long_run_samples']}-sample run"],
                    ["Amaranth (pysim)", a["engine_cycles"], f"{a['seconds']:.2f}", f"{a['cycles_per_second']:,.0f}",
                     f"+ {a['setup_seconds']:.1f} s elaboration; the self-initialisation before is not timed"],
                    ["**ratio**", "", "", f"**{s['ratio']:,.0f}×**", ""]]), "",
            "Golden models, training steps per second (one thread, evaluations excluded):", "",
            _table(["dataset", "network", "rule", "model", "samples/s"], rows), ""]


def _cost_section(result, rel):
    rows = [[r["network"], r["label"], f"{r['macs']:,}", f"{r['bp_macs']:,}", f"**{r['macs_vs_bp']:.3f}**",
             f"{r['signal_macs_vs_bp']:.3f}", f"{r['memory_bits']:,}", f"{r['bp_memory_bits']:,}",
             f"**{r['memory_vs_bp']:.3f}**"] for r in result["cost"]]
    return ["## 5. Cost per rule against BP", "",
            "From `golden/accounting.py` (`synchrony account`; 16-bit weights, 8-bit activations, batch 1; "
            "conventions in [accounting.md](accounting.md)). LLS sine counts its basis products as MACs, the "
            "square basis turns them into additions; DRTP's feedback matrix is counted as stored (the engine "
            "regenerates it from an LFSR, 0 bits).", "",
            _table(["network", "rule", "MACs/sample", "BP MACs", "MACs ÷ BP", "signal MACs ÷ BP's backward",
                    "memory bits", "BP bits", "memory ÷ BP"], rows), "",
            f"![cost against BP]({rel['cost']})", ""]


def _curves_section(result, rel):
    check = result["rtl_matches_integer"]
    rows = [[c["dataset"], c["label"], len(c["points"]), c["test_set"],
             "yes" if c["identical_predictions"] else "**no**", "yes" if c["rtl_bit_exact"] else "**no**"]
            for c in check["checks"]]
    out = ["## 6. Learning curves", "",
           "Test accuracy against training samples seen, online (batch 1), in one shared random order (the "
           "host order of the first epoch, seed 0): the float32 model (the rule's online SGD recipe at its "
           "constant first-epoch learning rate), the integer model (the hardware's numerics) and the RTL "
           "under Verilator. The RTL classifies a test subset at its evaluation points (circles: the integer "
           "model on the same subset at the same points; crosses: the RTL).", ""]
    for dataset in dict.fromkeys(c["dataset"] for c in result["curves"]):
        out += [f"![{dataset} learning curves]({rel[dataset]})", ""]
    how = check["how"][0].upper() + check["how"][1:]
    out += [f"**RTL on the integer curve: {'yes, exactly' if check['all'] else 'NO'}.** {how}.", "",
            _table(["dataset", "rule", "points", "test subset", "identical predictions", "every step bit-exact"],
                   rows), ""]
    final = []
    for c in result["curves"]:
        if c["points"]:
            final.append([c["dataset"], c["label"], c["model"], c["points"][-1]["samples_seen"], c["test_set"],
                          f"{100 * c['points'][-1]['accuracy']:.2f} %"])
    out += ["Last point of each curve:", "", _table(["dataset", "rule", "model", "samples seen", "test set",
                                                    "accuracy"], final), ""]
    return out
