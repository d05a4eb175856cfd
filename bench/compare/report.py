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


def table(header, rows, left=1):
    """A markdown table; the first `left` columns left-aligned, the rest
    right-aligned (numbers)."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < left else "---:"
                            for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# Distinct bar colours, one per contender (gnuplot's default repeats after
# 8); 18 of them, more than the suite has contenders.
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
           "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#17becf", "#000000",
           "#1f3a93", "#8cd17d", "#d4a6c8", "#7f0000", "#bcbd22", "#6b6b6b"]


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
            peak = results.get(w, case, who, "allocator_peak")
            live = results.get(w, case, who, "peak_live_bytes")
            rows.append([
                f"`{who}`",
                cell(results, w, case, who, "mblocks_per_s"),
                cell(results, w, case, who, "peak_rss_growth", mib),
                mib(live),
                mib(peak),
                f"{peak / live:.2f}×" if peak and live else "—",
            ])
    body = table(["contender", "M blocks/s", "peak RSS growth (MiB)",
                  "peak live (MiB)", "fmemp probe peak (MiB)",
                  "probe peak ÷ peak live"], rows)
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
        "/proc/self/clear_refs) minus RSS before it, for every contender. "
        "Peak live is the most requested bytes allocated and not yet taken "
        "off the ring by the consumer, seen by the producer after each push "
        "(median over the runs). The fmemp probe peak is the allocator's own "
        "peak of used bytes (headers included; blocks parked in per-thread "
        "caches count as used), for fmemp contenders only; the last column "
        "divides it by peak live (issue 5's target: at most 1.5×). Ratios "
        "are to glibc.",
        body, ["compare_prodcons"], "{link}")


LATENCY_METRICS = [("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"),
                   ("p9999", "p99.99"), ("max", "max")]


def latency_section(results, charts):
    w = "latency"
    cases = results.cases[w]
    first = cases[0] if cases else ""
    header = ["contender"] + [f"{op} {label}" for op in ("malloc", "free")
                              for _, label in LATENCY_METRICS] + ["failed"]
    bodies = []
    for case in cases:
        rows = []
        for who in results.contenders[w]:
            if results.get(w, case, who, "malloc_p50_ns") is None:
                continue
            row = [f"`{who}`"]
            for op in ("malloc", "free"):
                for key, _ in LATENCY_METRICS:
                    metric = f"{op}_{key}_ns"
                    value = results.get(w, case, who, metric)
                    # glibc has no pre-faulted case: compare with its only one.
                    base = (results.get(w, case, BASELINE, metric) or
                            results.get(w, first, BASELINE, metric))
                    text = num(value)
                    if value is not None and base and who != BASELINE:
                        text += f" ({value / base:.2f}×)"
                    row.append(text)
            row.append(num(results.get(w, case, who, "failed_allocations")))
            rows.append(row)
        bodies.append(f"**{case}**\n\n" + table(header, rows))
    whos = results.contenders[w]
    timer = results.get(w, first, BASELINE, "timer_ns")
    for op in ("malloc", "free"):
        charts.append(Chart(
            f"compare_latency_{op}",
            f"Latency of {op}, fresh region (ns, log scale; lower is better)",
            "ns", [label for _, label in LATENCY_METRICS], whos,
            lambda g, s, op=op: results.get(
                w, first, s, op + "_" + dict((b, a) for a, b in LATENCY_METRICS)[g] + "_ns"),
            log=True))
    return section(
        "4. Latency", "Nanoseconds per call (steady_clock read before and "
        f"after each call; the two reads cost about {num(timer)} ns, not "
        "subtracted); in parentheses the ratio to glibc (**lower is "
        "better**). First table: every allocator on memory it has not "
        "touched yet (fmemp: a fresh region). Second table: the fmemp "
        "contenders again over a region whose pages were all written once "
        "before the run (what a latency-sensitive user of fixed regions "
        "does); malloc contenders cannot be given that, and their ratios "
        "are to glibc's first-table figures. `failed`: allocations refused "
        "because the fixed region was too fragmented (the step then frees "
        "instead). The charts show the first table.",
        "\n\n".join(bodies),
        ["compare_latency_malloc", "compare_latency_free"], "{link}")


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


def callgrind_rows(results, cases, whos):
    rows = []
    for case in cases:
        for who in whos:
            if results.get("callgrind", case, who, "malloc_avg_ir") is None:
                continue
            rows.append([case, f"`{who}`"] + [
                cell(results, "callgrind", case, who, f"{op}_{stat}_ir")
                for op in ("malloc", "free") for stat in ("avg", "max")])
    return table(["heap", "contender", "malloc avg", "malloc max", "free avg",
                  "free max"], rows, left=2)


def step_rows(results, case):
    w = "callgrind"
    rows = []
    base = None
    # The contender list's order, as in the other tables.
    order = list(results.contenders["single"])
    order += [x for x in results.contenders[w] if x not in order]
    for who in order:
        m = results.get(w, case, who, "malloc_avg_ir")
        f = results.get(w, case, who, "free_avg_ir")
        if m is None or f is None:
            continue
        if who == BASELINE:
            base = m + f
        rows.append((who, m, f, m + f,
                     results.get(w, case, who, "malloc_max_ir"),
                     results.get(w, case, who, "free_max_ir")))
    out = []
    for who, m, f, step, mmax, fmax in rows:
        ratio = f" ({step / base:.2f}×)" if base and who != BASELINE else ""
        out.append([f"`{who}`", num(m), num(f), f"**{num(step)}**{ratio}",
                    num(mmax), num(fmax)])
    return table(["contender", "malloc avg", "free avg",
                  "step (free + malloc) avg", "malloc max", "free max"], out)


def callgrind_section(results, charts):
    w = "callgrind"
    all_cases = results.cases[w]
    whos = results.contenders[w]
    heap_cases = [c for c in all_cases
                  if not c.startswith(("tlsf:", "step:"))]
    tlsf_cases = [c for c in all_cases if c.startswith("tlsf:")]
    step_cases = [c for c in all_cases if c.startswith("step:")]
    first = all_cases[0] if all_cases else None
    calib = results.get(w, first, whos[0], "calibration_ir") if first else None
    calls = results.get(w, first, whos[0], "malloc_calls") if first else None
    for op in ("malloc", "free"):
        charts.append(Chart(
            f"compare_callgrind_{op}",
            f"Instructions per {op}: bar = average, whisker = worst call",
            "instructions", heap_cases, whos,
            lambda g, s, op=op: results.get(w, g, s, op + "_avg_ir"),
            whisker=lambda g, s, op=op: results.get(w, g, s, op + "_max_ir")))
    parts = [
        f"{num(calls)} measured calls of each kind per row, after filling "
        "the live set and four times as many unmeasured steps (so that "
        "caches and bins are in their steady state). Each call runs with "
        "collection toggled on around it and is followed by its own "
        "callgrind dump, so every single call's count is known: avg is the "
        "mean, max the worst call. The toggling itself "
        f"({num(calib)} instructions, measured with nothing between the "
        "toggles) is subtracted. Counts include the suite's call into the "
        "contender (about 7 instructions: a wrapper, the function pointer "
        "and the adapter) and, for the locked contenders, an uncontended "
        "lock and unlock. Deterministic: a rerun gives the same numbers. "
        "Ratios to glibc in parentheses (lower is better).",
    ]
    if heap_cases:
        parts += ["", "**The front-ends at two heap sizes and region counts** "
                  "(sizes 16 B..4 KiB):", "",
                  callgrind_rows(results, heap_cases, whos)]
    if tlsf_cases:
        parts += ["", "**The TLSF heap alone** (`tlsf-heap`: `tlsf::Heap` "
                  "with no lock; issue 5's target is at most 100 per malloc "
                  "and 70 per free on average, 200 in the worst case):", "",
                  callgrind_rows(results, tlsf_cases, whos)]
    for case in step_cases:
        parts += ["", f"**Per step of workload 1** ({case[len('step: '):]}, "
                  "its heap of 66 MiB; every contender of every binary; "
                  "ratio of the step to glibc's):", "",
                  step_rows(results, case)]
    body = "\n".join(parts[1:])
    return section("7. Instructions per call (callgrind)", parts[0], body,
                   ["compare_callgrind_malloc", "compare_callgrind_free"],
                   "{link}")


# --- Issue 5's targets --------------------------------------------------

CACHES = ["memp-thread-cache", "c-api-thread-cache"]
PER_THREAD = ["memp-thread-cache", "memp-thread-heap", "c-api-thread-cache",
              "c-api-thread-heaps"]
SINGLE_CASE = "16B-1KiB live 1K"


def verdict(ok):
    if ok is None:
        return "—"
    return "met" if ok else "**missed**"


def fmemp_contenders(results, workload):
    return [w for w in results.contenders[workload]
            if w not in MALLOCS]


MALLOCS = ["glibc", "jemalloc", "tcmalloc", "mimalloc"]


def targets_section(results):
    rows = []
    tput = "msteps_per_s"

    def get(w, case, who, metric=tput):
        return results.get(w, case, who, metric)

    # 1. Single thread, cache policy >= mimalloc and glibc.
    g = get("single", SINGLE_CASE, "glibc")
    m = get("single", SINGLE_CASE, "mimalloc")
    for who in CACHES:
        v = get("single", SINGLE_CASE, who)
        if None in (v, g, m):
            continue
        rows.append(["Single thread, 16 B..1 KiB, 1 K live: cache policy "
                     "≥ 1.0× mimalloc and ≥ 1.0× glibc", f"`{who}`",
                     f"{num(v)} M steps/s = {v / g:.2f}× glibc, "
                     f"{v / m:.2f}× mimalloc", verdict(v >= g and v >= m)])
    # 2. Two threads: caches and thread heaps >= 0.9x mimalloc, >= 1.0x glibc.
    for who in PER_THREAD:
        parts, ok = [], True
        for case, label in (("2 threads", "server"),
                            ("2 threads, no handoff", "no handoff")):
            v, g, m = (get("server", case, x) for x in (who, "glibc",
                                                        "mimalloc"))
            if None in (v, g, m):
                ok = None
                continue
            parts.append(f"{label}: {v / m:.2f}× mimalloc, {v / g:.2f}× glibc")
            ok = ok and v >= 0.9 * m and v >= g
        if parts:
            rows.append(["2 threads (server, and workload 1 with no "
                         "handoff): ≥ 0.9× mimalloc and ≥ 1.0× glibc",
                         f"`{who}`", "; ".join(parts), verdict(ok)])
    # 3. The TLSF heap under callgrind.
    for case in results.cases["callgrind"]:
        if not case.startswith("tlsf:"):
            continue
        vals = [results.get("callgrind", case, "tlsf-heap", k) for k in
                ("malloc_avg_ir", "free_avg_ir", "malloc_max_ir",
                 "free_max_ir")]
        if None in vals:
            continue
        ma, fa, mm, fm = vals
        rows.append([f"TLSF heap, callgrind ({case[len('tlsf: '):]}): avg "
                     "≤ 100 per malloc, ≤ 70 per free, worst ≤ 200",
                     "`tlsf-heap`",
                     f"avg {ma:.0f} / {fa:.0f}, worst {mm:.0f} / {fm:.0f}",
                     verdict(ma <= 100 and fa <= 70 and mm <= 200 and
                             fm <= 200)])
    # 4. Spinlock vs mutex.
    for spin, mutex in (("memp-spinlock", "memp-mutex"),
                        ("c-api-spinlock", "c-api-mutex")):
        one = (get("single", SINGLE_CASE, spin), get("single", SINGLE_CASE,
                                                     mutex))
        two = [(get("server", c, spin), get("server", c, mutex))
               for c in ("2 threads", "2 threads, no handoff")]
        if None in one or any(None in t for t in two):
            continue
        r1 = one[0] / one[1]
        r2 = [a / b for a, b in two]
        rows.append(["Spinlock ≥ 1.2× mutex on one thread, ≥ 1.0× at 2 "
                     "threads", f"`{spin}` ÷ `{mutex}`",
                     f"1 thread {r1:.2f}×; 2 threads {r2[0]:.2f}× (server), "
                     f"{r2[1]:.2f}× (no handoff)",
                     verdict(r1 >= 1.2 and min(r2) >= 1.0)])
    # 5. Producer/consumer peak: peak RSS growth (the same measure for every
    # contender) over peak live; the probe's own peak beside it.
    pc = results.cases["prodcons"]
    if pc:
        rss, probe = {}, {}
        for who in fmemp_contenders(results, "prodcons"):
            live = results.get("prodcons", pc[0], who, "peak_live_bytes")
            grow = results.get("prodcons", pc[0], who, "peak_rss_growth")
            peak = results.get("prodcons", pc[0], who, "allocator_peak")
            if live and grow:
                rss[who] = grow / live
            if live and peak:
                probe[who] = peak / live
        if rss:
            worst = max(rss, key=rss.get)
            text = (f"peak RSS growth {min(rss.values()):.2f}–"
                    f"{rss[worst]:.2f}× peak live (worst `{worst}`)")
            if probe:
                pw = max(probe, key=probe.get)
                text += (f"; fmemp's own probe peak {min(probe.values()):.2f}–"
                         f"{probe[pw]:.2f}× (worst `{pw}`)")
            rows.append(["Producer/consumer: peak held ≤ 1.5× live bytes",
                         f"all {len(rss)} fmemp contenders", text,
                         verdict(rss[worst] <= 1.5)])
    # 6. Latency tails, on a fresh and on a pre-faulted region, one row per
    # quantile (p99.99 is 50 calls in 500 K: preemption decides it here).
    lc = results.cases["latency"]
    for case in lc:
        where = ("pre-faulted region" if "pre-faulted" in case
                 else "fresh region")
        for q, label in (("p999", "p99.9"), ("p9999", "p99.99")):
            metric = f"malloc_{q}_ns"
            refs = {ref: results.get("latency", lc[0], ref, metric)
                    for ref in ("glibc", "jemalloc")}
            if None in refs.values():
                continue
            ratio = {}
            for who in fmemp_contenders(results, "latency"):
                mine = results.get("latency", case, who, metric)
                if mine is not None:
                    ratio[who] = max(mine / v for v in refs.values())
            if not ratio:
                continue
            met = sum(r <= 0.5 for r in ratio.values())
            best = min(ratio, key=ratio.get)
            worst = max(ratio, key=ratio.get)
            rows.append([f"Latency ({where}): malloc {label} ≤ 0.5× glibc's "
                         f"({num(refs['glibc'])} ns) and jemalloc's "
                         f"({num(refs['jemalloc'])} ns)",
                         f"{met} of {len(ratio)} fmemp contenders",
                         f"the larger of the two ratios: best `{best}` "
                         f"{ratio[best]:.2f}×, worst `{worst}` "
                         f"{ratio[worst]:.2f}×",
                         verdict(met == len(ratio))])
    # 7. Memory efficiency.
    mc = results.cases["memory"]
    if mc:
        vals = {who: results.get("memory", mc[0], who, "region_over_peak_live")
                for who in fmemp_contenders(results, "memory")}
        vals = {k: v for k, v in vals.items() if v is not None}
        if vals:
            worst = max(vals, key=vals.get)
            rows.append(["Memory efficiency: smallest region ≤ 1.15× peak "
                         "live (+ per-block overhead)",
                         f"all {len(vals)} fmemp contenders",
                         f"{min(vals.values()):.3f}–{vals[worst]:.3f}× of "
                         f"peak live requested bytes (worst `{worst}`)",
                         verdict(vals[worst] <= 1.15)])
    # 8. Regions.
    ratios = {}
    for who in fmemp_contenders(results, "regions"):
        for size in ("1KiB", "64KiB"):
            one = get("regions", f"16B-{size} live 1K, 1 regions", who)
            many = get("regions", f"16B-{size} live 1K, 64 regions", who)
            if one and many:
                ratios[(who, size)] = many / one
    if ratios:
        worst = min(ratios, key=ratios.get)
        met = sum(v >= 0.95 for v in ratios.values())
        rows.append(["Regions: 64 regions ≥ 0.95× the throughput of 1",
                     f"{met} of {len(ratios)} (contender, size) pairs",
                     f"{min(ratios.values()):.2f}–{max(ratios.values()):.2f}× "
                     f"(worst `{worst[0]}`, 16 B..{worst[1]})",
                     verdict(met == len(ratios))])
    if not rows:
        return None
    return "\n".join([
        "#### Against the issue 5 targets", "",
        "Computed from the tables below, same run (throughputs: best of "
        "the runs; latencies: median run). On this shared 2-core machine "
        "a throughput ratio within about 0.8–1.25× is a tie; the "
        "callgrind counts are exact.", "",
        table(["target", "contender(s)", "measured", "verdict"], rows,
              left=4)])


def header(results, command):
    m = results.machine
    lines = [
        f"Command: `{command}`" if command else "",
        "",
        f"* `nproc`: {m.get('nproc', '?')}; CPU: {m.get('cpu', '?')}; "
        f"kernel {m.get('kernel', '?')}; {m.get('compiler', '?')}, `-c opt`.",
        f"* Tree: `{m.get('tree', '?')}`; load average (1, 5, 15 min) at the "
        f"start {m.get('load_start', '?')}, at the end {m.get('load_end', '?')}.",
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
    targets = targets_section(results)
    if targets:
        parts.append(targets)
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
            "the next thread (itself at 1 thread), which frees them. *no "
            "handoff*: the same with every block freed by its own thread, "
            "i.e. workload 1's first case on each thread at once. "
            "`tlsf-heap` and `memp-nolock` are single-threaded and absent. "
            "Ratio to glibc in parentheses (**higher is better**)."))
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
