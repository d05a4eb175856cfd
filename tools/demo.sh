#!/usr/bin/env bash
# The demonstration, the first Quick start command of README.md.
#
# Installs what is missing on first use (tools/setup.sh), builds with
# optimisation, and then, in about a minute:
#   1. starts the RESP key-value server (examples/kv_server) with its keys and
#      values in fmemp, over 2 MiB regions mapped on demand (cap 64 MiB);
#   2. drives it with redis-benchmark (SET and GET, random keys) while it
#      grows: fmemp's out-of-memory handler adds a region each time the pool
#      is full, and the demo samples the region count as it climbs;
#   3. prints requests per second and the server's memory report (INFO
#      memory): the aggregated probe with its peak, cached bytes when the
#      policy has per-thread caches, and one line per region;
#   4. drives it again with SETs while FLUSHALL runs every half second: each
#      FLUSHALL frees every entry and the server removes and unmaps the empty
#      regions, so regions come and go under load;
#   5. stops the server with SIGTERM (it frees everything and runs fmemp's
#      integrity check);
#   6. budgets: a server with maxmemory 16 MiB on fmemp's hard limit takes
#      300 MB of SETs with allkeys-random eviction driven by fmemp's soft
#      limit, retiring a live region under that load (eviction and
#      overwrites empty it and it goes); then, with noeviction, refuses a
#      SET with -OOM at the limit, and retires a live region, which goes
#      once FLUSHALL deletes its keys;
#   7. runs the small-pool tour (examples/tlsf_demo: one
#      heap over three regions, FMemListAll-style block listing, misuse
#      reports, region removal).
# Everything it starts is stopped on exit, also on Ctrl-C.
#
# FMEMP_DEMO_POLICY picks the server's fmemp policy (default: thread_cache,
# per-thread caches: the report then shows cached bytes).
set -euo pipefail

cd "$(dirname "$0")/.."
tools/setup.sh
readonly CACHE_DIR="${HOME}/.cache/fmemp"
readonly POLICY=${FMEMP_DEMO_POLICY:-thread_cache}
# shellcheck disable=SC2054  # the commas are inside one flag's value
BAZEL_FLAGS=(
  -c opt
  "--disk_cache=${CACHE_DIR}/bazel-disk"
  "--repository_cache=${CACHE_DIR}/bazel-repo"
  --color=no --curses=no --ui_event_filters=-info,-stdout --noshow_progress
)

section() { printf '\n=== %s\n' "$*"; }

section "Building (bazel -c opt)"
bazel build "${BAZEL_FLAGS[@]}" //examples/kv_server:kv_server //examples:tlsf_demo
bin_dir=$(bazel info -c opt --color=no --curses=no bazel-bin 2>/dev/null)
readonly SERVER="${bin_dir}/examples/kv_server/kv_server"
readonly TOUR="${bin_dir}/examples/tlsf_demo"

work=$(mktemp -d)
server_pid=""
background_pids=()
cleanup() {
  local p
  for p in "${background_pids[@]}"; do kill "${p}" 2>/dev/null || true; done
  if [[ -n "${server_pid}" ]] && kill -0 "${server_pid}" 2>/dev/null; then
    kill -TERM "${server_pid}" 2>/dev/null || true
    wait "${server_pid}" 2>/dev/null || true
  fi
  rm -rf "${work}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

section "1. Starting the key-value server (policy ${POLICY}, 2 MiB regions, cap 64 MiB)"
"${SERVER}" --port=0 --port_file="${work}/port" --threads=2 \
  --policy="${POLICY}" --region_mb=2 --max_mb=64 >"${work}/server.log" 2>&1 &
server_pid=$!
for ((i = 0; i < 100; i++)); do
  [[ -s "${work}/port" ]] && break
  kill -0 "${server_pid}" 2>/dev/null || { cat "${work}/server.log"; exit 1; }
  sleep 0.05
done
port=$(<"${work}/port")
head -n 1 "${work}/server.log"

cli() { timeout 10 redis-cli -p "${port}" "$@"; }
field() { cli INFO memory | tr -d '\r' | sed -n "s/^$1://p"; }

# Prints INFO memory: the aggregated probe, then one row per region.
memory_report() {
  local info
  info=$(cli INFO memory | tr -d '\r')
  awk -F: '
    /^fmemp_region_[0-9]+:/ { next }
    /^(used_memory|used_memory_peak|maxmemory|fmemp_total|fmemp_free|fmemp_cached_bytes|fmemp_live_blocks|fmemp_regions|fmemp_mapped_bytes|fmemp_regions_added|fmemp_regions_removed|fmemp_policy):/ {
      printf "  %-24s %s\n", $1, $2
    }' <<<"${info}"
  printf '  %-6s %-16s %10s %10s %10s %10s %12s %8s\n' \
    region begin total used free peak largest_free blocks
  awk -F'[:,=]' '/^fmemp_region_[0-9]+:/ {
      sub("fmemp_region_", "", $1)
      printf "  %-6s %-16s %10s %10s %10s %10s %12s %8s\n",
        $1, $3, $5, $7, $9, $11, $13, $15
    }' <<<"${info}"
}

