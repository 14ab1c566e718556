#!/usr/bin/env bash
# Reproduces the README's Fashion-MNIST table: every image method trained for the same number of
# steps (batch 256, ConvNet width 16; wall time is reported per method), then `eval-image`; plus
# the raw-pixel and random-encoder rows. Usage: scripts/image-table.sh [STEPS] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${1:-150}"
OUT="${2:-out/image-table}"
B=build/app/corrtrack
mkdir -p "$OUT"
"$B" -q eval-image --features pixels --json "$OUT/pixels.json" >/dev/null
"$B" -q eval-image --features random --width 16 --json "$OUT/random.json" >/dev/null
for m in simclr moco byol swav npid sela deepcluster iic pcl supcon cpc; do
  rm -rf "$OUT/$m"
  "$B" -q train --method "$m" --data fashion-mnist --out "$OUT/$m" --width 16 --batch 256 --lr 1e-3 --steps "$STEPS" \
    --log-every 25 --checkpoint-every 100000 >"$OUT/$m.train.json"
  "$B" -q eval-image --checkpoint "$OUT/$m/last.ckpt" --json "$OUT/$m.json" >/dev/null
  echo "$m: $(tr -d ' \n' <"$OUT/$m.json")"
done
