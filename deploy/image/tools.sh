# shellcheck shell=bash
# Sourced by scripts/build-image (exit status 4 when the tools can be neither found nor fetched): make mmdebstrap and umoci available without installing anything on the host.
#
# From PATH when they are there; otherwise Debian's packages are downloaded with apt-get using a state folder of
# their own (lists, cache, no lock on the host's) and unpacked under $1. The host's /var/lib/apt/lists,
# /var/cache/apt and dpkg database are only read. mmdebstrap's own dependencies (apt, perl, python3) are part of a
# Debian host already.

ensure_tools() {
  local dir=$1
  MMDEBSTRAP_HOOKS=/usr/share/mmdebstrap/hooks
  if command -v mmdebstrap >/dev/null && command -v umoci >/dev/null && [ -d "$MMDEBSTRAP_HOOKS/merged-usr" ]; then
    return 0
  fi
  if [ ! -x "$dir/root/usr/bin/mmdebstrap" ] || [ ! -x "$dir/root/usr/bin/umoci" ]; then
    echo "build-image: fetching mmdebstrap and umoci (Debian packages, unpacked under $dir)" >&2
    rm -rf "$dir.partial"
    mkdir -p "$dir.partial/apt/lists/partial" "$dir.partial/apt/cache/archives/partial" "$dir.partial/debs"
    local apt_opts=(
      -o "Dir::State::Lists=$dir.partial/apt/lists" -o "Dir::Cache=$dir.partial/apt/cache"
      -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o Debug::NoLocking=1 -o APT::Sandbox::User=root
    )
    if ! apt-get -qq "${apt_opts[@]}" update >&2 ||
      ! (cd "$dir.partial/debs" && apt-get -qq "${apt_opts[@]}" download mmdebstrap umoci >&2); then
      rm -rf "$dir.partial"
      echo "build-image: error: tools_unavailable: mmdebstrap and umoci are not on PATH and their Debian" \
        "packages cannot be downloaded (apt-get failed: no Debian mirror reachable?)" >&2
      exit 4
    fi
    local deb
    for deb in "$dir.partial"/debs/*.deb; do
      dpkg-deb -x "$deb" "$dir.partial/root"
    done
    rm -rf "$dir.partial/apt" "$dir"
    mv "$dir.partial" "$dir"
  fi
  PATH="$dir/root/usr/bin:$PATH"
  MMDEBSTRAP_HOOKS="$dir/root/usr/share/mmdebstrap/hooks"
  export PATH MMDEBSTRAP_HOOKS
}
