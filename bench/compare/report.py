#!/usr/bin/env python3
"""Turns the comparison suite's results file into markdown tables and charts.

   report.py RESULTS.tsv --markdown=OUT.md [--charts=DIR] [--link=PREFIX]
             [--command="the command that produced RESULTS"]

RESULTS.tsv is what run_compare.sh writes (M, I, R and F lines). Each
workload gets one table: every contender's absolute number and, in
parentheses, its ratio to glibc malloc's number for the same case in the same
run. With --charts, each workload also gets a PNG (gnuplot; skipped with a
note when gnuplot is missing). --link is the path prefix the markdown uses
for the charts (default: the charts directory as given).
"""

import argparse
import collections
import os
import shutil
import statistics
import subprocess
import sys

BASELINE = "glibc"


class Results:
    """The parsed results file."""

    def __init__(self, path):
        self.machine = collections.OrderedDict()
        self.mallocs = []  # (name, version, library)
        # (workload, case, contender, metric) -> [value per run]
        self.values = collections.defaultdict(list)
        self.failures = []
        self.cases = collections.defaultdict(list)  # workload -> [case]
        self.contenders = collections.defaultdict(list)  # workload -> [name]
        with open(path, encoding="utf-8") as f:
            for line in f:
                fields = line.rstrip("\n").split("\t")
                kind = fields[0]
                if kind == "M" and len(fields) == 3:
                    self.machine[fields[1]] = fields[2]
                elif kind == "I" and len(fields) == 4:
                    self.mallocs.append(tuple(fields[1:]))
                elif kind == "R" and len(fields) == 6:
                    workload, case, who, metric, value = fields[1:]
                    self.values[(workload, case, who, metric)].append(
                        float(value))
                    if case not in self.cases[workload]:
                        self.cases[workload].append(case)
                    if who not in self.contenders[workload]:
                        self.contenders[workload].append(who)
                elif kind == "F" and len(fields) == 5:
                    self.failures.append(fields[1:])

    def get(self, workload, case, who, metric):
        """The best of the runs for a throughput, else their median."""
        runs = self.values.get((workload, case, who, metric))
        if not runs:
            return None
        if metric.endswith("_per_s"):
            return max(runs)
        return statistics.median(runs)

    def spread(self, workload, cases, who, metric):
        """The largest best/worst ratio over the runs of any of `cases`."""
        worst = 1.0
        for case in cases:
            runs = self.values.get((workload, case, who, metric)) or []
            if len(runs) > 1 and min(runs) > 0:
                worst = max(worst, max(runs) / min(runs))
        return f"{worst:.1f}×"

    def ratio(self, workload, case, who, metric):
        """who's value over glibc's for the same case, or None."""
        mine = self.get(workload, case, who, metric)
        base = self.get(workload, case, BASELINE, metric)
        if mine is None or not base:
            return None
        return mine / base


def num(value, digits=3):
    """A compact number: 3 significant digits, no exponent below 1e7."""
    if value is None:
        return "—"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def mib(value):
    return "—" if value is None else f"{value / 1048576:.1f}"


def cell(results, workload, case, who, metric, fmt=num):
    value = results.get(workload, case, who, metric)
    if value is None:
        return "—"
    r = results.ratio(workload, case, who, metric)
    text = fmt(value)
    if r is not None and who != BASELINE:
        text += f" ({r:.2f}×)"
    return text


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:"
                            for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# Distinct bar colours, one per contender (gnuplot's default repeats after 8).
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
           "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#17becf", "#000000"]


