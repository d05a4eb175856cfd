#!/usr/bin/env bash
# Builds and runs tests/outside_workspace/, a workspace of its own that uses
# fmemp as another project would (see docs/USING.md). tools/test.sh runs it as
# its `outside` stage; it needs what tools/setup.sh installs.
#
# The workspace gets its own Bazel server and output base under
# ~/.cache/fmemp, so it never waits on or disturbs the server of fmemp's own
# workspace, and shares the disk and repository caches tools/test.sh uses.
# Exits non-zero if the build fails or the program does not report success.
set -euo pipefail

cd "$(dirname "$0")"
readonly CACHE_DIR="${HOME}/.cache/fmemp"
mkdir -p "${CACHE_DIR}"
STARTUP_FLAGS=(
  "--output_base=${CACHE_DIR}/outside-workspace"
  # The server is only needed for this script: let it go soon after.
  "--max_idle_secs=60"
)
BUILD_FLAGS=(
  "--disk_cache=${CACHE_DIR}/bazel-disk"
  "--repository_cache=${CACHE_DIR}/bazel-repo"
  # No bazel-* links here: fmemp's own `bazel build //...` would follow them.
  "--symlink_prefix=/"
  "--color=no"
  "--curses=no"
)

# Plain, then under each sanitizer config that tools/fmemp.bazelrc (imported
# by this workspace's .bazelrc) gives another workspace. --test_env does not
# reach a binary run by hand, so the sanitizer options are set here.
for config in "" tsan asan; do
  flags=("${BUILD_FLAGS[@]}")
  [[ -n "${config}" ]] && flags+=("--config=${config}")
  bazel "${STARTUP_FLAGS[@]}" build "${flags[@]}" //:uses_fmemp
  bin_dir=$(bazel "${STARTUP_FLAGS[@]}" info "${flags[@]}" bazel-bin)
  output=$(TSAN_OPTIONS=halt_on_error=1 \
           ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 \
           UBSAN_OPTIONS=halt_on_error=1 "${bin_dir}/uses_fmemp")
  echo "[${config:-plain}] ${output}"
  [[ $(tail -n 1 <<<"${output}") == "outside workspace: fmemp works" ]]
done
