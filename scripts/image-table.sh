#!/usr/bin/env bash
# Reproduces the README's Fashion-MNIST table: every image method trained on the CPU for a fixed
# budget of optimiser steps (batch 256, ConvNet width 16, Adam 1e-3 with 50 warm-up steps and a
# cosine decay), then `eval-image`; plus the raw-pixel and random-encoder rows.
# The steps per method are what this 2-core machine does in about 5 minutes when nothing else runs
# (rates from `bench train`), capped at 3000; pass a factor to scale them all, e.g. 0.1 for a smoke
# run. Usage: scripts/image-table.sh [FACTOR] [OUT_DIR]
# Environment: THREADS=N passes --threads N; KEEP=1 keeps methods that already have results in OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
FACTOR="${1:-1}"
OUT="${2:-out/image-table}"
B="${CORRTRACK_BIN:-build/app/corrtrack}"
T=(${THREADS:+--threads "$THREADS"})
declare -A STEPS=([simclr]=1100 [moco]=1100 [byol]=700 [swav]=1100 [npid]=3000 [sela]=3000
                  [deepcluster]=3000 [iic]=3000 [pcl]=3000 [supcon]=3000 [cpc]=700)
mkdir -p "$OUT"
for f in pixels random; do
  [ "${KEEP:-0}" = 1 ] && [ -s "$OUT/$f.json" ] && continue
  "$B" "${T[@]}" -q eval-image --features "$f" --width 16 --json "$OUT/$f.json" >/dev/null
done
for m in simclr moco byol swav npid sela deepcluster iic pcl supcon cpc; do
  steps=$(awk -v s="${STEPS[$m]}" -v f="$FACTOR" 'BEGIN { n = int(s * f); print (n < 1 ? 1 : n) }')
  if [ "${KEEP:-0}" = 1 ] && [ -s "$OUT/$m.json" ]; then echo "$m: kept $(tr -d ' \n' <"$OUT/$m.json")"; continue; fi
  rm -rf "${OUT:?}/$m"
  "$B" "${T[@]}" -q train --method "$m" --data fashion-mnist --out "$OUT/$m" --width 16 --batch 256 --lr 1e-3 \
    --schedule cosine --warmup 50 --steps "$steps" --log-every 25 --checkpoint-every 100000 >"$OUT/$m.train.json"
  "$B" "${T[@]}" -q eval-image --checkpoint "$OUT/$m/last.ckpt" --json "$OUT/$m.json" >/dev/null
  echo "$m ($steps steps): $(tr -d ' \n' <"$OUT/$m.json")"
done