section "Memory at start"
memory_report

section "2. redis-benchmark: 200000 SET then 200000 GET, 16 clients, random keys, 128-byte values"
timeout 60 redis-benchmark -p "${port}" -n 200000 -c 16 -r 200000 -d 128 \
  -t set,get -q >"${work}/bench.txt" 2>&1 &
bench_pid=$!
background_pids+=("${bench_pid}")
printf '  regions while it runs:'
while kill -0 "${bench_pid}" 2>/dev/null; do
  printf ' %s' "$(field fmemp_regions)"
  sleep 0.5
done
printf '\n'
wait "${bench_pid}" || true
tr '\r' '\n' <"${work}/bench.txt" | grep 'requests per second' | sed 's/^/  /'
printf '  keys: %s\n' "$(cli DBSIZE)"

section "3. Memory after the benchmark (INFO memory)"
memory_report

section "4. SETs under load while FLUSHALL runs every 0.5 s (regions added, then removed)"
timeout 30 redis-benchmark -p "${port}" -n 150000 -c 16 -r 200000 -d 128 \
  -t set -q >"${work}/bench2.txt" 2>&1 &
bench_pid=$!
background_pids+=("${bench_pid}")
added0=$(field fmemp_regions_added)
removed0=$(field fmemp_regions_removed)
printf '  regions (before FLUSHALL -> after):'
while kill -0 "${bench_pid}" 2>/dev/null; do
  sleep 0.5
  before=$(field fmemp_regions)
  cli FLUSHALL >/dev/null
  printf ' %s->%s' "${before}" "$(field fmemp_regions)"
done
printf '\n'
wait "${bench_pid}" || true
tr '\r' '\n' <"${work}/bench2.txt" | grep 'requests per second' | sed 's/^/  /'
printf '  regions added during this run: %s, removed: %s\n' \
  $(($(field fmemp_regions_added) - added0)) \
  $(($(field fmemp_regions_removed) - removed0))
cli FLUSHALL >/dev/null
section "Memory after a final FLUSHALL (used back to 0; the peak remains)"
memory_report

section "5. Stopping the server (SIGTERM: free everything, FMempCheck)"
kill -TERM "${server_pid}"
rc=0
wait "${server_pid}" || rc=$?
server_pid=""
tail -n 2 "${work}/server.log" | sed 's/^/  /'
echo "  exit status ${rc}"

section "6. Budgets: maxmemory 16 MiB on fmemp's hard limit, eviction from its soft limit"
# start_budget_server POLICY: a second server whose maxmemory is fmemp's
# hard limit (FMempSetLimit); with allkeys-random, fmemp's soft limit at 90 %
# calls the store's eviction (down to 80 %) outside fmemp's locks.
start_budget_server() {
  rm -f "${work}/port"
  "${SERVER}" --port=0 --port_file="${work}/port" --threads=2 \
    --policy="${POLICY}" --region_mb=2 --max_mb=16 \
    --maxmemory_policy="$1" >"${work}/server.log" 2>&1 &
  server_pid=$!
  for ((i = 0; i < 100; i++)); do
    [[ -s "${work}/port" ]] && break
    sleep 0.05
  done
  port=$(<"${work}/port")
}
stop_budget_server() {
  kill -TERM "${server_pid}"
  wait "${server_pid}" || true
  server_pid=""
}
stat_field() { cli INFO stats | tr -d '\r' | sed -n "s/^$1://p"; }
# retire_live_region: retires the first region that holds live keys
# (FMEMP.RETIRE: FMempRetireRegion; the first mapping is refused: try the
# next) and prints its number, or nothing when none would retire.
retire_live_region() {
  local r
  for r in $(cli INFO memory | tr -d '\r' |
    sed -n 's/^fmemp_region_\([0-9]*\):.*live_blocks=\([1-9][0-9]*\),.*/\1/p'); do
    if [[ "$(cli FMEMP.RETIRE "${r}")" == OK ]]; then
      echo "${r}"
      return
    fi
  done
}
start_budget_server allkeys-random
echo "  allkeys-random: 300000 SETs of 1 KiB values (about 300 MB) into 16 MiB;"
echo "  after 2 s a live region is retired: eviction and overwrites empty it"
timeout 60 redis-benchmark -p "${port}" -n 300000 -c 16 -r 1000000 -d 1024 \
  -t set -q >"${work}/bench3.txt" 2>&1 &
