#!/usr/bin/env bash
# Makes the README's Studio pictures (docs/images/studio-*.png): the masks, similarity and feature
# PCA views of the bundled sample at 1280×720 and 1920×1080, rendered offscreen by the Studio's
# --screenshot mode (which neither restores a saved layout nor writes a workspace).
# Usage: scripts/studio-screenshots.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
S="${1:-build}/app/corrtrack-studio"
OUT=docs/images
mkdir -p "$OUT"
export QT_QPA_PLATFORM=offscreen
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
VIDEO=assets/sample/city.mp4
MASK=assets/sample/city_00000.png
for size in 1280x720 1920x1080; do
  # The two-object mask of frame 0 propagated through the clip; frame 32 shown.
  "$S" "$VIDEO" --mask "$MASK" --propagate 39 --show 32 --size "$size" --screenshot "$OUT/studio-masks-$size.png" 2>/dev/null
  # Feature similarity of a lit window on frame 20, and on frame 36 in the Inspect dock.
  "$S" "$VIDEO" --frame 20 --inspect 330,215 --other 36 --size "$size" --screenshot "$OUT/studio-similarity-$size.png" 2>/dev/null
  # The default model's features of frame 20 as colours (first three principal components).
  "$S" "$VIDEO" --frame 20 --view pca --size "$size" --screenshot "$OUT/studio-pca-$size.png" 2>/dev/null
done
