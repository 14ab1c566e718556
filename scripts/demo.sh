#!/usr/bin/env bash
# Propagates the bundled sample's first-frame mask through the clip and writes masks plus an
# overlay video under out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
BIN="$BUILD/app/corrtrack"
SAMPLE=assets/sample/city.mp4
MASK=assets/sample/city_00000.png
OUT=out/demo
# The bundled trained model (assets/models/default.ckpt) is the command's default.
FEATURES=(--features default)
if [ ! -f assets/models/default.ckpt ]; then FEATURES=(--features pixels); fi

"$BIN" inspect video "$SAMPLE"
"$BIN" propagate --video "$SAMPLE" --mask "$MASK" "${FEATURES[@]}" --out "$OUT/masks" --overlay "$OUT/overlay.mp4"
echo
echo "Demo done: $(ls "$OUT/masks" | wc -l) palette masks in $OUT/masks/, overlay video $OUT/overlay.mp4"
