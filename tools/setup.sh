#!/usr/bin/env bash
# Installs what fmemp needs to build and test on Debian 12, on first use only.
#
# Idempotent: every step checks first and does nothing when its work is done.
# Reaches only Debian's archive. Needs root (or passwordless sudo) only when
# something is missing; stops with a clear message otherwise.
set -euo pipefail

readonly DEPS_DIR=/opt/fmemp-deps
readonly ABSL_DIR="${DEPS_DIR}/abseil-cpp"
readonly ABSL_VERSION=20220623.1
readonly SRC_LIST=/etc/apt/sources.list.d/fmemp-deb-src.sources

# Debian packages the build, the tests and the tools need.
PACKAGES=(
  bazel-bootstrap bazel-skylib bazel-platforms bazel-rules-java
  g++ clang libclang-rt-14-dev
  googletest libbenchmark-dev
  valgrind dpkg-dev
  cmake pkg-config
  libjemalloc-dev libgoogle-perftools-dev libmimalloc-dev
)
PACKAGES+=(redis-tools)
if [[ -n "${FMEMP_EXTRA_PACKAGES:-}" ]]; then
  read -r -a extra <<<"${FMEMP_EXTRA_PACKAGES}"
  PACKAGES+=("${extra[@]}")
fi

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo "$@"
  else
    die "'$*' needs root. Run this script as root (or with passwordless sudo) once; later runs need no privileges."
  fi
}

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

apt_updated=0
apt_update_once() {
  if [[ $apt_updated -eq 0 ]]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
}

install_packages() {
  local missing
  missing=$(missing_packages | tr '\n' ' ')
  if [[ -n "${missing// /}" ]]; then
    apt_update_once
    log "installing: ${missing}"
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing} >/dev/null
  fi
}

# A deb-src entry mirroring the binary entries, so `apt-get source` works.
ensure_deb_src() {
  if grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ ||
     grep -qs '^deb-src' /etc/apt/sources.list; then
    return
  fi
  log "adding a deb-src entry (${SRC_LIST})"
  as_root tee "${SRC_LIST}" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt_updated=0
  apt_update_once
}

# Abseil's own Bazel source, from Debian's source package.
install_abseil_source() {
  if [[ -f "${ABSL_DIR}/WORKSPACE" && -f "${ABSL_DIR}/.fmemp-${ABSL_VERSION}" ]]; then
    return
  fi
  ensure_deb_src
  local tmp
  tmp=$(mktemp -d)
  log "fetching Abseil ${ABSL_VERSION} source from Debian"
  (cd "${tmp}" && apt-get source --download-only "abseil=${ABSL_VERSION}-1+deb12u2" >/dev/null 2>&1) ||
    (cd "${tmp}" && apt-get source --download-only abseil >/dev/null 2>&1) ||
    { apt_update_once; (cd "${tmp}" && apt-get source --download-only abseil >/dev/null 2>&1); } ||
    die "apt-get source abseil failed: is a deb-src entry for bookworm configured?"
  local tarball
  tarball=$(ls "${tmp}"/abseil_*.orig.tar.gz 2>/dev/null | head -n 1)
  [[ -n "${tarball}" ]] || die "no abseil_*.orig.tar.gz in the downloaded source"
  as_root mkdir -p "${DEPS_DIR}"
  as_root rm -rf "${ABSL_DIR}.tmp"
  as_root mkdir -p "${ABSL_DIR}.tmp"
  as_root tar -xzf "${tarball}" -C "${ABSL_DIR}.tmp" --strip-components=1
  as_root touch "${ABSL_DIR}.tmp/.fmemp-${ABSL_VERSION}"
  as_root rm -rf "${ABSL_DIR}"
  as_root mv "${ABSL_DIR}.tmp" "${ABSL_DIR}"
  rm -rf "${tmp}"
}

main() {
  command -v dpkg-query >/dev/null 2>&1 || die "this script needs Debian (dpkg-query not found)"
  install_packages
  install_abseil_source
  command -v bazel >/dev/null 2>&1 || die "bazel is not on PATH after installing bazel-bootstrap"
}

main "$@"
