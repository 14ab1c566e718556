#!/usr/bin/env bash
# `corrtrack train` across processes (c10d Gloo over loopback): --nproc 2 end to end; a rank
# killed with SIGKILL makes the other fail within --dist-timeout with one line naming it, the
# checkpoint stays loadable and a resumed 2-rank run ends at the weights of an uninterrupted one;
# bad settings give one line.
set -u
BIN="$1"
SRC="$2"
TMP="$(mktemp -d)"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$TMP"' EXIT
fail() { echo "FAIL $*"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# The exported weights' checksums (one per submodule), as one line.
digest() {
  "$BIN" -q export --checkpoint "$1" --out "$1.model" >/dev/null &&
    "$BIN" -q inspect checkpoint "$1.model" | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["weights_digest"], sort_keys=True))'
}

"$BIN" -q cache build --input "$SRC/assets/sample/city.mp4" --size 64 --out "$TMP/c.ctc" >/dev/null || fail "cache build"
BASE=(train --method mast --data "$TMP/c.ctc" --crop 32 --lr 1e-3 --checkpoint-every 4 --log-every 2)
TRAIN=("${BASE[@]}" --batch 2 --dist-timeout 20)

# ---- --nproc 2: one summary, one metrics file, the checkpoint says 2 ranks ----
"$BIN" -q "${TRAIN[@]}" --steps 40 --nproc 2 --out "$TMP/full" >"$TMP/full.json" 2>"$TMP/full.err" || fail "--nproc 2 failed: $(cat "$TMP/full.err")"
[ "$(grep -c '"world_size": 2' "$TMP/full.json")" = 1 ] || fail "the summary is not one 2-rank JSON: $(cat "$TMP/full.json")"
grep -q '"last_step": 40' "$TMP/full.json" || fail "did not reach step 40"
STEPS=$(grep -o '"step":[0-9]*' "$TMP/full/metrics.jsonl" | tr -dc '0-9\n' | tr '\n' ' ')
[ "$STEPS" = "$(seq -s ' ' 2 2 40) " ] || fail "metrics steps are '$STEPS' (written by more than one rank?)"
"$BIN" -q inspect checkpoint "$TMP/full/last.ckpt" | grep -q '"world_size": 2' || fail "the checkpoint does not record 2 ranks"
echo "ok   --nproc 2 trains 40 steps; rank 0 alone writes the summary, metrics and checkpoint"

# ---- SIGKILL one rank of a run started as torchrun would (environment per rank) ----
PORT=$(free_port)
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$PORT \
    "$BIN" -q "${TRAIN[@]}" --steps 40 --out "$TMP/killed" >/dev/null 2>"$TMP/rank$r.err" &
  PIDS+=($!)
done
for _ in $(seq 1 600); do
  if [ -f "$TMP/killed/metrics.jsonl" ] && grep -q '"step":1[0-9]' "$TMP/killed/metrics.jsonl"; then break; fi
  kill -0 "${PIDS[0]}" 2>/dev/null || break
  sleep 0.1
done
kill -9 "${PIDS[1]}" 2>/dev/null || fail "the run ended before rank 1 could be killed"
T0=$(date +%s)
wait "${PIDS[0]}"
RC=$?
T1=$(date +%s)
[ "$RC" -ne 0 ] || fail "rank 0 exited 0 after rank 1 was killed"
[ $((T1 - T0)) -le 30 ] || fail "rank 0 took $((T1 - T0)) s to stop (timeout 20 s)"
[ "$(wc -l < "$TMP/rank0.err")" -eq 1 ] || fail "rank 0's error is not one line: $(cat "$TMP/rank0.err")"
grep -q "rank 0" "$TMP/rank0.err" || fail "the error does not name the rank: $(cat "$TMP/rank0.err")"
STEP=$("$BIN" -q inspect checkpoint "$TMP/killed/last.ckpt" | grep -m1 '^  "step"' | tr -dc 0-9)
[ -n "$STEP" ] && [ $((STEP % 4)) -eq 0 ] && [ "$STEP" -ge 4 ] && [ "$STEP" -lt 40 ] || fail "checkpoint step '$STEP' after the kill"
echo "ok   rank 1 killed: rank 0 stopped in $((T1 - T0)) s with: $(cat "$TMP/rank0.err")"

"$BIN" -q "${TRAIN[@]}" --steps 40 --nproc 2 --resume --out "$TMP/killed" >"$TMP/resumed.json" 2>"$TMP/resumed.err" || fail "resume failed: $(cat "$TMP/resumed.err")"
grep -q "\"first_step\": $STEP" "$TMP/resumed.json" || fail "resumed at the wrong step: $(cat "$TMP/resumed.json")"
A=$(digest "$TMP/full/last.ckpt")
B=$(digest "$TMP/killed/last.ckpt")
[ -n "$A" ] && [ "$A" = "$B" ] || fail "the resumed run's weights differ from the uninterrupted run's: $A vs $B"
echo "ok   resumed from step $STEP with 2 ranks: weights identical to the uninterrupted run ($A)"

