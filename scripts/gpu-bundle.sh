#!/usr/bin/env bash
# Companion of scripts/gpu-check.sh, run on a build machine with apt (Debian 12): downloads
# the few small libraries the media-free build needs and GPU machines lack (no Debian -dev
# packages there, often no network) as .deb files into .deps/gpu-bundle/ (ignored by git).
# Carry that folder to the GPU machine with the work tree; gpu-check.sh unpacks it with
# `dpkg -x` (or ar + tar) into .deps/gpu-prefix/. Nothing is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.deps/gpu-bundle
pkgs=(
    libyaml-cpp-dev libyaml-cpp0.7   # config files
    libspdlog-dev libspdlog1.10      # logging
    libfmt-dev libfmt9               # spdlog's {fmt} (LibTorch's own copy is shadowed)
    libcli11-dev nlohmann-json3-dev  # header-only
    libgtest-dev libgmock-dev        # tests (static libraries)
    libgloo-dev                      # headers of c10d's Gloo process group
)
rm -rf "$out"
mkdir -p "$out"
[[ -n "$(find /var/lib/apt/lists -name '*Packages*' -print -quit 2>/dev/null)" ]] || apt-get update -qq
(cd "$out" && apt-get download "${pkgs[@]}" >/dev/null)
printf '%s\n' "${pkgs[@]}" >"$out/PACKAGES"
size=$(du -sm "$out" | cut -f1)
echo "gpu bundle: $(ls "$out"/*.deb | wc -l) packages, ${size} MB in $out"
if ((size > 40)); then
    echo "gpu bundle: larger than 40 MB" >&2
    exit 1
fi
