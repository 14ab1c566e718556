#!/usr/bin/env bash
# Installs the Debian packages CorrTrack needs, skipping those already present (idempotent).
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config ccache git
  libtorch-dev libopenblas0-openmp libgloo-dev
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev ffmpeg
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libpng-dev libjpeg62-turbo-dev zlib1g-dev
  libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev
  qt6-base-dev qt6-charts-dev libqt6opengl6-dev libgl-dev xvfb xauth
  dataset-fashion-mnist
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
