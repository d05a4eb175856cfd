#!/usr/bin/env bash
# Runs examples/sdk_basic and checks what it prints: the SDK example's probe
# line before, during and after the allocations (nothing used at the start
# and the end, the peak kept, and almost all of the 9000-byte buffer usable),
# every alignment checked, and both block listings with the five live blocks,
# then none, and a passing integrity check.
set -euo pipefail

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

output=$("$1") || fail "sdk_basic exited with status $?"
echo "${output}"

mapfile -t probes < <(grep -E '^used: [0-9]+, total: [0-9]+, peak: [0-9]+$' \
  <<<"${output}")
[[ ${#probes[@]} -eq 3 ]] || fail "expected 3 probe lines, got ${#probes[@]}"

read_probe() {  # "used: U, total: T, peak: P" -> "U T P"
  sed -E 's/used: ([0-9]+), total: ([0-9]+), peak: ([0-9]+)/\1 \2 \3/' <<<"$1"
}
read -r used0 total0 peak0 <<<"$(read_probe "${probes[0]}")"
read -r used1 total1 peak1 <<<"$(read_probe "${probes[1]}")"
read -r used2 total2 peak2 <<<"$(read_probe "${probes[2]}")"

[[ ${used0} -eq 0 && ${peak0} -eq 0 ]] || fail "fresh pool: ${probes[0]}"
# Bookkeeping lives outside the buffer: at most 2% of it is lost.
[[ ${total0} -ge 8820 && ${total0} -le 9000 ]] || fail "total ${total0}"
[[ ${total1} -eq ${total0} && ${total2} -eq ${total0} ]] ||
  fail "total changed: ${total0} ${total1} ${total2}"
# 100 (grown to 1000) + 3 x 256 + 64 bytes of payload are live.
[[ ${used1} -ge 1832 && ${peak1} -ge ${used1} ]] || fail "in use: ${probes[1]}"
[[ ${used2} -eq 0 && ${peak2} -eq ${peak1} ]] || fail "after free: ${probes[2]}"

for align in 128 64 32; do
  grep -qE "^malloc 256 bytes aligned to ${align}: 0x[0-9a-f]+, aligned ok$" \
    <<<"${output}" || fail "no checked allocation aligned to ${align}"
done
grep -qE '^calloc 16 x 4 bytes: 0x[0-9a-f]+, zeroed ok$' <<<"${output}" ||
  fail "no checked calloc"
grep -qE '^realloc to 1000 bytes: 0x[0-9a-f]+, contents kept$' \
  <<<"${output}" || fail "no checked realloc"

mapfile -t totals < <(grep -E '^total: 1 regions,' <<<"${output}")
[[ ${#totals[@]} -eq 2 ]] || fail "expected 2 listings, got ${#totals[@]}"
[[ ${totals[0]} == *"live blocks 5,"* ]] || fail "first listing: ${totals[0]}"
[[ ${totals[1]} == *"live blocks 0,"* ]] || fail "second listing: ${totals[1]}"
[[ $(grep -c '^integrity check: OK$' <<<"${output}") -eq 2 ]] ||
  fail "integrity check not OK in both listings"
[[ $(grep -cE '^  0x[0-9a-f]+ +[0-9]+ bytes' <<<"${output}") -eq 5 ]] ||
  fail "the first listing should show the five live blocks"

tail -n 1 <<<"${output}" | grep -qx 'memory pool removed' ||
  fail "did not reach FMempRemove"
echo "PASS"
