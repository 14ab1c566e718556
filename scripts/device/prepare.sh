#!/usr/bin/env bash
# Run HERE (the Debian machine), before a GPU session: gathers what the GPU machine lacks into two
# git-ignored folders that a device call names in `carry`:
#   .devdeps/  Debian packages unpacked (dpkg -x): spdlog/fmt (headers and libraries), CLI11,
#              nlohmann-json, libpng, libjpeg-turbo, zlib, and Gloo's headers (plan 2). The GPU machine has CUDA LibTorch,
#              CMake and ninja but none of these.
#   .devdata/  the data one plan reads (see below), copied from ../shared/data or the system.
# Usage: scripts/device/prepare.sh deps            (always needed)
#        scripts/device/prepare.sh davis SEQ,SEQ…  (plan 1: val-dev frames and masks, a subset)
#        scripts/device/prepare.sh fashion-mnist   (plan 4: the IDX files)
#        scripts/device/prepare.sh train           (plans 3 and 5: DAVIS-2016 train frames)
# A device call carries at most 64 MiB with the working tree (about 18 MB): `du -sh .devdeps
# .devdata` before calling. Each `davis`/`fashion-mnist`/`train` call replaces .devdata.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${CORRTRACK_DATA:-../shared/data}
what=${1:?usage: prepare.sh deps | davis SEQ,SEQ | fashion-mnist | train}

deps() {
  local pkgs=(libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 libcli11-dev nlohmann-json3-dev
              libpng-dev libpng16-16 libjpeg62-turbo-dev libjpeg62-turbo zlib1g-dev zlib1g libgloo-dev)
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download "${pkgs[@]}" >/dev/null)
  rm -rf .devdeps.tmp && mkdir .devdeps.tmp
  for f in "$tmp"/*.deb; do dpkg -x "$f" .devdeps.tmp; done
  rm -rf "$tmp"
  # Libraries that a package puts under /lib join /usr/lib, and absolute links (zlib's
  # libz.so -> /lib/...) become relative ones inside the folder, so the folder works anywhere.
  if [ -d .devdeps.tmp/lib ]; then cp -a .devdeps.tmp/lib/. .devdeps.tmp/usr/lib/ && rm -rf .devdeps.tmp/lib; fi
  find .devdeps.tmp -type l | while read -r link; do
    target=$(readlink "$link")
    case "$target" in
      /*) ln -sfn "$(basename "$target")" "$link" ;;
    esac
  done
  find .devdeps.tmp/usr/share -mindepth 1 -maxdepth 1 ! -name cmake -exec rm -rf {} +   # docs, man pages
  rm -rf .devdeps && mv .devdeps.tmp .devdeps
  du -sh .devdeps
}

davis() {
  local seqs=${1:?davis needs a comma-separated list of val-dev sequences}
  local src=$DATA/davis2016-val-dev
  rm -rf .devdata && mkdir -p .devdata/davis/JPEGImages .devdata/davis/Annotations
  for s in ${seqs//,/ }; do
    [ -d "$src/JPEGImages/$s" ] || { echo "prepare.sh: no sequence '$s' in $src" >&2; exit 1; }
    cp -r "$src/JPEGImages/$s" .devdata/davis/JPEGImages/
    cp -r "$src/Annotations/$s" .devdata/davis/Annotations/
  done
  du -sh .devdata
}

fashion() {
  local src=${CORRTRACK_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
  rm -rf .devdata && mkdir -p .devdata/fashion-mnist
  cp "$src"/*-ubyte.gz .devdata/fashion-mnist/
  du -sh .devdata
}

train() {
  rm -rf .devdata && mkdir -p .devdata
  cp -r "$DATA/davis2016-train-240p/JPEGImages" .devdata/JPEGImages
  du -sh .devdata
}

case "$what" in
  deps) deps ;;
  davis) davis "${2:-}" ;;
  fashion-mnist) fashion ;;
  train) train ;;
  *) echo "prepare.sh: unknown '$what' (deps | davis SEQ,SEQ | fashion-mnist | train)" >&2; exit 1 ;;
esac