bench_pid=$!
background_pids+=("${bench_pid}")
printf '  %-10s %-14s %-16s %-8s %s\n' used_memory evicted_keys fmemp_evictions \
  regions retired
seconds=0
while kill -0 "${bench_pid}" 2>/dev/null; do
  printf '  %-10s %-14s %-16s %-8s %s\n' "$(field used_memory)" \
    "$(stat_field evicted_keys)" "$(field fmemp_evictions)" \
    "$(field fmemp_regions)" "$(field fmemp_regions_retired)"
  if ((++seconds == 2)); then
    retired=$(retire_live_region)
    cli INFO memory | tr -d '\r' | { grep "retiring=1" || true; } |
      sed 's/^fmemp_region_\([0-9]*\):begin=\([^,]*\),.*used=\([0-9]*\),.*live_blocks=\([0-9]*\).*/  -- region \1 at \2 retired under load: \3 bytes in \4 live blocks/'
  fi
  sleep 1
done
wait "${bench_pid}" || true
tr '\r' '\n' <"${work}/bench3.txt" | grep 'requests per second' | sed 's/^/  /'
printf '  after: used_memory %s (limit %s), keys %s, evicted %s, refused %s\n' \
  "$(field used_memory)" "$(field fmemp_limit)" "$(cli DBSIZE)" \
  "$(stat_field evicted_keys)" "$(field fmemp_limit_refusals)"
printf '  region %s retired under load: fmemp_regions_retired %s, still retiring: %s\n' \
  "${retired:-none}" "$(field fmemp_regions_retired)" \
  "$(cli INFO memory | tr -d '\r' | grep -c "retiring=1" || true)"
stop_budget_server
start_budget_server noeviction
echo "  noeviction: SETs of 1 MB values until fmemp's hard limit refuses one"
head -c 1000000 /dev/zero | tr '\0' v >"${work}/value"
for ((i = 0; i < 40; i++)); do
  reply=$(cli -x SET "big${i}" <"${work}/value")
  if [[ "${reply}" != OK ]]; then
    printf '  SET big%s -> %s\n' "${i}" "${reply}"
    break
  fi
done
printf '  used_memory %s of limit %s; fmemp_limit_refusals %s; GET big0: %s bytes\n' \
  "$(field used_memory)" "$(field fmemp_limit)" \
  "$(field fmemp_limit_refusals)" "$(cli GET big0 | wc -c)"
echo "  retiring a live region (FMEMP.RETIRE: FMempRetireRegion), then FLUSHALL"
retire_live_region >/dev/null
cli INFO memory | tr -d '\r' | { grep "retiring=1" || true; } |
  sed 's/^fmemp_region_\([0-9]*\):begin=\([^,]*\),.*used=\([0-9]*\),.*live_blocks=\([0-9]*\).*/  region \1 at \2 retiring: \3 bytes in \4 live blocks/'
printf '  regions before FLUSHALL: %s\n' "$(field fmemp_regions)"
cli FLUSHALL >/dev/null
printf '  after: regions %s, fmemp_regions_retired %s (unmapped by its handler)\n' \
  "$(field fmemp_regions)" "$(field fmemp_regions_retired)"
stop_budget_server

section "A small pool, block by block (examples/tlsf_demo, FMemListAll-style listing)"
"${TOUR}"
