#!/usr/bin/env bash
# Runs mimalloc-bench's xmalloc-test and larson, unchanged, under glibc,
# jemalloc, tcmalloc, mimalloc and fmemp (libfmemp_malloc.so, the C API's
# default policy unless FMEMP_SHIM_POLICY says otherwise), at 1 and 2
# threads, and prints a table of each program's own figure and its ratio to
# glibc (higher is better).
#
#   bench/programs/run.sh <mimalloc-bench git directory>
#
# The git directory is a snapshot of github.com/daanx/mimalloc-bench (for
# example the one `fetch` brings to /work/.mirror/daanx+mimalloc-bench/repo).
# The programs' sources are extracted from it unchanged into
# bench/programs/third_party/ (ignored by git) and compiled the way
# mimalloc-bench's CMakeLists.txt compiles them.
#
# Environment: SECONDS_PER_RUN (default 5), REPEATS (default 3; the median
# is reported), THREADS (default "1 2"), ALLOCATORS (default all five).
set -euo pipefail

cd "$(dirname "$0")/../.."
readonly GIT_DIR_ARG=${1:?usage: bench/programs/run.sh <mimalloc-bench git dir>}
readonly OUT=bench/programs/third_party
readonly SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
readonly REPEATS=${REPEATS:-3}
readonly THREADS=${THREADS:-"1 2"}
readonly ALLOCATORS=${ALLOCATORS:-"glibc jemalloc tcmalloc mimalloc fmemp"}

mkdir -p "${OUT}/src" "${OUT}/bin"
revision=$(git --git-dir="${GIT_DIR_ARG}" rev-parse HEAD)
for path in bench/xmalloc-test/xmalloc-test.c bench/xmalloc-test/random.h \
            bench/larson/larson.cpp; do
  git --git-dir="${GIT_DIR_ARG}" show "HEAD:${path}" >"${OUT}/src/$(basename "${path}")"
done
echo "mimalloc-bench ${revision}"

# As mimalloc-bench's bench/CMakeLists.txt (Release: -O3 -DNDEBUG).
gcc -O3 -DNDEBUG -w -o "${OUT}/bin/xmalloc-test" "${OUT}/src/xmalloc-test.c" -lpthread
g++ -O3 -DNDEBUG -w -std=c++17 -Wno-unused-result -DCPP=1 \
  -o "${OUT}/bin/larson" "${OUT}/src/larson.cpp" -lpthread

bazel build -c opt --color=no --curses=no \
  //bench/programs:libfmemp_malloc.so 2>/dev/null
readonly SHIM="${PWD}/bazel-bin/bench/programs/libfmemp_malloc.so"

preload_for() {
  local lib
  case "$1" in
    glibc) echo "" ;;
    jemalloc) lib=$(ls /usr/lib/x86_64-linux-gnu/libjemalloc.so.2) ;;
    tcmalloc) lib=$(ls /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4) ;;
    mimalloc) lib=$(ls /usr/lib/x86_64-linux-gnu/libmimalloc.so.2) ;;
    fmemp) lib=${SHIM} ;;
  esac
  echo "${lib:-}"
}

# One run's figure: xmalloc-test's frees per second (M), larson's
# operations per second.
run_once() {
  local program=$1 allocator=$2 threads=$3 preload out
  preload=$(preload_for "${allocator}")
  case "${program}" in
    xmalloc-test)
      out=$(LD_PRELOAD="${preload}" "${OUT}/bin/xmalloc-test" -w "${threads}" \
            -t "${SECONDS_PER_RUN}" -s 64)
      sed -n 's/.*free\/sec: \([0-9.]*\) M.*/\1/p' <<<"${out}" ;;
    larson)
      out=$(LD_PRELOAD="${preload}" "${OUT}/bin/larson" "${SECONDS_PER_RUN}" \
            8 1000 5000 100 4141 "${threads}")
      sed -n 's/.*Throughput = *\([0-9.]*\) operations.*/\1/p' <<<"${out}" ;;
  esac
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-13s %-8s %-9s %14s %8s   %s\n' program threads allocator median \
  vs_glibc runs
for program in xmalloc-test larson; do
  for threads in ${THREADS}; do
    glibc=""
    for allocator in ${ALLOCATORS}; do
      runs=()
      for _ in $(seq "${REPEATS}"); do runs+=("$(run_once "${program}" "${allocator}" "${threads}")"); done
      m=$(printf '%s\n' "${runs[@]}" | median)
      [[ ${allocator} == glibc ]] && glibc=${m}
      ratio=$(awk -v a="${m}" -v b="${glibc:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
      printf '%-13s %-8s %-9s %14s %8s   %s\n' "${program}" "${threads}" \
        "${allocator}" "${m}" "${ratio}" "${runs[*]}"
    done
  done
done
echo "units: xmalloc-test M frees/s, larson operations/s; load: $(cut -d' ' -f1-3 /proc/loadavg)"
