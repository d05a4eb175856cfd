#!/usr/bin/env bash
# fmemp through CMake and pkg-config, as a user outside Bazel takes it
# (docs/USING.md, "CMake and pkg-config"); tools/test.sh runs it as its
# `cmake` stage.
#
#   1. configures and builds fmemp with CMake (Release) in a build folder
#      kept between runs, one per checkout under ~/.cache/fmemp/cmake-build
#      (a build folder belongs to one source tree), so a rerun rebuilds only
#      what changed (FMEMP_CMAKE_BUILD_DIR overrides it);
#   2. runs the test suite with ctest;
#   3. installs into a temporary prefix;
#   4. builds and runs two outside consumers against that prefix, each a
#      multithreaded program over the C API that must end with nothing in
#      use: tests/cmake_consumer/ (find_package(fmemp), linked with
#      fmemp::fmemp and with fmemp::fmemp_static) and tests/make_consumer/
#      (a plain Makefile with `pkg-config --cflags --libs fmemp`).
#
# Installs what is missing through tools/setup.sh (cmake, pkg-config, the
# Abseil source). FMEMP_CMAKE_JOBS sets the parallelism (default: nproc).
# Exits non-zero on the first failure.
set -euo pipefail

cd "$(dirname "$0")/../.."
readonly ROOT=${PWD}
tools/setup.sh

checkout=${ROOT#/}
readonly BUILD_DIR=${FMEMP_CMAKE_BUILD_DIR:-${HOME}/.cache/fmemp/cmake-build/${checkout//\//_}}
readonly JOBS=${FMEMP_CMAKE_JOBS:-$(nproc)}
scratch=$(mktemp -d)
trap 'rm -rf "${scratch}"' EXIT
readonly PREFIX="${scratch}/prefix"

step() { printf '=== [cmake] %s\n' "$*"; }
fail() { printf '[cmake] FAIL: %s\n' "$*" >&2; exit 1; }

# The prefix is set when configuring: Abseil's absl_*.pc files record it
# then (fmemp.pc is relative to its own folder). Changing it rebuilds nothing.
step "configure (${BUILD_DIR})"
cmake -S "${ROOT}" -B "${BUILD_DIR}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="${PREFIX}" -DFMEMP_SANITIZER= >/dev/null

step "build (-j${JOBS})"
if ! cmake --build "${BUILD_DIR}" -j "${JOBS}" >"${scratch}/build.log" 2>&1; then
  grep -E -B2 -A8 'error|Error' "${scratch}/build.log" | head -n 80
  fail "build failed"
fi

step "ctest"
if ! ctest --test-dir "${BUILD_DIR}" -j "${JOBS}" --output-on-failure \
    >"${scratch}/ctest.log" 2>&1; then
  # The failing tests' output, without the lines of those that passed.
  grep -vE '^ *Start +[0-9]+:|Test +#[0-9]+: .* Passed' "${scratch}/ctest.log" |
    tail -n 150
  fail "ctest failed"
fi
grep -E 'tests passed|Total Test time' "${scratch}/ctest.log"

step "install into ${PREFIX}"
cmake --install "${BUILD_DIR}" >/dev/null
pc_file=$(find "${PREFIX}" -name fmemp.pc)
[[ -n "${pc_file}" ]] || fail "no fmemp.pc installed"
libdir=$(dirname "$(dirname "${pc_file}")")
for f in "${libdir}/libfmemp.a" "${libdir}/libfmemp.so" \
         "${libdir}/cmake/fmemp/fmempConfig.cmake" \
         "${libdir}/cmake/fmemp/fmempConfigVersion.cmake" \
         "${PREFIX}/include/fmemp/sdk/fmemory_pool.h" \
         "${PREFIX}/include/fmemp/fmemp.h" \
         "${PREFIX}/include/absl/base/options.h"; do
  [[ -e "${f}" ]] || fail "not installed: ${f#"${PREFIX}"/}"
done
# Public headers only: no source, no test helper, no benchmark.
strays=$(find "${PREFIX}/include/fmemp" "${PREFIX}/include/tlsf" \
  "${PREFIX}/include/sync" -type f \
  \( ! -name '*.h' -o -name '*test*' -o -name '*benchmark*' \
     -o -path '*fake_ftypes*' \))
[[ -z "${strays}" ]] || fail "installed beside the public headers: ${strays}"
echo "installed: $(find "${PREFIX}/include/fmemp" "${PREFIX}/include/tlsf" \
  "${PREFIX}/include/sync" -name '*.h' | wc -l) fmemp headers," \
  "$(find "${libdir}" -maxdepth 1 -name 'libabsl_*.so' | wc -l) Abseil libraries"

step "tests/cmake_consumer: find_package(fmemp)"
cmake -S "${ROOT}/tests/cmake_consumer" -B "${scratch}/cmake_consumer" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="${PREFIX}" >/dev/null
cmake --build "${scratch}/cmake_consumer" -j "${JOBS}" >/dev/null ||
  fail "tests/cmake_consumer did not build"
for consumer in consumer_shared consumer_static; do
  output=$("${scratch}/cmake_consumer/${consumer}") ||
    fail "${consumer} exited with $?: ${output}"
  echo "[${consumer}]"
  echo "${output}"
  [[ $(tail -n 1 <<<"${output}") == "cmake consumer: fmemp works" ]] ||
    fail "${consumer}"
done

step "tests/make_consumer: pkg-config --cflags --libs fmemp"
output=$(PKG_CONFIG_PATH="$(dirname "${pc_file}")" \
  make --no-print-directory -C "${ROOT}/tests/make_consumer" \
  BUILD_DIR="${scratch}/make_consumer" run) ||
  fail "tests/make_consumer: ${output}"
echo "${output}"
[[ $(tail -n 1 <<<"${output}") == "make consumer: fmemp works" ]] ||
  fail "tests/make_consumer"
echo "cmake: fmemp builds, passes its tests, installs and serves both consumers"
