#!/usr/bin/env bash
# Runs fmemp's whole test suite, the second Quick start command of README.md.
#
#   tools/test.sh            everything CI runs (about 20-40 min cold on 2 cores)
#
# Stages: every test in the default config, every test under ThreadSanitizer,
# every test under AddressSanitizer + UndefinedBehaviorSanitizer, the clang
# build with -Werror=thread-safety, and a short libFuzzer smoke run of each
# fuzz target (once any exist), tests/outside_workspace/run.sh (fmemp used
# from another Bazel workspace), and tools/check_docs.py (README.md and docs/
# name no file, Bazel target or C API name that does not exist). Installs what is missing on first use
# (tools/setup.sh). Ends with one line: "N passed, N failed", where N counts
# test targets per configuration plus one per build-only or script stage;
# exits non-zero if anything failed.
#
# FMEMP_TEST_STAGES="default tsan" limits the run to the named stages.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
tools/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

readonly CACHE_DIR="${HOME}/.cache/fmemp"
mkdir -p "${CACHE_DIR}"
BAZEL_FLAGS=(
  "--disk_cache=${CACHE_DIR}/bazel-disk"
  "--repository_cache=${CACHE_DIR}/bazel-repo"
  "--test_summary=short"
  "--color=no"
  "--curses=no"
)
STAGES=${FMEMP_TEST_STAGES:-"docs default tsan asan tsa fuzz outside cmake"}

passed=0
failed=0
failures=()
log_dir=$(mktemp -d)

# Runs `bazel test` with the given flags and adds its per-target results.
test_stage() {
  local name=$1
  shift
  local log="${log_dir}/${name}.log"
  echo "=== [${name}] bazel test $* //..."
  bazel test "${BAZEL_FLAGS[@]}" "$@" //... 2>&1 | tee "${log}" |
    grep -E '^(//|ERROR|FAIL|INFO: Build completed|Executed)' || true
  local rc=${PIPESTATUS[0]}
  local ok bad
  ok=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "${log}")
  bad=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|INCOMPLETE|FLAKY)' "${log}")
  if [[ ${rc} -ne 0 && ${bad} -eq 0 ]]; then
    bad=1  # the build itself failed
  fi
  passed=$((passed + ok))
  failed=$((failed + bad))
  [[ ${bad} -eq 0 ]] || failures+=("${name}")
  # A failed test's log lives in this machine's bazel output base, which a
  # CI report does not carry: print the end of each one here.
  local test_log
  grep -oE '^FAIL: //[^ ]+ \(see [^)]+\)' "${log}" | sed -E 's/.*\(see (.*)\)/\1/' |
    while read -r test_log; do
      echo "--- end of ${test_log}"
      tail -n 60 "${test_log}" 2>/dev/null || true
    done
}

# Runs a build-only stage; counts as one result.
build_stage() {
  local name=$1
  shift
  local log="${log_dir}/${name}.log"
  echo "=== [${name}] bazel build $*"
  if bazel build "${BAZEL_FLAGS[@]}" "$@" >"${log}" 2>&1; then
    passed=$((passed + 1))
  else
    grep -E 'error|ERROR' "${log}" | head -n 40
    failed=$((failed + 1))
    failures+=("${name}")
  fi
}

# Runs a script as a stage; counts as one result, like a build-only stage.
script_stage() {
  local name=$1
  shift
  local log="${log_dir}/${name}.log"
  echo "=== [${name}] $*"
  if "$@" >"${log}" 2>&1; then
    passed=$((passed + 1))
  else
    tail -n 40 "${log}"
    failed=$((failed + 1))
    failures+=("${name}")
  fi
}

# Builds every fuzz target with libFuzzer and runs each briefly on its corpus.
fuzz_stage() {
  local targets
  targets=$(bazel query 'attr(tags, "fuzz_target", //...)' 2>/dev/null)
  if [[ -z "${targets}" ]]; then
    echo "=== [fuzz] no fuzz targets yet; skipped"
    return
  fi
  build_stage fuzz-build --config=fuzz ${targets} || return
  local bin_dir
  bin_dir=$(bazel info --config=fuzz bazel-bin 2>/dev/null)
  local t pkg name bin scratch log
  for t in ${targets}; do
    pkg=${t#//}
    pkg=${pkg%%:*}
    name=${t##*:}
    bin="${bin_dir}/${pkg}/${name}"
    # libFuzzer writes new inputs into its first directory: a scratch one,
    # so the seed corpus (<package>/corpus/<target>/) stays as committed.
    scratch=$(mktemp -d)
    log="${log_dir}/fuzz-${name}.log"
    echo "=== [fuzz] ${t} for ${FMEMP_FUZZ_SECONDS:-30}s"
    if "${bin}" -max_total_time="${FMEMP_FUZZ_SECONDS:-30}" \
        -print_final_stats=1 -artifact_prefix="${log_dir}/${name}-" \
        "${scratch}" "${pkg}/corpus/${name}" >"${log}" 2>&1; then
      passed=$((passed + 1))
      grep -E '^#[0-9]+ *DONE|stat::number_of_executed_units' "${log}" | tail -n 2
    else
      tail -n 40 "${log}"
      failed=$((failed + 1))
      failures+=("fuzz ${t}")
    fi
    rm -rf "${scratch}"
  done
}

start=$(date +%s)
for stage in ${STAGES}; do
  case "${stage}" in
    default) test_stage default ;;
    tsan) test_stage tsan --config=tsan ;;
    asan) test_stage asan --config=asan ;;
    tsa) build_stage tsa --config=tsa //... ;;
    fuzz) fuzz_stage ;;
    outside) script_stage outside tests/outside_workspace/run.sh ;;
    cmake) script_stage cmake tests/cmake_consumer/run.sh ;;
    docs)
      script_stage docs-check-self-test python3 tools/check_docs.py --self-test
      script_stage docs-check python3 tools/check_docs.py
      script_stage build-drift-self-test python3 tools/check_build_drift.py --self-test
      script_stage build-drift python3 tools/check_build_drift.py
      ;;
    *) echo "unknown stage ${stage}"; failed=$((failed + 1)) ;;
  esac
done
elapsed=$(( $(date +%s) - start ))

echo
[[ ${#failures[@]} -eq 0 ]] || echo "failed stages: ${failures[*]} (logs in ${log_dir})"
echo "suite took ${elapsed}s"
echo "${passed} passed, ${failed} failed"
[[ ${failed} -eq 0 ]]
