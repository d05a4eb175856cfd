#!/usr/bin/env bash
# Runs shim_exerciser under libfmemp_malloc.so with each policy the shim
# offers, and checks that it passed and that the FMemp served its calls.
set -euo pipefail
dir=bench/programs
shim="${PWD}/${dir}/libfmemp_malloc.so"
for policy in cache mutex spinlock; do
  out=$(FMEMP_SHIM_POLICY=${policy} FMEMP_SHIM_REPORT=1 LD_PRELOAD="${shim}" \
        "${dir}/shim_exerciser" 2>&1)
  echo "[${policy}] ${out}"
  grep -q '^failures: 0$' <<<"${out}" || { echo "FAIL: ${policy}"; exit 1; }
  served=$(sed -n 's/.*: \([0-9]*\) calls served by the FMemp.*/\1/p' <<<"${out}")
  # 4 threads x 200 rounds x 64 blocks, plus the reallocs.
  if [[ -z "${served}" || "${served}" -lt 51200 ]]; then
    echo "FAIL: ${policy}: the FMemp served ${served:-no} calls"
    exit 1
  fi
done
echo PASS