# ---- bad settings: one line, non-zero ----
one_line_error() {   # expected-text command...
  local want="$1"; shift
  "$@" >/dev/null 2>"$TMP/err" && fail "accepted: $*"
  [ "$(wc -l < "$TMP/err")" -eq 1 ] || fail "not one line for '$*': $(cat "$TMP/err")"
  grep -q -- "$want" "$TMP/err" || fail "no '$want' in: $(cat "$TMP/err")"
}
one_line_error "--nproc must be at least 1" "$BIN" -q "${TRAIN[@]}" --steps 2 --nproc 0 --out "$TMP/bad0"
one_line_error "--batch 3 must be a multiple of the 2 ranks" "$BIN" -q "${BASE[@]}" --steps 2 --batch 3 --nproc 2 --out "$TMP/bad1"
BUSY=$(free_port)
python3 -c "import socket,time; s=socket.socket(); s.bind(('', $BUSY)); s.listen(); time.sleep(60)" &
PIDS+=($!)
sleep 0.5
one_line_error "in use" "$BIN" -q "${TRAIN[@]}" --steps 2 --rank 0 --world-size 2 --master-port "$BUSY" --out "$TMP/bad2"
T0=$(date +%s)
one_line_error "cannot reach the master" "$BIN" -q "${BASE[@]}" --batch 2 --steps 2 --rank 1 --world-size 2 --master-port "$(free_port)" --dist-timeout 2 --out "$TMP/bad3"
T1=$(date +%s)
[ $((T1 - T0)) -le 15 ] || fail "an unreachable master took $((T1 - T0)) s to report (timeout 2 s)"
one_line_error "--rank must be in" "$BIN" -q "${TRAIN[@]}" --steps 2 --rank 2 --world-size 2 --out "$TMP/bad4"
[ ! -e "$TMP/bad0/last.ckpt" ] && [ ! -e "$TMP/bad1/last.ckpt" ] || fail "a refused run wrote a checkpoint"
echo "ok   --nproc 0, an indivisible batch, a port in use, an unreachable master, a bad rank: one line each"

# ---- the --nproc launcher: a worker killed -> the launcher stops the rest and names it ----
"$BIN" -q "${TRAIN[@]}" --steps 400 --nproc 2 --out "$TMP/launched" >/dev/null 2>"$TMP/launcher.err" &
LAUNCHER=$!
PIDS+=($LAUNCHER)
for _ in $(seq 1 600); do
  [ -f "$TMP/launched/metrics.jsonl" ] && break
  kill -0 $LAUNCHER 2>/dev/null || break
  sleep 0.1
done
CHILD=$(pgrep -P $LAUNCHER | tail -1)
[ -n "$CHILD" ] || fail "no worker processes under the launcher"
kill -9 "$CHILD"
wait $LAUNCHER && fail "the launcher exited 0 after a worker was killed"
grep -q "of 2 was killed by signal 9" "$TMP/launcher.err" || fail "the launcher did not name the killed rank: $(cat "$TMP/launcher.err")"
sleep 0.5
[ -z "$(pgrep -P $LAUNCHER)" ] && ! pgrep -f "$TMP/launched" >/dev/null || fail "workers left running after the launcher stopped"
echo "ok   a killed worker under --nproc: $(tail -1 "$TMP/launcher.err")"

# ---- a hung rank (SIGSTOP): the other fails after --dist-timeout instead of waiting forever ----
PORT=$(free_port)
HUNG=()
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$PORT \
    "$BIN" -q "${BASE[@]}" --batch 2 --dist-timeout 3 --steps 400 --out "$TMP/hung" >/dev/null 2>"$TMP/hung$r.err" &
  HUNG+=($!)
  PIDS+=($!)
done
for _ in $(seq 1 600); do
  [ -f "$TMP/hung/metrics.jsonl" ] && break
  kill -0 "${HUNG[0]}" 2>/dev/null || break
  sleep 0.1
done
kill -STOP "${HUNG[1]}"
T0=$(date +%s)
wait "${HUNG[0]}" && fail "rank 0 exited 0 while rank 1 was stopped"
T1=$(date +%s)
kill -9 "${HUNG[1]}" 2>/dev/null
[ $((T1 - T0)) -le 20 ] || fail "rank 0 waited $((T1 - T0)) s for a hung rank (timeout 3 s)"
grep -q "rank 0" "$TMP/hung0.err" || fail "no error naming the rank: $(cat "$TMP/hung0.err")"
echo "ok   rank 1 hung: rank 0 stopped after $((T1 - T0)) s (--dist-timeout 3)"

# ---- a 2-rank run resumed by one process: the weights and optimiser state carry over ----
"$BIN" -q "${TRAIN[@]}" --steps 44 --resume --out "$TMP/full" >"$TMP/one.json" 2>"$TMP/one.err" || fail "1-rank resume of a 2-rank run: $(cat "$TMP/one.err")"
grep -q '"first_step": 40' "$TMP/one.json" && grep -q '"last_step": 44' "$TMP/one.json" && grep -q '"world_size": 1' "$TMP/one.json" \
  || fail "1-rank resume did not continue 40 -> 44: $(cat "$TMP/one.json")"
echo "ok   a 2-rank run resumed with 1 process continues from step 40"
