#!/usr/bin/env bash
# End-to-end test of kv_server with Debian's redis-tools.
#
#   kv_server_test.sh SERVER_BINARY VARIANT [REQUESTS]
#
# VARIANT is an fmemp policy (mutex, spinlock, thread_cache, thread_heaps) or
# "glibc" (--allocator=glibc). A policy the binary does not support
# (--print_policies) is skipped with a message. REQUESTS is redis-benchmark's
# -n (BUILD.bazel passes fewer under the sanitizer configs).
#
# Checks: PING/SET/GET/DEL/EXISTS/DBSIZE/INFO through redis-cli; a bounded
# redis-benchmark run; FLUSHALL brings INFO's used_memory back to its value
# before any SET (and, with fmemp, the region count back to one); malformed
# and oversized requests and abrupt disconnects get an error or a closed
# connection while the server stays up; -OOM once a tiny --max_mb is
# reached (fmemp's hard limit), with SET working again after FLUSHALL; with
# --maxmemory_policy=allkeys-random, writes past the cap succeed as fmemp's
# soft limit evicts keys; SIGTERM and SIGINT give a
# clean exit (status 0, fmemp's check ok, nothing in use).
#
# The '$' in the raw requests below is RESP's, not the shell's.
# shellcheck disable=SC2016
set -euo pipefail

readonly SERVER=$1
readonly VARIANT=$2
readonly REQUESTS=${3:-20000}
TMP=${TEST_TMPDIR:-$(mktemp -d)}
readonly TMP

fail() {
  echo "FAIL [${VARIANT}]: $*" >&2
  if [[ -f "${TMP}/server.log" ]]; then
    echo "--- server log ---" >&2
    tail -n 30 "${TMP}/server.log" >&2
  fi
  exit 1
}
note() { echo "[${VARIANT}] $*"; }

for tool in redis-cli redis-benchmark timeout; do
  command -v "${tool}" >/dev/null ||
    fail "${tool} not found: run tools/setup.sh (it installs redis-tools)"
done

if [[ "${VARIANT}" == glibc ]]; then
  VARIANT_ARGS=(--allocator=glibc)
else
  if ! "${SERVER}" --print_policies | grep -qx "${VARIANT}"; then
    echo "SKIP: policy ${VARIANT} is not available in this build of fmemp"
    exit 0
  fi
  VARIANT_ARGS=(--allocator=fmemp "--policy=${VARIANT}")
fi

