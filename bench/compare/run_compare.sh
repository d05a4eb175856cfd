#!/usr/bin/env bash
# Runs the comparison suite: every workload on every contender, one process
# per (workload, contender), workload by workload so that all contenders of a
# workload run close together in time. Merges everything into one
# tab-separated results file:
#   M <key> <value>                                  the machine and command
#   I <malloc> <version> <library>                   each binary's malloc
#   R <workload> <case> <contender> <metric> <value> a measurement
#   F <workload> <case> <contender> <why>            a case that failed
# Progress goes to stderr. Exits 1 if any run failed (after running the
# rest). tools/bench.sh builds the binaries and calls this, then report.py.
#
#   run_compare.sh --bin-dir=DIR --out=FILE [--scale=full|quick|smoke]
#                  [--threads=1,2] [--workloads=single,server,...] [--repeat=N]
#
# --repeat=N (default 5 at full scale, else 1) runs every timed workload N
# times, in rounds (all contenders once, then all again), so that load from
# other processes on a shared machine hits every contender alike; report.py
# keeps the best throughput and the median latency of the N. The memory and
# callgrind workloads are deterministic and run once.
set -euo pipefail

bin_dir=""
out=""
scale="full"
threads="1,2"
workloads="single,server,prodcons,latency,memory,regions,callgrind"
repeat=""
readonly MALLOCS=(glibc jemalloc tcmalloc mimalloc)

for arg in "$@"; do
  case "${arg}" in
    --bin-dir=*) bin_dir="${arg#*=}" ;;
    --out=*) out="${arg#*=}" ;;
    --scale=*) scale="${arg#*=}" ;;
    --threads=*) threads="${arg#*=}" ;;
    --workloads=*) workloads="${arg#*=}" ;;
    --repeat=*) repeat="${arg#*=}" ;;
    *) echo "run_compare.sh: unknown argument '${arg}'" >&2; exit 2 ;;
  esac
done
[[ -n "${bin_dir}" && -n "${out}" ]] || {
  echo "usage: run_compare.sh --bin-dir=DIR --out=FILE [--scale=...] [--threads=...] [--workloads=...]" >&2
  exit 2
}

# Workload 7's probes, one "contender|case name|heap bytes|regions|live|max
# bytes" line each: per call, sizes uniform in 16 B..max bytes, after filling
# `live` blocks and 4 * cg_ops unmeasured steps. Three groups:
#   heap   the front-ends at a small and a 4 GiB heap, 1 and 64 regions,
#          16 B..4 KiB (the O(1) claim);
#   tlsf   the bare TLSF heap (issue 5's target: average and worst case on
#          16 B..1 KiB and 16 B..64 KiB, small and 4 GiB heaps);
#   step   workload 1's first case (16 B..1 KiB, 1 K live, its heap size)
#          on every contender of every binary: instructions per free +
#          malloc step.
# cg_ops is the number of measured free + malloc pairs (one dump each).
readonly STEP_CASE="step: 16B-1KiB, live 1K"
readonly STEP_HEAP=69156864  # workloads.cc HeapBytesFor(1000, 1 KiB)
heap_cases=("small heap, 1 region(s), 256 live|4194304|1|256|4096"
            "small heap, 64 region(s), 256 live|4194304|64|256|4096"
            "4GiB heap, 1 region(s), 65536 live|4294967296|1|65536|4096"
            "4GiB heap, 64 region(s), 65536 live|4294967296|64|65536|4096")
tlsf_cases=("tlsf: small heap (4MiB), 16B-1KiB, 256 live|4194304|1|256|1024"
            "tlsf: small heap (64MiB), 16B-64KiB, 256 live|67108864|1|256|65536"
            "tlsf: 4GiB heap, 16B-1KiB, 65536 live|4294967296|1|65536|1024"
            "tlsf: 4GiB heap, 16B-64KiB, 65536 live|4294967296|1|65536|65536")
cg_probes=()
add_probes() {  # add_probes "contender ..." case...
  local who=$1 c
  shift
  for c in ${who}; do
    for config in "$@"; do cg_probes+=("${c}|${config}"); done
  done
}
case "${scale}" in
  smoke)
    add_probes "memp-nolock" "${heap_cases[0]}" "${heap_cases[1]}"
    add_probes "memp-thread-heap" "${STEP_CASE}|${STEP_HEAP}|1|1000|1024"
    cg_ops=50 ;;
  quick)
    add_probes "glibc tlsf-heap memp-nolock" "${heap_cases[@]}"
    add_probes "tlsf-heap" "${tlsf_cases[@]}"
    add_probes "@all" "${STEP_CASE}|${STEP_HEAP}|1|1000|1024"
    cg_ops=300 ;;
  *)
    add_probes "glibc tlsf-heap memp-nolock memp-mutex memp-thread-cache memp-thread-heap fmemp-c-api" \
        "${heap_cases[@]}"
    add_probes "tlsf-heap" "${tlsf_cases[@]}"
    add_probes "@all" "${STEP_CASE}|${STEP_HEAP}|1|1000|1024"
    cg_ops=1000 ;;
esac

[[ -n "${repeat}" ]] || { [[ "${scale}" == full ]] && repeat=5 || repeat=1; }

failures=0
: >"${out}"

machine() { printf 'M\t%s\t%s\n' "$1" "$2" >>"${out}"; }
machine nproc "$(nproc)"
machine cpu "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
machine kernel "$(uname -r)"
machine compiler "$( (g++ --version 2>/dev/null || echo unknown) | head -n1)"
machine scale "${scale}"
machine threads "${threads}"
machine repeat "${repeat}"
machine date "$(date -u '+%Y-%m-%d %H:%M UTC')"
machine load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
# The source tree the binaries were built from (the smoke test runs outside
# any git checkout: "unknown").
tree=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ "${tree}" != unknown ]] && ! git diff --quiet HEAD -- . ':!docs' ':!bench/compare/results' 2>/dev/null; then
  tree+=" + uncommitted changes"
