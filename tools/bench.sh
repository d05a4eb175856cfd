#!/usr/bin/env bash
# Regenerates the comparison suite (issue 5): fmemp against glibc malloc,
# jemalloc, tcmalloc and mimalloc, every workload, one run.
#
#   tools/bench.sh            full run (about 5-10 minutes on 2 cores):
#                             bench/compare/results/full/results.{tsv,md},
#                             docs/charts/compare_*.png, and the tables in
#                             docs/BENCHMARKS.md ("Comparison suite")
#   tools/bench.sh --quick    smaller sizes (about 1-2 minutes); results and
#                             charts under bench/compare/results/quick/, docs
#                             untouched
#   tools/bench.sh --report-only   redo tables, charts and docs from the
#                             existing results.tsv, without running
#   other flags: --scale=full|quick|smoke, --threads=1,2,4,
#                --workloads=single,server,prodcons,latency,memory,regions,callgrind
#
# Installs what it needs on first use (the allocators, valgrind, gnuplot,
# python3) through tools/setup.sh, builds with -c opt, runs
# bench/compare/run_compare.sh (progress on stderr) and
# bench/compare/report.py.
set -euo pipefail
cd "$(dirname "$0")/.."

scale=full
threads=1,2
workloads=single,server,prodcons,latency,memory,regions,callgrind
report_only=0
for arg in "$@"; do
  case "${arg}" in
    --quick) scale=quick ;;
    --report-only) report_only=1 ;;
    --scale=*) scale="${arg#*=}" ;;
    --threads=*) threads="${arg#*=}" ;;
    --workloads=*) workloads="${arg#*=}" ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "tools/bench.sh: unknown argument '${arg}' (see --help)" >&2; exit 2 ;;
  esac
done

log() { printf '[bench] %s\n' "$*" >&2; }

FMEMP_EXTRA_PACKAGES="gnuplot-nox python3" tools/setup.sh

out_dir="bench/compare/results/${scale}"
if [[ ${report_only} -eq 1 ]]; then
  [[ -s "${out_dir}/results.tsv" ]] || { echo "tools/bench.sh: no ${out_dir}/results.tsv to report on" >&2; exit 1; }
fi

targets=()
for malloc in glibc jemalloc tcmalloc mimalloc; do
  targets+=("//bench/compare:compare_${malloc}")
done
readonly CACHE_DIR="${HOME}/.cache/fmemp"
BAZEL_FLAGS=(-c opt "--disk_cache=${CACHE_DIR}/bazel-disk"
             "--repository_cache=${CACHE_DIR}/bazel-repo")
if [[ ${report_only} -eq 0 ]]; then
  log "building (-c opt)"
  bazel build "${BAZEL_FLAGS[@]}" "${targets[@]}"
  # Run copies: another build in this checkout during the run (minutes)
  # must not replace a binary between two contenders.
  bin_dir=$(mktemp -d)
  trap 'rm -rf "${bin_dir}"' EXIT
  built="$(bazel info -c opt bazel-bin 2>/dev/null)/bench/compare"
  for malloc in glibc jemalloc tcmalloc mimalloc; do
    cp "${built}/compare_${malloc}" "${bin_dir}/"
  done
fi

# Chart links in results.md are relative to it.
if [[ "${scale}" == full ]]; then
  charts=docs/charts
  link=../../../../docs/charts/
else
  charts="${out_dir}/charts"
  link=charts/
fi
mkdir -p "${out_dir}" "${charts}"

status=0
command_line="tools/bench.sh${*:+ $*}"
if [[ ${report_only} -eq 0 ]]; then
  log "running the suite (${scale}); progress follows"
  start=$(date +%s)
  bench/compare/run_compare.sh --bin-dir="${bin_dir}" --out="${out_dir}/results.tsv" \
      --scale="${scale}" --threads="${threads}" --workloads="${workloads}" || status=$?
  log "suite took $(( $(date +%s) - start )) s"
  echo "${command_line}" >"${out_dir}/command"
else
  command_line=$(cat "${out_dir}/command" 2>/dev/null || echo tools/bench.sh)
fi
python3 bench/compare/report.py "${out_dir}/results.tsv" \
    --markdown="${out_dir}/results.md" --charts="${charts}" --link="${link}" \
    --command="${command_line}"
log "tables: ${out_dir}/results.md; charts: ${charts}/compare_*.png"

# The full run's tables replace what lies between the markers in
# docs/BENCHMARKS.md; the prose around them is kept.
if [[ "${scale}" == full ]]; then
  docs_tables=$(mktemp)
  python3 bench/compare/report.py "${out_dir}/results.tsv" \
      --markdown="${docs_tables}" --link=charts/ --command="${command_line}"
  python3 - "${docs_tables}" docs/BENCHMARKS.md <<'PY'
import sys
tables, doc = sys.argv[1], sys.argv[2]
begin, end = "<!-- compare-results:begin -->", "<!-- compare-results:end -->"
text = open(doc, encoding="utf-8").read()
if begin not in text or end not in text:
    sys.exit(f"{doc}: markers {begin} / {end} not found; tables not pasted")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
body = open(tables, encoding="utf-8").read().strip()
open(doc, "w", encoding="utf-8").write(f"{head}{begin}\n{body}\n{end}{tail}")
PY
  rm -f "${docs_tables}"
  log "docs/BENCHMARKS.md updated"
fi
exit "${status}"