pid=""
port=""
cleanup() {
  if [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null; then
    kill -KILL "${pid}" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# start_server [extra flags...]: sets pid and port.
start_server() {
  local port_file="${TMP}/port"
  rm -f "${port_file}"
  "${SERVER}" --port=0 --port_file="${port_file}" --threads=2 \
    "${VARIANT_ARGS[@]}" "$@" >"${TMP}/server.log" 2>&1 &
  pid=$!
  local i
  for ((i = 0; i < 600; i++)); do
    [[ -s "${port_file}" ]] && break
    kill -0 "${pid}" 2>/dev/null || fail "server exited at start"
    sleep 0.05
  done
  [[ -s "${port_file}" ]] || fail "server wrote no port file"
  port=$(<"${port_file}")
}

# stop_server SIGNAL: the server must exit 0 after a clean shutdown.
stop_server() {
  kill "-$1" "${pid}"
  local rc=0
  wait "${pid}" || rc=$?
  pid=""
  [[ ${rc} -eq 0 ]] || fail "server exited with ${rc} after SIG$1"
  grep -q "check=ok" "${TMP}/server.log" || fail "no clean shutdown line"
  note "SIG$1: exit 0, $(grep 'check=' "${TMP}/server.log")"
}

cli() { timeout 20 redis-cli -p "${port}" "$@"; }
expect_eq() {
  [[ "$1" == "$2" ]] || fail "$3: expected '$2', got '$1'"
}
# info_field NAME: a field of INFO (all sections).
info_field() { cli INFO | tr -d '\r' | sed -n "s/^$1://p"; }

# raw TEXT: sends printf-format TEXT on a raw connection and prints what the
# server answers until it closes the connection (or 5 s pass).
raw() {
  exec 3<>"/dev/tcp/127.0.0.1/${port}"
  # shellcheck disable=SC2059
  printf "$1" >&3 || true
  timeout 5 cat <&3 || true
  exec 3<&- 3>&- || true
}

# --- 1. Commands through redis-cli ---
start_server --region_mb=4 --max_mb=256
note "server on port ${port}: $(head -n 1 "${TMP}/server.log")"
used0=$(info_field used_memory)
regions0=$(info_field fmemp_regions)
[[ -n "${used0}" ]] || fail "INFO has no used_memory"
expect_eq "$(cli PING)" PONG "PING"
expect_eq "$(cli SET foo bar)" OK "SET"
expect_eq "$(cli GET foo)" bar "GET"
expect_eq "$(cli EXISTS foo nope)" 1 "EXISTS"
expect_eq "$(cli DBSIZE)" 1 "DBSIZE"
expect_eq "$(cli SET foo 'a longer value with spaces')" OK "SET again"
expect_eq "$(cli GET foo)" "a longer value with spaces" "GET after SET"
expect_eq "$(cli DEL foo nope)" 1 "DEL"
expect_eq "$(cli GET foo)" "" "GET after DEL"
expect_eq "$(cli EXISTS foo)" 0 "EXISTS after DEL"
expect_eq "$(cli CONFIG GET save | head -n 1)" save "CONFIG GET save"
memory_info=$(cli INFO memory | tr -d '\r')
grep -q '^# Memory$' <<<"${memory_info}" || fail "INFO memory: no section"
grep -q '^used_memory_peak:' <<<"${memory_info}" || fail "INFO: no peak"
if [[ "${VARIANT}" != glibc ]]; then
  for field in fmemp_total fmemp_free fmemp_regions fmemp_region_0; do
    grep -q "^${field}:" <<<"${memory_info}" || fail "INFO memory: no ${field}"
  done
fi
expect_eq "$(info_field used_memory)" "${used0}" "used_memory after DEL"

# --- 2. redis-benchmark ---
bench=$(timeout 300 redis-benchmark -p "${port}" -n "${REQUESTS}" -c 8 \
  -r 100000 -d 64 -t set,get -q 2>&1 | tr '\r' '\n') ||
  fail "redis-benchmark failed: ${bench}"
grep -q '^SET: .*requests per second' <<<"${bench}" || fail "bench: ${bench}"
grep -q '^GET: .*requests per second' <<<"${bench}" || fail "bench: ${bench}"
note "$(grep 'requests per second' <<<"${bench}" | tr '\n' ' ')"
keys=$(cli DBSIZE)
[[ ${keys} -gt 100 ]] || fail "only ${keys} keys after the benchmark"
[[ $(info_field used_memory) -gt ${used0} ]] || fail "used did not grow"

# --- 3. FLUSHALL gives the memory back ---
expect_eq "$(cli FLUSHALL)" OK "FLUSHALL"
expect_eq "$(cli DBSIZE)" 0 "DBSIZE after FLUSHALL"
# Frees from other threads may reach a thread heap on its owner's next
# call: allow a few probes.
for ((i = 0; i < 20; i++)); do
  [[ "$(info_field used_memory)" == "${used0}" ]] && break
  sleep 0.1
done
expect_eq "$(info_field used_memory)" "${used0}" "used_memory after FLUSHALL"
if [[ "${VARIANT}" != glibc ]]; then
  expect_eq "$(info_field fmemp_regions)" "${regions0}" "regions after FLUSHALL"
fi
note "used_memory back to ${used0} after FLUSHALL of ${keys} keys"

# --- 4. Malformed input, oversized requests, abrupt disconnects ---
expect_error() {
  local reply
  reply=$(raw "$1" | tr -d '\r')
  grep -q -- "$2" <<<"${reply}" || fail "sent '$1': expected '$2', got '${reply}'"
  expect_eq "$(cli PING)" PONG "PING after '$1'"
}
expect_error '*1\r\n$abc\r\n' 'ERR Protocol error: invalid bulk length'
expect_error '*99999999\r\n' 'ERR Protocol error: invalid multibulk length'
expect_error '*1\r\n$999999999\r\n' 'ERR Protocol error: invalid bulk length'
expect_error '*2\r\n$3\r\nGET\r\n:1\r\n' "ERR Protocol error: expected '\\$'"
expect_error '*1\r\n$4\r\nPINGxx' 'not terminated by CRLF'
expect_error 'PING\r\nQUIT\r\n' '+PONG'
expect_error '\001\377\376 junk\r\nQUIT\r\n' 'ERR unknown command'
expect_error '*1\r\n$3\r\nGET\r\nQUIT\r\n' "wrong number of arguments"
# An inline line past the limit (64 KiB): an error or a reset, never a hang.
exec 3<>"/dev/tcp/127.0.0.1/${port}"
head -c 70000 /dev/zero | tr '\0' a >&3 2>/dev/null || true
timeout 5 cat <&3 >/dev/null 2>&1 || true
exec 3<&- 3>&- || true
# Abrupt disconnects: mid-request, and after requests without reading.
exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc' >&3
exec 3<&- 3>&-
exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n' >&3
exec 3<&- 3>&-
expect_eq "$(cli PING)" PONG "PING after the disconnects"
errors=$(info_field protocol_errors)
[[ ${errors} -ge 5 ]] || fail "protocol_errors is ${errors}"
note "malformed input: ${errors} protocol errors answered, server up"
cli DEL k >/dev/null
stop_server TERM

# --- 5. The cap: -OOM, never a crash ---
start_server --region_mb=1 --max_mb=4
head -c 200000 /dev/zero | tr '\0' v >"${TMP}/value"
oom=""
for ((i = 0; i < 60; i++)); do
  reply=$(cli -x SET "big${i}" <"${TMP}/value")
  if grep -q "OOM command not allowed when used memory > 'maxmemory'" \
    <<<"${reply}"; then
    oom=${i}
    break
  fi
  expect_eq "${reply}" OK "SET big${i}"
done
[[ -n "${oom}" ]] || fail "no -OOM reply below the 4 MiB cap"
expect_eq "$(cli PING)" PONG "PING after -OOM"
expect_eq "$(cli GET big0 | wc -c)" 200001 "GET big0 after -OOM"
note "-OOM after ${oom} SETs of 200 KB (cap 4 MiB)"
expect_eq "$(cli FLUSHALL)" OK "FLUSHALL after -OOM"
expect_eq "$(cli -x SET again <"${TMP}/value")" OK "SET after FLUSHALL"
if [[ "${VARIANT}" != glibc ]]; then
  refusals=$(info_field fmemp_limit_refusals)
  [[ ${refusals} -ge 1 ]] || fail "fmemp_limit_refusals is '${refusals}'"
  note "the -OOM was fmemp's hard limit: fmemp_limit_refusals:${refusals}"
fi
stop_server INT

# --- 6. Eviction from fmemp's soft limit (allkeys-random) ---
if [[ "${VARIANT}" != glibc ]]; then
  start_server --region_mb=1 --max_mb=4 --maxmemory_policy=allkeys-random
  for ((i = 0; i < 60; i++)); do  # 12 MB of writes under a 4 MiB cap
    expect_eq "$(cli -x SET "big${i}" <"${TMP}/value")" OK "SET big${i}"
  done
  evicted=$(info_field evicted_keys)
  used=$(info_field used_memory)
  [[ ${evicted} -ge 30 ]] || fail "evicted_keys is '${evicted}'"
  [[ ${used} -le 4194304 ]] || fail "used_memory ${used} above the cap"
  note "60 SETs of 200 KB under a 4 MiB cap: ${evicted} keys evicted, used ${used}"
  stop_server TERM
fi

echo "PASS [${VARIANT}]"
