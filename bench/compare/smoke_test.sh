#!/usr/bin/env bash
# Smoke test of the comparison suite: every workload once at a tiny size, on
# every contender of every binary (glibc with the fmemp contenders,
# jemalloc, tcmalloc, mimalloc), one callgrind probe, and the report with
# its charts. Proves the suite runs; measures nothing.
#
# Sanitizer configs: a sanitizer runtime replaces malloc itself, so binaries
# that link jemalloc, tcmalloc or mimalloc cannot run under it. BUILD.bazel
# selects on the config's --define (the same one .bazelrc sets for
# --config=tsan/asan, and --config=fuzz's define) and then passes
# --skip=<config> and no binaries at all: nothing sanitized is built, and the
# test prints why it skips and passes. A marker chosen at analysis time is
# robust where a check at run time (e.g. looking for a sanitizer symbol)
# would depend on how each runtime is linked.
set -euo pipefail

for arg in "$@"; do
  case "${arg}" in
    --skip=*) echo "SKIPPED: built with --config=${arg#*=}; the comparison suite runs unsanitized only"; exit 0 ;;
    *) echo "smoke_test.sh: unknown argument '${arg}'" >&2; exit 2 ;;
  esac
done

dir=bench/compare  # runfiles-relative; the test runs from the runfiles root
out="${TEST_TMPDIR:-$(mktemp -d)}"
results="${out}/results.tsv"

"${dir}/run_compare.sh" --bin-dir="${dir}" --out="${results}" --scale=smoke

fail() { echo "FAIL: $*" >&2; exit 1; }

# Every contender has a result in every workload that applies to it.
for malloc in glibc jemalloc tcmalloc mimalloc; do
  while IFS=$'\t' read -r name _ threading; do
    workloads=(single latency memory regions)
    [[ "${threading}" == threads ]] && workloads+=(server prodcons)
    for w in "${workloads[@]}"; do
      grep -q -P "^R\t${w}\t[^\t]*\t\Q${name}\E\t" "${results}" ||
        fail "no ${w} result for ${name} (${malloc} binary)"
    done
  done < <("${dir}/compare_${malloc}" --expect="${malloc}" --list 2>/dev/null | grep -v '^I')
done
grep -q -P '^R\tcallgrind\t.*\tmalloc_max_ir\t' "${results}" || fail "no callgrind result"
! grep -q '^F' "${results}" || fail "failed cases: $(grep '^F' "${results}")"

# The report and its charts.
if command -v python3 >/dev/null; then
  python3 "${dir}/report.py" "${results}" --markdown="${out}/results.md" \
      --charts="${out}/charts"
  grep -q '^#### 1. Single thread' "${out}/results.md" || fail "report has no tables"
  if command -v gnuplot >/dev/null; then
    [[ -s "${out}/charts/compare_single.png" ]] || fail "no chart"
  fi
else
  echo "python3 not found: report not checked"
fi
echo "PASS: $(grep -c '^R' "${results}") results"
