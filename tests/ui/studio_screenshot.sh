#!/usr/bin/env bash
# The Studio's --screenshot mode renders a PNG of the window size after loading a video and a
# mask; a missing video or a mask of the wrong size is an error with one line naming the file.
set -uo pipefail
BIN="$1"
SRC="$2"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# A private runtime folder, as a desktop session provides (Qt warns on stderr without one).
export XDG_RUNTIME_DIR="$TMP/xdg"
mkdir -m 700 "$XDG_RUNTIME_DIR"
fails=0
"$BIN" "$SRC/assets/sample/city.mp4" --mask "$SRC/assets/sample/city_00000.png" --features pixels --size 900x600 \
  --screenshot "$TMP/shot.png" >/dev/null 2>"$TMP/err" || { echo "FAIL screenshot: $(cat "$TMP/err")"; fails=$((fails + 1)); }
if [ -s "$TMP/shot.png" ] && python3 - "$TMP/shot.png" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read(24)
w, h = struct.unpack(">II", d[16:24])
sys.exit(0 if d[:8] == b"\x89PNG\r\n\x1a\n" and (w, h) == (900, 600) else 1)
PY
then echo "ok   screenshot: 900x600 PNG"; else echo "FAIL screenshot: no 900x600 PNG"; fails=$((fails + 1)); fi
# An offscreen render writes no workspace (a video opened in the Studio otherwise gets VIDEO.corrtrack/).
cp "$SRC/assets/sample/city.mp4" "$TMP/copy.mp4"
"$BIN" "$TMP/copy.mp4" --mask "$SRC/assets/sample/city_00000.png" --features pixels --screenshot "$TMP/copy.png" >/dev/null 2>"$TMP/err"
if [ -s "$TMP/copy.png" ] && [ ! -e "$TMP/copy.mp4.corrtrack" ]; then echo "ok   screenshot leaves no workspace"
else echo "FAIL screenshot: no picture, or it wrote $TMP/copy.mp4.corrtrack: $(cat "$TMP/err")"; fails=$((fails + 1)); fi
# --bench-steps: JSON with 5 steps each way from frame 10 of the sample, and no workspace written.
"$BIN" "$TMP/copy.mp4" --frame 10 --bench-steps 5 >"$TMP/bench.json" 2>"$TMP/err"
if python3 - "$TMP/bench.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["frames"] == 40 and j["step_forward"]["steps"] == 5 and j["step_backward"]["steps"] == 5, j
assert 0 < j["step_backward"]["mean_ms"] < 60000 and j["peak_rss_mb"] > 0 and j["masks"] == 0, j
PY
then echo "ok   --bench-steps: JSON"; else echo "FAIL --bench-steps: $(cat "$TMP/bench.json" "$TMP/err")"; fails=$((fails + 1)); fi
if "$BIN" "$TMP/missing.mp4" --screenshot "$TMP/x.png" 2>"$TMP/err" >/dev/null; then
  echo "FAIL missing video accepted"; fails=$((fails + 1))
elif [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "missing.mp4" "$TMP/err"; then echo "ok   missing video: $(cat "$TMP/err")"
else echo "FAIL missing video message: $(cat "$TMP/err")"; fails=$((fails + 1)); fi
[ ! -e "$TMP/x.png" ] || { echo "FAIL a screenshot was written for a missing video"; fails=$((fails + 1)); }
# A misspelt --features is refused (it silently showed the bundled model).
if "$BIN" "$SRC/assets/sample/city.mp4" --features pixel --screenshot "$TMP/f.png" >/dev/null 2>"$TMP/err"; then
  echo "FAIL --features pixel accepted"; fails=$((fails + 1))
elif [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "'pixel'" "$TMP/err"; then echo "ok   --features pixel: $(cat "$TMP/err")"
else echo "FAIL --features pixel message: $(cat "$TMP/err")"; fails=$((fails + 1)); fi
# --mask with --frame 5 lands on frame 5 (it went to frame 0): the workspace holds frame 5's mask only.
"$BIN" "$SRC/assets/sample/city.mp4" --mask "$SRC/assets/sample/city_00000.png" --frame 5 --features pixels --workspace "$TMP/ws" \
  --screenshot "$TMP/f5.png" >/dev/null 2>"$TMP/err"
if [ -f "$TMP/ws/masks/00005.png" ] && [ ! -f "$TMP/ws/masks/00000.png" ]; then echo "ok   --mask --frame 5: imported on frame 5"
else echo "FAIL --mask --frame 5: workspace masks $(ls "$TMP/ws/masks" 2>&1 | tr '\n' ' ') $(cat "$TMP/err")"; fails=$((fails + 1)); fi
version=$("$BIN" --version 2>&1)
if echo "$version" | grep -Eq '[0-9]+\.[0-9]+\.[0-9]+'; then echo "ok   --version: $version"
else echo "FAIL --version: '$version'"; fails=$((fails + 1)); fi
exit $fails
