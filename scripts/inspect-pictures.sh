#!/usr/bin/env bash
# Makes the README's inspection pictures (docs/images/inspect-*.png) with the corrtrack command:
# the bundled model on the bundled sample, its training curves, and a 100-second SimCLR run on
# Fashion-MNIST for the embedding pictures. Usage: scripts/inspect-pictures.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
B="${1:-build}/app/corrtrack"
OUT=docs/images
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"
VIDEO=assets/sample/city.mp4

# Features of the default model: a lit window and a point on the wavy facade, frame 0 against 39.
"$B" -q inspect features --video "$VIDEO" --size 480x270 --frame 0 --other 39 --point 248,90 --point 75,225 --out "$TMP/features" >/dev/null
cp "$TMP/features/similarity_1.png" "$OUT/inspect-similarity.png"
cp "$TMP/features/pca.png" "$OUT/inspect-pca.png"
cp "$TMP/features/correspondences.png" "$OUT/inspect-correspondences.png"

# Points followed through the 40 frames.
"$B" -q inspect tracks --video "$VIDEO" --points 330,120 500,200 100,300 250,60 --out "$TMP/tracks"
cp "$TMP/tracks/tracks.png" "$OUT/inspect-tracks.png"

# The bundled model's training curves.
"$B" -q plot assets/models/default-metrics.jsonl --out "$OUT/inspect-curves.png"

# An image method's embedding after 100 s of SimCLR on the CPU, and the raw pixels for comparison.
"$B" -q train --method simclr --data fashion-mnist --width 16 --steps 400 --time-budget 100 --out "$TMP/simclr" >/dev/null
"$B" -q inspect embeddings --checkpoint "$TMP/simclr/last.ckpt" --out "$TMP/emb" > "$TMP/emb.json"
cp "$TMP/emb/retrieval.png" "$OUT/inspect-retrieval.png"
cp "$TMP/emb/projection.png" "$OUT/inspect-projection.png"
grep -E '"knn_top1_k20"|"neighbours_same_class"' "$TMP/emb.json"
echo "pictures written to $OUT"
