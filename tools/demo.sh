#!/usr/bin/env bash
# The demonstration, the first Quick start command of README.md.
#
# Installs what is missing on first use (tools/setup.sh), builds with
# optimisation and runs the example tour of the TLSF heap: one heap over three
# non-contiguous regions, allocation of every kind, usage counters, a block
# listing, detected misuse, and run-time region removal.
set -euo pipefail

cd "$(dirname "$0")/.."
tools/setup.sh
readonly CACHE_DIR="${HOME}/.cache/fmemp"
bazel run -c opt --disk_cache="${CACHE_DIR}/bazel-disk" \
  --repository_cache="${CACHE_DIR}/bazel-repo" --color=no --curses=no \
  --ui_event_filters=-info,-stdout --noshow_progress \
  //examples:tlsf_demo
