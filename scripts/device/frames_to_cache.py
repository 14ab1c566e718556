#!/usr/bin/env python3
"""Writes a CorrTrack clip cache (format of video/src/clip_cache.cpp) from folders of JPEG/PNG
frames with Pillow. Used on the GPU machine, whose LibTorch-only corrtrack build has no image
decoders: ROOT/<sequence>/<frame>.jpg -> OUT.ctc, one cache video per sequence folder."""
import json
import os
import struct
import sys

from PIL import Image


def main(root, out):
    tmp = out + ".tmp"
    videos, offset = [], 0
    with open(tmp, "wb") as f:
        f.write(b"CTCACHE1")
        for seq in sorted(os.listdir(root)):
            folder = os.path.join(root, seq)
            names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".jpeg", ".png")))
            if not names:
                continue
            size, count, start = None, 0, offset
            for n in names:
                img = Image.open(os.path.join(folder, n)).convert("RGB")
                if size is None:
                    size = img.size
                if img.size != size:
                    sys.exit(f"{folder}/{n}: size {img.size} differs from the sequence's {size}")
                data = img.tobytes()
                f.write(data)
                offset += len(data)
                count += 1
            videos.append({"name": seq, "frames": count, "width": size[0], "height": size[1], "offset": start})
        index = json.dumps({"format": 1, "videos": videos}).encode()
        f.write(index)
        f.write(struct.pack("<Q", len(index)))
        f.write(b"CTCINDEX")
    os.replace(tmp, out)
    print(f"{out}: {len(videos)} videos, {sum(v['frames'] for v in videos)} frames")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
