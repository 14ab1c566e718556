#!/usr/bin/env bash
# One GPU session: builds the LibTorch-only targets against the machine's CUDA LibTorch (Python
# PyTorch's), turns the carried DAVIS-2016 train frames into a clip cache, and trains two methods
# within a fixed wall-clock deadline, exporting float16 encoders to $OUT.
# PLAN=stride4 (default): MAST then CorrFlow. PLAN=cycle: CRW then TimeCycle (ResNet-50).
# Carried: .devdeps (Debian spdlog/fmt/CLI11/nlohmann-json unpacked), .devdata/JPEGImages.
set -uo pipefail
OUT=${OUT:-/tmp/corrtrack-gpu-out}
mkdir -p "$OUT"
T0=$(date +%s)
DEADLINE=$((T0 + ${BUDGET_S:-560}))
DEPS=$PWD/.devdeps/usr
TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
TORCH_LIB=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
export LD_LIBRARY_PATH=$DEPS/lib/x86_64-linux-gnu:$TORCH_LIB:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"

cmake -S . -B /tmp/b -G Ninja -DCMAKE_BUILD_TYPE=Release -DCORRTRACK_WITH_VIDEO=OFF -DCORRTRACK_WITH_UI=OFF \
  -DCORRTRACK_BUILD_TESTS=OFF -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$DEPS" -DCORRTRACK_INCLUDE_FIRST="$DEPS/include" -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" \
  >"$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }
timeout 330 cmake --build /tmp/b -j16 -- -k 0 >"$OUT/build.log" 2>&1 || { grep -A 4 -E "error" "$OUT/build.log" | head -150; exit 1; }
echo "build done after $(( $(date +%s) - T0 )) s"
python3 scripts/device/frames_to_cache.py .devdata/JPEGImages /tmp/train.ctc || exit 1
C=/tmp/b/app/corrtrack
# Issue 15: can the loader feed the GPU? MAST-style clips at 224 from the cache, per worker count
# (the H200 trains MAST at ~234 clips/s).
timeout 60 $C --threads 16 bench clips --data /tmp/train.ctc --workers 0,2,4,8,16 --crop 224 --clips 1200 --batch 32 \
  >"$OUT/bench-clips.json" 2>"$OUT/bench-clips.log"
echo "bench clips rc=$? $(tr -d '\n ' <"$OUT/bench-clips.json")"

train() {  # method seconds lr [extra train options]
  local m=$1 secs=$2 lr=$3
  shift 3
  echo "training $m for $secs s"
  $C --threads 8 train --method "$m" --data /tmp/train.ctc --out "/tmp/run-$m" --batch "${BATCH:-32}" \
    --lr "$lr" --steps 1000000 --time-budget "$secs" --checkpoint-every 1000 --log-every 25 --device cuda --workers "${WORKERS:-8}" "$@" \
    >"$OUT/train-$m.json" 2>"$OUT/train-$m.log"
  echo "rc=$? $(cat "$OUT/train-$m.json" | tr -d '\n ')"
  tail -3 "$OUT/train-$m.log"
  cp "/tmp/run-$m/metrics.jsonl" "$OUT/metrics-$m.jsonl"
  $C export --checkpoint "/tmp/run-$m/last.ckpt" --out "$OUT/$m.ckpt" --half
}
LEFT=$((DEADLINE - $(date +%s) - 40))
case "${PLAN:-stride4}" in
  stride4)
    train mast $((LEFT * 62 / 100)) 1e-3 --crop 224
    LEFT=$((DEADLINE - $(date +%s) - 20))
    train corrflow "$LEFT" 5e-4 --crop 224 ;;
  cycle)
    train crw $((LEFT * 50 / 100)) 1e-4 --crop 256 --min-scale 0.8
    LEFT=$((DEADLINE - $(date +%s) - 20))
    train timecycle "$LEFT" 2e-4 --crop 240 --patch 80 --backbone resnet50 --beta1 0.5 --clip-grad 10 ;;
  *) echo "unknown PLAN '$PLAN'"; exit 1 ;;
esac
echo "total $(( $(date +%s) - T0 )) s"
