# Sourced by the plan scripts in scripts/device/: the clock, the output folder, and the build of
# the LibTorch-only corrtrack (frame folders and PNG masks through the carried libpng/libjpeg,
# CORRTRACK_WITH_IMAGE_IO) against the machine's LibTorch.
# On the GPU machine that is Python PyTorch's CUDA LibTorch; HERE (a CPU dry run, DRY=1) it is the
# system's, and the scripts shrink their sizes so a dry run takes minutes.
# Sets: OUT, T0, DEADLINE, C (the corrtrack binary), DEV (cuda, or cpu in a dry run),
# left (seconds to the deadline, a function).
set -uo pipefail
OUT=${OUT:-/tmp/corrtrack-gpu-out}
mkdir -p "$OUT"
T0=$(date +%s)
DEADLINE=$((T0 + ${BUDGET_S:-560}))
DRY=${DRY:-0}
left() { echo $((DEADLINE - $(date +%s))); }
DEPS=$PWD/.devdeps/usr
[ -d "$DEPS" ] || { echo "no .devdeps: run scripts/device/prepare.sh deps here and carry .devdeps"; exit 1; }
export LD_LIBRARY_PATH=$DEPS/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
PREFIX=$DEPS
CUDA_ARGS=()
if [ "$DRY" = 1 ]; then
  DEV=cpu
else
  DEV=cuda
  TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
  TORCH_LIB=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
  export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$TORCH_LIB
  PREFIX="$TORCH_PREFIX;$DEPS"
  CUDA_ARGS=(-DCMAKE_CUDA_COMPILER="$(command -v nvcc)")
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
fi
B=${BUILD_DIR:-/tmp/b}

# build [targets…]: configures and builds within BUILD_TIMEOUT seconds (default 330); exits on failure.
build() {
  cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCORRTRACK_WITH_VIDEO=OFF -DCORRTRACK_WITH_IMAGE_IO=ON \
    -DCORRTRACK_WITH_UI=OFF -DCORRTRACK_BUILD_TESTS=OFF -DCMAKE_PREFIX_PATH="$PREFIX" \
    -DCORRTRACK_INCLUDE_FIRST="$DEPS/include" "${CUDA_ARGS[@]}" >/tmp/cmake.log 2>&1 || { tail -40 /tmp/cmake.log; exit 1; }
  timeout "${BUILD_TIMEOUT:-330}" cmake --build "$B" -j"$(nproc)" --target "${@:-corrtrack}" -- -k 0 >"$OUT/build.log" 2>&1 ||
    { grep -A 4 -E "error" "$OUT/build.log" | head -150; exit 1; }
  echo "build done after $(( $(date +%s) - T0 )) s"
  C=$B/app/corrtrack
}

# json_line FILE: the file's JSON on one line (for the output tail).
json_line() { tr -d '\n ' <"$1"; echo; }

# json_with FILE KEY=TEXT… KEY:=JSON…: the file's JSON object on one line with these fields added
# (KEY=TEXT a string, KEY:=JSON a value such as a number).
json_with() {
  python3 - "$@" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    if k.endswith(":"):
        j[k[:-1]] = json.loads(v)
    else:
        j[k] = v
print(json.dumps(j))
EOF
}

# need_data FOLDER PREPARE_ARGS: exits with what to run here when a carried folder is missing.
need_data() {
  [ -d "$1" ] || { echo "no $1: run scripts/device/prepare.sh $2 here and carry .devdata"; exit 1; }
}

# train_cache CODEC FILE: a clip cache of the carried DAVIS-2016 train frames; prints its summary,
# returns non-zero (with the error) when it cannot be built.
train_cache() {
  $C --threads "$(nproc)" cache build --input .devdata/JPEGImages --out "$2" --codec "$1" --workers 8 >/tmp/cache.json 2>/tmp/cache.err ||
    { echo "cache build $1 failed: $(tail -1 /tmp/cache.err)"; return 1; }
  echo "cache $1: $(json_line /tmp/cache.json)"
}
