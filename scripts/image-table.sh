#!/usr/bin/env bash
# Reproduces the README's Fashion-MNIST table: every image method trained on the CPU for the same
# fixed wall-clock budget (batch 256, ConvNet width 16, Adam 1e-3 after 50 warm-up steps), then
# `eval-image`; plus the raw-pixel and random-encoder rows. Run it with nothing else on the
# machine: the budget is time, so a busy CPU gives fewer steps.
# Usage: scripts/image-table.sh [SECONDS_PER_METHOD] [OUT_DIR]
# Environment: THREADS=N passes --threads N; KEEP=1 keeps methods that already have results.
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET="${1:-150}"
OUT="${2:-out/image-table}"
B="${CORRTRACK_BIN:-build/app/corrtrack}"
T=(${THREADS:+--threads "$THREADS"})
mkdir -p "$OUT"
for f in pixels random; do
  [ "${KEEP:-0}" = 1 ] && [ -s "$OUT/$f.json" ] && continue
  "$B" "${T[@]}" -q eval-image --features "$f" --width 16 --json "$OUT/$f.json" >/dev/null
done
for m in simclr moco byol swav npid sela deepcluster iic pcl supcon cpc; do
  if [ "${KEEP:-0}" = 1 ] && [ -s "$OUT/$m.json" ]; then echo "$m: kept"; continue; fi
  rm -rf "${OUT:?}/$m"
  "$B" "${T[@]}" -q train --method "$m" --data fashion-mnist --out "$OUT/$m" --width 16 --batch 256 --lr 1e-3 \
    --warmup 50 --steps 1000000 --time-budget "$BUDGET" --log-every 25 --checkpoint-every 1000000 >"$OUT/$m.train.json"
  "$B" "${T[@]}" -q eval-image --checkpoint "$OUT/$m/last.ckpt" --json "$OUT/$m.json" >/dev/null
  echo "$m ($(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['last_step'])" "$OUT/$m.train.json") steps): $(tr -d ' \n' <"$OUT/$m.json")"
done