class Chart:
    """A clustered bar chart: groups along x, one bar per series."""

    def __init__(self, name, title, ylabel, groups, series, value,
                 log=False, baseline_line=False, whisker=None):
        self.name, self.title, self.ylabel = name, title, ylabel
        self.groups, self.series, self.value = groups, series, value
        self.log, self.baseline_line, self.whisker = log, baseline_line, whisker

    def render(self, directory):
        data = os.path.join(directory, self.name + ".dat")
        png = os.path.join(directory, self.name + ".png")
        with open(data, "w", encoding="utf-8") as f:
            header = ["group"]
            for s in self.series:
                header += [s, s + "_max"] if self.whisker else [s]
            f.write("\t".join(f'"{h}"' for h in header) + "\n")
            for g in self.groups:
                row = [f'"{g}"']
                for s in self.series:
                    v = self.value(g, s)
                    row.append("NaN" if v is None else repr(v))
                    if self.whisker:
                        w = self.whisker(g, s)
                        row.append("NaN" if w is None else repr(w))
                f.write("\t".join(row) + "\n")
        step = 2 if self.whisker else 1
        n = len(self.series)
        style = ("set style histogram errorbars gap 1 lw 1" if self.whisker
                 else "set style histogram clustered gap 1")
        using = ("using i:i:(column(i+1)):xtic(1)" if self.whisker
                 else "using i:xtic(1)")
        colors = " ".join(PALETTE)
        script = f"""
set terminal pngcairo size 1200,520 font ",10" noenhanced
set output '{png}'
set title '{self.title}'
set datafile separator tab
set datafile missing 'NaN'
set style data histograms
{style}
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set ylabel '{self.ylabel}'
set grid ytics
set xtics scale 0 rotate by -15
{"set logscale y" if self.log else "set yrange [0:*]"}
colors = "{colors}"
{"set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 2" if self.baseline_line else ""}
plot for [i=2:{1 + step * n}:{step}] '{data}' {using} title columnheader(i) \
    lc rgb word(colors, (i - 2) / {step} % {len(PALETTE)} + 1)
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
        os.remove(data)
        return png


def section(title, intro, body, chart_names, link):
    out = [f"#### {title}", "", intro, "", body, ""]
    for name in chart_names:
        out += [f"![{title}]({link}{name}.png)", ""]
    return "\n".join(out)


def throughput_section(results, workload, title, metric, unit, charts, intro):
    cases = results.cases[workload]
    whos = results.contenders[workload]
    rows = [[f"`{w}`"] + [cell(results, workload, c, w, metric) for c in cases]
            + [results.spread(workload, cases, w, metric)] for w in whos]
    body = table(["contender"] + [f"{c} ({unit})" for c in cases]
                 + ["run spread"], rows)
    charts.append(Chart(
        "compare_" + workload,
        f"{title}: throughput / glibc (log scale; higher is better)",
        "ratio to glibc", cases, whos,
        lambda g, s: results.ratio(workload, g, s, metric),
        log=True, baseline_line=True))
    return section(title, intro, body, ["compare_" + workload], "{link}")


def prodcons_section(results, charts):
    w = "prodcons"
    rows = []
    for who in results.contenders[w]:
        for case in results.cases[w]:
            rows.append([
                f"`{who}`",
                cell(results, w, case, who, "mblocks_per_s"),
                cell(results, w, case, who, "peak_rss_growth", mib),
                mib(results.get(w, case, who, "allocator_peak")),
            ])
    body = table(["contender", "M blocks/s", "peak RSS growth (MiB)",
                  "fmemp probe peak (MiB)"], rows)
    charts.append(Chart(
        "compare_prodcons", "Producer/consumer: throughput and peak RSS growth / glibc",
        "ratio to glibc", ["throughput (higher is better)",
                           "peak RSS growth (lower is better)"],
        results.contenders[w],
        lambda g, s: results.ratio(
            w, results.cases[w][0], s,
            "mblocks_per_s" if g.startswith("throughput") else "peak_rss_growth"),
        baseline_line=True))
    return section(
        "3. Producer/consumer", "One thread allocates 16 B..4 KiB blocks and "
        "passes them through a 4096-slot ring to another thread, which frees "
        "them. Peak RSS growth is VmHWM during the run (reset through "
        "/proc/self/clear_refs) minus RSS before it, for every contender; the "
        "fmemp probe peak is the allocator's own peak of used bytes (headers "
        "included), for fmemp contenders only. Ratios are to glibc.",
        body, ["compare_prodcons"], "{link}")


LATENCY_METRICS = [("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"),
                   ("p9999", "p99.99"), ("max", "max")]


def latency_section(results, charts):
    w = "latency"
    case = results.cases[w][0] if results.cases[w] else ""
    whos = results.contenders[w]
    rows = []
    for who in whos:
        row = [f"`{who}`"]
        for op in ("malloc", "free"):
            for key, _ in LATENCY_METRICS:
                row.append(cell(results, w, case, who, f"{op}_{key}_ns"))
        failed = results.get(w, case, who, "failed_allocations")
        row.append(num(failed))
        rows.append(row)
    header = ["contender"] + [f"{op} {label}" for op in ("malloc", "free")
                              for _, label in LATENCY_METRICS] + ["failed"]
    timer = results.get(w, case, BASELINE, "timer_ns")
    for op in ("malloc", "free"):
        charts.append(Chart(
            f"compare_latency_{op}", f"Latency of {op} (ns, log scale; lower is better)",
            "ns", [label for _, label in LATENCY_METRICS], whos,
            lambda g, s, op=op: results.get(
                w, case, s, op + "_" + dict((b, a) for a, b in LATENCY_METRICS)[g] + "_ns"),
            log=True))
    return section(
        "4. Latency", f"{case}. Nanoseconds per call (steady_clock read before "
        f"and after each call; the two reads cost about {num(timer)} ns, not "
        "subtracted); in parentheses the ratio to glibc (**lower is better**). "
        "`failed`: allocations refused because the fixed region was too "
        "fragmented (the step then frees instead).",
        table(header, rows), ["compare_latency_malloc", "compare_latency_free"],
        "{link}")


def memory_section(results, charts):
    w = "memory"
    case = results.cases[w][0] if results.cases[w] else ""
    rows = []
    values = {}
    for who in results.contenders[w]:
        region = results.get(w, case, who, "region_over_peak_live")
        rss = results.get(w, case, who, "rss_over_peak_live")
        if region is not None:
            values[who] = region
            rows.append([f"`{who}`", "smallest single region ÷ peak live bytes",
                         f"{region:.3f}",
                         mib(results.get(w, case, who, "min_region_bytes"))])
        elif rss is not None:
            values[who] = rss
            rows.append([f"`{who}`", "peak RSS growth ÷ peak live bytes "
                         "(a different measure)", f"{rss:.3f}", "—"])
    peak = results.get(w, case, BASELINE, "peak_live_bytes")
    charts.append(Chart(
        "compare_memory", "Memory needed / peak live bytes (lower is better)",
        "÷ peak live bytes", [case], list(values),
        lambda g, s: values.get(s)))
    return section(
        "5. Memory efficiency", f"{case} ({mib(peak)} MiB of requested bytes "
        "live at the peak). fmemp contenders: the smallest single region, in "
        "4 KiB steps found by binary search, in which the whole trace "
        "replays without one failed allocation. Malloc contenders: the "
        "growth of peak RSS while replaying the same trace with every block "
        "written in full. The two measures differ: the region is memory "
        "reserved up front, RSS counts only pages touched (plus the "
        "allocator's own metadata), so no ratio to glibc is given.",
        table(["contender", "measure", "value", "region (MiB)"], rows),
        ["compare_memory"], "{link}")


def callgrind_section(results, charts):
    w = "callgrind"
    rows = []
    cases = results.cases[w]
    whos = results.contenders[w]
    for case in cases:
        for who in whos:
            if results.get(w, case, who, "malloc_avg_ir") is None:
                continue
            rows.append([case, f"`{who}`"] + [
                cell(results, w, case, who, f"{op}_{stat}_ir")
                for op in ("malloc", "free") for stat in ("avg", "max")])
    calib = results.get(w, cases[0], whos[0], "calibration_ir") if cases else None
    calls = results.get(w, cases[0], whos[0], "malloc_calls") if cases else None
    for op in ("malloc", "free"):
        charts.append(Chart(
            f"compare_callgrind_{op}",
            f"Instructions per {op}: bar = average, whisker = worst call",
            "instructions", cases, whos,
            lambda g, s, op=op: results.get(w, g, s, op + "_avg_ir"),
            whisker=lambda g, s, op=op: results.get(w, g, s, op + "_max_ir")))
    return section(
        "7. Instructions per call (callgrind)",
        f"{num(calls)} measured calls of each kind per row, sizes 16 B..4 KiB, "
        "after filling the live set. Each call runs with collection toggled on "
        "around it and is followed by its own callgrind dump, so every single "
        "call's count is known: avg is the mean, max the worst call. The "
        f"toggling itself ({num(calib)} instructions, measured with nothing "
        "between the toggles) is subtracted. Counts include the suite's "
        "indirect call into the contender and, for `tlsf-heap+mutex`, "
        "`memp-mutex` and `fmemp-c-api`, an uncontended lock and unlock. "
        "Deterministic: a rerun gives the same numbers. Ratios to glibc in "
        "parentheses (lower is better).",
        table(["heap", "contender", "malloc avg", "malloc max", "free avg",
               "free max"], rows),
        ["compare_callgrind_malloc", "compare_callgrind_free"], "{link}")


def header(results, command):
    m = results.machine
    lines = [
        f"Command: `{command}`" if command else "",
        "",
        f"* `nproc`: {m.get('nproc', '?')}; CPU: {m.get('cpu', '?')}; "
        f"kernel {m.get('kernel', '?')}; {m.get('compiler', '?')}, `-c opt`.",
        f"* Scale `{m.get('scale', '?')}`, server threads {m.get('threads', '?')}, "
        f"run {m.get('date', '?')}. Timed workloads ran "
        f"{m.get('repeat', '1')} time(s), in rounds over all contenders; "
        "throughputs are the best run, latencies the median run.",
        "* Each binary checked at startup which allocator serves its malloc:",
    ]
    for name, version, library in results.mallocs:
        lines.append(f"  * `{name}`: {version} (`{library}`)")
    if results.failures:
        lines.append("* **Failed cases**: " + "; ".join(
            f"{f[0]} / {f[1]} / `{f[2]}`: {f[3]}" for f in results.failures))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("--markdown", required=True)
    parser.add_argument("--charts")
    parser.add_argument("--link")
    parser.add_argument("--command", default="")
    args = parser.parse_args()

    results = Results(args.results)
    charts = []
    parts = [header(results, args.command)]
    if results.cases["single"]:
        parts.append(throughput_section(
            results, "single", "1. Single thread", "msteps_per_s",
            "M steps/s", charts,
            "Each step frees a random slot of the live set and allocates a "
            "new random size into it (one malloc + one free), then writes one "
            "byte. Million steps per second; in parentheses the ratio to glibc "
            "(**higher is better**). *Run spread*: the largest best-run / "
            "worst-run ratio over the contender's cases, a measure of how much "
            "the shared machine disturbed it."))
    if results.cases["server"]:
        parts.append(throughput_section(
            results, "server", "2. Server (larson-like)", "msteps_per_s",
            "M steps/s, all threads", charts,
            "Each thread owns 1 K live blocks of 16 B..1 KiB and replaces "
            "random slots; 10 % of the freed blocks go, in batches of 64, to "
            "the next thread (itself at 1 thread), which frees them. "
            "`memp-nolock` is single-threaded and absent. Ratio to glibc in "
            "parentheses (**higher is better**)."))
    if results.cases["prodcons"]:
        parts.append(prodcons_section(results, charts))
    if results.cases["latency"]:
        parts.append(latency_section(results, charts))
    if results.cases["memory"]:
        parts.append(memory_section(results, charts))
    if results.cases["regions"]:
        parts.append(throughput_section(
            results, "regions", "6. Regions", "msteps_per_s", "M steps/s",
            charts,
            "Workload 1 with 1 K live blocks, the fmemp contenders spread over "
            "1, 8 and 64 regions of equal size (same total); malloc "
            "contenders have no regions and repeat their number. Ratio to "
            "glibc (**higher is better**)."))
    if results.cases["callgrind"]:
        parts.append(callgrind_section(results, charts))

    link = args.link if args.link is not None else (
        (args.charts.rstrip("/") + "/") if args.charts else "")
    text = "\n\n".join(parts).replace("{link}", link) + "\n"
    if args.charts:
        os.makedirs(args.charts, exist_ok=True)
        if shutil.which("gnuplot"):
            for chart in charts:
                chart.render(args.charts)
        else:
            print("report.py: gnuplot not found; no charts", file=sys.stderr)
    with open(args.markdown, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
