#!/usr/bin/env bash
# `corrtrack train` killed with SIGKILL mid-run and resumed: the checkpoint on disk is whole, the
# resumed run continues from its step, finishes at --steps, and metrics.jsonl holds every logged
# step exactly once. Also: an existing run is never overwritten, --resume refuses another method.
set -u
BIN="$1"
SRC="$2"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL $*"; exit 1; }

"$BIN" -q cache build --input "$SRC/assets/sample/city.mp4" --size 64 --out "$TMP/c.ctc" >/dev/null || fail "cache build"
TRAIN=(train --method mast --data "$TMP/c.ctc" --crop 32 --batch 2 --steps 40 --checkpoint-every 4 --log-every 2 --out "$TMP/run")
"$BIN" -q "${TRAIN[@]}" >/dev/null 2>&1 &
PID=$!
for _ in $(seq 1 600); do
  if [ -f "$TMP/run/metrics.jsonl" ] && grep -q '"step":1[0-9]' "$TMP/run/metrics.jsonl"; then break; fi
  kill -0 $PID 2>/dev/null || break
  sleep 0.1
done
kill -9 $PID 2>/dev/null || fail "the run ended before it could be killed"
wait $PID 2>/dev/null
[ -f "$TMP/run/last.ckpt" ] || fail "no checkpoint after the kill"
STEP=$("$BIN" -q inspect checkpoint "$TMP/run/last.ckpt" | grep -m1 '^  "step"' | tr -dc 0-9)
[ -n "$STEP" ] && [ $((STEP % 4)) -eq 0 ] && [ "$STEP" -ge 4 ] || fail "checkpoint step '$STEP' after the kill"
echo "ok   killed at a checkpoint of step $STEP"

"$BIN" -q "${TRAIN[@]}" >/dev/null 2>"$TMP/err" && fail "a second run overwrote the first"
grep -q "already holds a run" "$TMP/err" || fail "no 'already holds a run' error: $(cat "$TMP/err")"
"$BIN" -q train --method corrflow --data "$TMP/c.ctc" --crop 32 --steps 40 --out "$TMP/run" --resume >/dev/null 2>"$TMP/err" \
  && fail "--resume accepted another method"
grep -q "'mast'" "$TMP/err" || fail "method mismatch not named: $(cat "$TMP/err")"

"$BIN" -q "${TRAIN[@]}" --resume >"$TMP/out.json" || fail "resume failed"
grep -q "\"first_step\": $STEP" "$TMP/out.json" || fail "resumed at the wrong step: $(cat "$TMP/out.json")"
grep -q '"last_step": 40' "$TMP/out.json" || fail "did not finish at step 40"
STEPS=$(grep -o '"step":[0-9]*' "$TMP/run/metrics.jsonl" | tr -dc '0-9\n' | tr '\n' ' ')
[ "$STEPS" = "$(seq -s ' ' 2 2 40) " ] || fail "metrics steps are '$STEPS'"
[ -z "$(find "$TMP/run" -name '*.tmp-*')" ] || fail "temporary files left in the run folder"
echo "ok   resumed from $STEP to 40; metrics hold steps 2..40 once each"

# Every checkpoint redraws the run's curves; plot reads the same metrics (also as SVG).
[ -s "$TMP/run/curves.png" ] || fail "no curves.png after the run"
"$BIN" -q plot "$TMP/run" --out "$TMP/curves.svg" || fail "plot failed"
grep -q '>loss</text>' "$TMP/curves.svg" || fail "the SVG has no loss panel"
echo "ok   curves.png written by train; plot draws the run as SVG"

# A method's recipe fills the settings not given (crw: Adam 1e-4, crops of area 0.8-1); a given
# option wins. Both are in the checkpoint's command record.
"$BIN" -q train --method crw --data "$TMP/c.ctc" --crop 96 --batch 1 --clip-frames 2 --frame-gap 1 --steps 1 --device cpu --out "$TMP/crw" >/dev/null \
  || fail "crw with its recipe failed"
"$BIN" -q inspect checkpoint "$TMP/crw/last.ckpt" > "$TMP/crw.json"
grep -q '"lr": 0.0001' "$TMP/crw.json" || fail "the crw recipe's lr was not used: $(grep '"lr"' "$TMP/crw.json")"
grep -q '"min_scale": 0.8' "$TMP/crw.json" || fail "the crw recipe's min-scale was not used"
grep -q '"crop": 96' "$TMP/crw.json" || fail "the given --crop did not win over the recipe"
"$BIN" -q train --method crw --data "$TMP/c.ctc" --crop 96 --batch 1 --clip-frames 2 --frame-gap 1 --steps 1 --lr 5e-4 --device cpu --out "$TMP/crw2" >/dev/null \
  || fail "crw with --lr failed"
