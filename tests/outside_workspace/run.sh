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

bazel "${STARTUP_FLAGS[@]}" build "${BUILD_FLAGS[@]}" //:uses_fmemp
bin_dir=$(bazel "${STARTUP_FLAGS[@]}" info "${BUILD_FLAGS[@]}" bazel-bin)
output=$("${bin_dir}/uses_fmemp")
echo "${output}"
[[ $(tail -n 1 <<<"${output}") == "outside workspace: fmemp works" ]]