fi
machine tree "${tree}"

# Contender names per binary, in list order.
declare -A contenders
for malloc in "${MALLOCS[@]}"; do
  bin="${bin_dir}/compare_${malloc}"
  listing=$("${bin}" --expect="${malloc}" --list 2>/dev/null) || {
    echo "run_compare.sh: ${bin} does not run with ${malloc} as its malloc" >&2
    exit 1
  }
  grep '^I' <<<"${listing}" >>"${out}"
  contenders[${malloc}]=$(grep -v '^I' <<<"${listing}" | cut -f1 | tr '\n' ' ')
done

# run_one MALLOC CONTENDER WORKLOAD: one process, results appended.
run_one() {
  local malloc="$1" contender="$2" workload="$3" rc=0
  # A contender that does not apply (one thread only) prints no result.
  "${bin_dir}/compare_${malloc}" --expect="${malloc}" --scale="${scale}" \
      --threads="${threads}" --workload="${workload}" \
      --contenders="${contender}" 2> >(sed "s/^/  [${malloc}] /" >&2) |
    { grep -E '^(R|F)' || true; } >>"${out}" || rc=$?
  if [[ ${rc} -ne 0 ]]; then
    echo "  run failed: ${workload} / ${contender} (${malloc} binary)" >&2
    failures=$((failures + 1))
  fi
}

# The binary (malloc name) whose list holds contender $1.
binary_of() {
  local malloc
  for malloc in "${MALLOCS[@]}"; do
    if [[ " ${contenders[${malloc}]} " == *" $1 "* ]]; then
      echo "${malloc}"
      return
    fi
  done
  return 1
}

# One callgrind probe run; writes callgrind's per-call dumps to a temporary
# directory and appends average and worst instructions per malloc and free,
# less the calibration ("empty": toggling collection around nothing).
run_probe() {
  local contender case_name heap regions live max malloc tmp
  IFS='|' read -r contender case_name heap regions live max <<<"$1"
  malloc=$(binary_of "${contender}") || {
    echo "  callgrind: no binary has contender ${contender}" >&2
    failures=$((failures + 1))
    return
  }
  tmp=$(mktemp -d)
  echo "== callgrind ${contender}: ${case_name}" >&2
  if ! valgrind --tool=callgrind --collect-atstart=no \
      --callgrind-out-file="${tmp}/cg.out" \
      "${bin_dir}/compare_${malloc}" --expect="${malloc}" --contenders="${contender}" \
      --callgrind_probe="${heap}:${regions}:${live}:${cg_ops}:${max}" \
      >/dev/null 2>"${tmp}/valgrind.log"; then
    echo "  callgrind probe failed:" >&2
    tail -n 5 "${tmp}/valgrind.log" >&2
    printf 'F\tcallgrind\t%s\t%s\tprobe failed\n' "${case_name}" "${contender}" >>"${out}"
    failures=$((failures + 1))
  else
    # Each dump file names its trigger and has one "summary: <Ir>" line.
    # shellcheck disable=SC2016  # an awk program: its $ are awk's
    find "${tmp}" -name 'cg.out.*' -print0 | xargs -0 awk '
      /^desc: Trigger: Client Request: / { kind = $NF }
      /^summary: / { n[kind]++; sum[kind] += $2;
                     if ($2 > max[kind]) max[kind] = $2; kind = "" }
      END {
        base = n["empty"] ? sum["empty"] / n["empty"] : 0
        for (k in n) if (k != "empty") {
          printf "R\tcallgrind\t%s\t%s\t%s_avg_ir\t%.1f\n", c, who, k, sum[k] / n[k] - base
          printf "R\tcallgrind\t%s\t%s\t%s_max_ir\t%d\n", c, who, k, max[k] - base
          printf "R\tcallgrind\t%s\t%s\t%s_calls\t%d\n", c, who, k, n[k]
        }
        printf "R\tcallgrind\t%s\t%s\tcalibration_ir\t%.1f\n", c, who, base
      }' c="${case_name}" who="${contender}" >>"${out}"
  fi
  rm -rf "${tmp}"
}

IFS=, read -r -a chosen <<<"${workloads}"
for workload in "${chosen[@]}"; do
  if [[ "${workload}" == callgrind ]]; then
    if ! command -v valgrind >/dev/null; then
      echo "run_compare.sh: valgrind not found; skipping callgrind" >&2
      failures=$((failures + 1))
      continue
    fi
    for probe in "${cg_probes[@]}"; do
      if [[ "${probe}" == @all\|* ]]; then
        # Every contender of every binary, in list order.
        for malloc in "${MALLOCS[@]}"; do
          for contender in ${contenders[${malloc}]}; do
            run_probe "${contender}|${probe#@all|}"
          done
        done
      else
        run_probe "${probe}"
      fi
    done
    continue
  fi
  rounds=${repeat}
  [[ "${workload}" == memory ]] && rounds=1
  for round in $(seq 1 "${rounds}"); do
    echo "== ${workload} (round ${round} of ${rounds})" >&2
    for malloc in "${MALLOCS[@]}"; do
      for contender in ${contenders[${malloc}]}; do
        run_one "${malloc}" "${contender}" "${workload}"
      done
    done
  done
done

machine load_end "$(cut -d' ' -f1-3 /proc/loadavg)"

if [[ ${failures} -ne 0 ]]; then
  echo "run_compare.sh: ${failures} run(s) failed; see the F lines in ${out}" >&2
  exit 1
fi