"$BIN" -q inspect checkpoint "$TMP/crw2/last.ckpt" | grep -q '"lr": 0.0005' || fail "a given --lr did not win over the recipe"
echo "ok   the crw recipe fills what is not given; given options win"

# An image method's recipe likewise (byol: LARS with eta 0.02, weight decay 1e-5, target EMA 0.99,
# warm-up 5 % of the steps); a given --lr wins and the rest of the recipe stays.
if [ -d /usr/share/datasets/fashion-mnist ]; then
  "$BIN" -q train --method byol --data fashion-mnist --width 4 --batch 16 --steps 40 --lr 0.1 --checkpoint-every 20 --keep-checkpoints --device cpu --out "$TMP/byol" >/dev/null \
    || fail "byol with its recipe failed"
  [ -s "$TMP/byol/checkpoints/step-20.ckpt" ] && [ -s "$TMP/byol/checkpoints/step-40.ckpt" ] \
    || fail "--keep-checkpoints kept $(ls "$TMP/byol/checkpoints" 2>&1 | tr '\n' ' '), not step-20 and step-40"
  "$BIN" -q inspect checkpoint "$TMP/byol/checkpoints/step-20.ckpt" | grep -q '"step": 20' || fail "checkpoints/step-20.ckpt is not step 20's"
  "$BIN" -q inspect checkpoint "$TMP/byol/last.ckpt" > "$TMP/byol.json"
  for want in '"optimizer": "lars"' '"weight_decay": 1e-05' '"lars_eta": 0.02' '"ema": 0.99' '"warmup": 2' '"schedule": "cosine"'; do
    grep -q "$want" "$TMP/byol.json" || fail "the byol recipe's $want is not in the record: $(tr -d '\n' < "$TMP/byol.json" | head -c 600)"
  done
  grep -q '"lr": 0.1' "$TMP/byol.json" || fail "a given --lr did not win over the byol recipe"
  echo "ok   the byol recipe fills what is not given; given options win; --keep-checkpoints keeps each one"
  # simclr's recipe clips LARS's rate; --lars-clip=false turns the recipe's flag off.
  for clip in recipe off; do
    extra=(); [ "$clip" = off ] && extra=(--lars-clip=false)
    "$BIN" -q train --method simclr --data fashion-mnist --width 4 --batch 16 --steps 2 --device cpu "${extra[@]}" --out "$TMP/simclr-$clip" >/dev/null \
      || fail "simclr ($clip) failed"
    "$BIN" -q inspect checkpoint "$TMP/simclr-$clip/last.ckpt" > "$TMP/simclr-$clip.json"
  done
  grep -q '"lars_clip": true' "$TMP/simclr-recipe.json" || fail "the simclr recipe's lars_clip is not in the record"
  grep -q '"temperature": 0.2' "$TMP/simclr-recipe.json" || fail "the simclr recipe's temperature 0.2 is not in the record"
  grep -q '"lars_clip": false' "$TMP/simclr-off.json" || fail "--lars-clip=false did not win over the simclr recipe"
  # Another optimiser than the recipe's keeps the command's rate and weight decay, not LARS's.
  "$BIN" -q train --method simclr --data fashion-mnist --width 4 --batch 16 --steps 2 --device cpu --optimizer adam --out "$TMP/simclr-adam" >/dev/null \
    || fail "simclr with adam failed"
  "$BIN" -q inspect checkpoint "$TMP/simclr-adam/last.ckpt" > "$TMP/simclr-adam.json"
  grep -q '"lr": 0.001' "$TMP/simclr-adam.json" || fail "simclr --optimizer adam took the recipe's LARS rate: $(grep '"lr"' "$TMP/simclr-adam.json" | head -2 | tr -d '\n')"
  grep -q '"weight_decay": 0.0001' "$TMP/simclr-adam.json" && fail "simclr --optimizer adam took the recipe's weight decay"
  grep -q '"temperature": 0.2' "$TMP/simclr-adam.json" || fail "simclr --optimizer adam lost the recipe's temperature"
  echo "ok   the simclr recipe clips LARS's rate unless --lars-clip=false; --optimizer adam keeps the command's rate"
else
  echo "skip the image recipe check: Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)"
fi
