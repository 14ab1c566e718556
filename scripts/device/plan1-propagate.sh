#!/usr/bin/env bash
# GPU plan 1 (issue 20): propagation on CUDA. The default model (its recommended --scale 0.5, in
# fp32 and bf16, and at full resolution) and a CRW-layout ResNet-18 (`--features random`: the
# same network as CRW's, so the same speed) on the carried DAVIS-2016 val-dev sequences at
# 854x480: per sequence fps, ms per stage and peak device memory (`bench propagate`), and J&F
# (`propagate --davis` + `eval`, scored there by our scorer; the fp32 masks also come back to be
# scored here against the CPU's per-sequence table).
# Here first:  scripts/device/prepare.sh deps; scripts/device/prepare.sh davis SEQ,SEQ,…
# There:       run with carry [".devdeps", ".devdata"]: bash scripts/device/plan1-propagate.sh
# Dry run here: DRY=1 OUT=/tmp/p1 BUILD_DIR=build-dev scripts/device/plan1-propagate.sh
# Writes to $OUT: gpu.txt, bench.jsonl (one line per model x precision x sequence), eval.jsonl
# (one line per configuration: J&F and per-sequence values), masks-default-fp32.tar.gz, plan1.log.
source "$(dirname "$0")/common.sh"
exec > >(tee "$OUT/plan1.log") 2>&1
D=.devdata/davis
need_data "$D/JPEGImages" "davis SEQ,…"
build corrtrack
export CORRTRACK_MODEL=$PWD/assets/models/default.ckpt
SEQS=$(ls "$D/JPEGImages")
THREADS=$(nproc)
[ "$DRY" = 1 ] && MAX=(--max-frames 8) || MAX=()

# bench MODEL_NAME PRECISION [engine options…]: one JSON line per sequence into bench.jsonl.
bench() {
  local name=$1 prec=$2
  shift 2
  for s in $SEQS; do
    [ "$(left)" -gt 60 ] || { echo "deadline: bench $name $prec stops before $s"; return; }
    if $C --threads "$THREADS" bench propagate --frames "$D/JPEGImages/$s" --mask "$D/Annotations/$s/00000.png" \
         --device "$DEV" --precision "$prec" "${MAX[@]}" "$@" --json /tmp/bench.json >/dev/null 2>/tmp/bench.err; then
      json_with /tmp/bench.json model="$name" precision_asked="$prec" sequence="$s" >>"$OUT/bench.jsonl"
      tail -1 "$OUT/bench.jsonl" | python3 -c 'import json,sys; j=json.loads(sys.stdin.read()); print(j["model"], j["precision_asked"], j["sequence"], "fps %.1f" % j["fps"], "peak MB", j.get("device_peak_mb"))'
    else
      echo "bench $name $prec $s failed: $(tail -1 /tmp/bench.err)"
    fi
  done
}

# score NAME [engine options…]: propagate every carried sequence, score, one line into eval.jsonl.
score() {
  local name=$1
  shift
  [ "$(left)" -gt 90 ] || { echo "deadline: no J&F for $name"; return; }
  local t=$(date +%s)
  if $C --threads "$THREADS" propagate --davis "$D" --device "$DEV" "$@" --out "/tmp/masks-$name" >/tmp/prop.log 2>&1 &&
     $C eval --davis "$D" --results "/tmp/masks-$name" --json /tmp/eval.json >/tmp/eval.txt 2>&1; then
    python3 - "$name" "$(( $(date +%s) - t ))" "$*" <<'EOF' >>"$OUT/eval.jsonl"
import json, sys
j = json.load(open("/tmp/eval.json"))
keep = {k: v for k, v in j.items() if k != "per_frame"}   # per-frame values stay there
keep.update(config=sys.argv[1], seconds=int(sys.argv[2]), options=sys.argv[3])
print(json.dumps(keep))
EOF
    tail -1 "$OUT/eval.jsonl" | python3 -c 'import json,sys; j=json.loads(sys.stdin.read()); print(j["config"], "J&F %.2f" % (100 * j["global"]["J&F-Mean"]), "in", j["seconds"], "s")'
  else
    echo "score $name failed:"; tail -3 /tmp/prop.log /tmp/eval.txt
  fi
}

bench default fp32
bench default bf16
bench crw-resnet18 fp32 --features random --scale 1
score default-fp32 --precision fp32
tar -czf "$OUT/masks-default-fp32.tar.gz" -C /tmp masks-default-fp32 2>/dev/null
score default-bf16 --precision bf16
score default-fp32-full --precision fp32 --scale 1
bench default-full bf16 --scale 1
echo "plan 1 done after $(( $(date +%s) - T0 )) s"
