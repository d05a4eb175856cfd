#!/usr/bin/env bash
# Requests per second of kv_server with each fmemp policy and with glibc
# malloc, under redis-benchmark; prints a Markdown table (docs/SERVER.md).
#
#   examples/kv_server/bench.sh [SERVER_BINARY]
#
# Without an argument it builds //examples/kv_server:kv_server with -c opt.
# For each allocator it starts a fresh server (--threads=THREADS, 64 MiB regions,
# 1 GiB cap), runs redis-benchmark SET and GET with random keys and 64-byte
# values, unpipelined and with -P 16, REPEATS times, and reports the median.
# The ratio column is requests/s over glibc's for the same test.
#
# Environment: REQUESTS (default 200000 per unpipelined test; pipelined
# tests send 4x as many), CLIENTS (default 32), REPEATS (default 3),
# THREADS (default 2).
set -euo pipefail

cd "$(dirname "$0")/../.."
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-32}
REPEATS=${REPEATS:-3}
THREADS=${THREADS:-2}

server=${1:-}
if [[ -z "${server}" ]]; then
  bazel build -c opt --color=no --curses=no --noshow_progress \
    //examples/kv_server:kv_server >&2
  server="$(bazel info -c opt --color=no --curses=no bazel-bin 2>/dev/null)/examples/kv_server/kv_server"
fi
command -v redis-benchmark >/dev/null ||
  { echo "redis-benchmark not found: run tools/setup.sh" >&2; exit 1; }

work=$(mktemp -d)
pid=""
cleanup() {
  if [[ -n "${pid}" ]]; then kill -TERM "${pid}" 2>/dev/null || true; fi
  rm -rf "${work}"
}
trap cleanup EXIT

variants=(glibc)
mapfile -t policies < <("${server}" --print_policies)
variants+=("${policies[@]}")

# run_variant VARIANT: prints "test rps" lines (median of REPEATS).
run_variant() {
  local variant=$1 args
  if [[ "${variant}" == glibc ]]; then
    args=(--allocator=glibc)
  else
    args=(--allocator=fmemp "--policy=${variant}")
  fi
  rm -f "${work}/port"
  "${server}" --port=0 --port_file="${work}/port" --threads="${THREADS}" \
    --region_mb=64 --max_mb=1024 "${args[@]}" >"${work}/server.log" 2>&1 &
  pid=$!
  for ((i = 0; i < 100; i++)); do
    [[ -s "${work}/port" ]] && break
    sleep 0.05
  done
  local port
  port=$(<"${work}/port")
  local pipeline n r
  for pipeline in 1 16; do
    n=${REQUESTS}
    [[ ${pipeline} -eq 1 ]] || n=$((REQUESTS * 4))
    for ((r = 0; r < REPEATS; r++)); do
      timeout 300 redis-benchmark -p "${port}" -n "${n}" -c "${CLIENTS}" \
        -P "${pipeline}" -r 100000 -d 64 -t set,get --csv 2>/dev/null |
        tr -d '"' | awk -F, -v p="${pipeline}" \
          '$1 == "SET" || $1 == "GET" { printf "%s-P%s %s\n", $1, p, $2 }'
      timeout 10 redis-cli -p "${port}" FLUSHALL >/dev/null
    done
  done
  kill -TERM "${pid}"
  wait "${pid}" || { echo "server ${variant} did not exit cleanly" >&2; cat "${work}/server.log" >&2; }
  pid=""
}

for variant in "${variants[@]}"; do
  echo "running ${variant}..." >&2
  run_variant "${variant}" | sed "s/^/${variant} /" >>"${work}/results"
done

# Median per (variant, test); ratio to glibc.
echo "| allocator | SET rps | GET rps | SET -P16 rps | GET -P16 rps | SET vs glibc | GET vs glibc | SET -P16 vs glibc | GET -P16 vs glibc |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
sort -k1,1 -k2,2 -k3,3n "${work}/results" | awk -v order="${variants[*]}" '
  { key = $1 " " $2; vals[key] = vals[key] " " $3; count[key]++ }
  END {
    split("SET-P1 GET-P1 SET-P16 GET-P16", tests, " ")
    for (k in vals) {
      m = split(substr(vals[k], 2), v, " ")
      # values arrive sorted (sort -n above); take the middle one
      median[k] = v[int((m + 1) / 2)]
    }
    n = split(order, names, " ")
    for (i = 1; i <= n; i++) {
      line = "| " (names[i] == "glibc" ? "glibc malloc" : "fmemp " names[i])
      for (t = 1; t <= 4; t++) line = line " | " sprintf("%.0f", median[names[i] " " tests[t]])
      for (t = 1; t <= 4; t++) {
        base = median["glibc " tests[t]]
        line = line " | " (base > 0 ? sprintf("%.2f", median[names[i] " " tests[t]] / base) : "-")
      }
      print line " |"
    }
  }'
