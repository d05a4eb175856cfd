#!/usr/bin/env bash
# Runs examples/worker_heaps and checks what it prints: a line for each of
# the four workers' heaps (distinct threads, something allocated), every
# request answered, the aggregated probe after shutdown with nothing used
# and no live block in the five regions, the integrity check, the regions
# removed, and a zero exit status.
set -euo pipefail

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

status=0
output=$("$1") || status=$?
echo "${output}"
[[ ${status} -eq 0 ]] || fail "worker_heaps exited with status ${status}"

thread_heap_line='^heap of thread ([0-9]+): used [0-9]+, peak ([0-9]+), live blocks [0-9]+, fallbacks [0-9]+$'
mapfile -t thread_heaps < <(grep -E "${thread_heap_line}" <<<"${output}")
[[ ${#thread_heaps[@]} -eq 4 ]] || fail "expected 4 thread heap lines, got ${#thread_heaps[@]}"
declare -A threads=()
# Which worker takes which request is up to the scheduler (a worker may get
# none on a loaded machine), so only some thread heap must have served one.
busy=0
for line in "${thread_heaps[@]}"; do
  [[ ${line} =~ ${thread_heap_line} ]] || fail "unreadable: ${line}"
  threads[${BASH_REMATCH[1]}]=1
  [[ ${BASH_REMATCH[2]} -gt 0 ]] && busy=$((busy + 1))
done
[[ ${busy} -gt 0 ]] || fail "no thread heap allocated anything"
[[ ${#threads[@]} -eq 4 ]] || fail "thread heaps of ${#threads[@]} distinct threads"

grep -qE '^while bound: 5 regions, capacity [0-9]+, used [1-9][0-9]*,' \
  <<<"${output}" || fail "no probe while the thread heaps are bound"
after=$(grep -E '^after shutdown: ' <<<"${output}") ||
  fail "no probe after shutdown"
# The peak outlives the threads whose heaps made it (fmemp/thread_heap.h):
# after shutdown it is still above 0.
[[ ${after} =~ ^after\ shutdown:\ 5\ regions,\ capacity\ [0-9]+,\ used\ 0,\ peak\ [1-9][0-9]*,\ live\ blocks\ 0,\ failed\ 0$ ]] ||
  fail "after shutdown: ${after}"
grep -qE '^responses written: 2000 \([1-9][0-9]* bytes\)$' <<<"${output}" ||
  fail "not every request was answered"
grep -qx 'check: OK' <<<"${output}" || fail "integrity check"
grep -qx 'regions removed: yes' <<<"${output}" || fail "regions not removed"
[[ $(tail -n 1 <<<"${output}") == PASS ]] || fail "the example says FAIL"
echo "PASS (test)"
