#!/usr/bin/env python3
"""Machine code of the Vulkan pipelines an NVIDIA driver compiled, from its shader disk cache.

    vk_sass.py CACHE_DIR STATS_LOG OUT_PREFIX [ZSTD] [NVDISASM]

CACHE_DIR is the folder given to the driver as __GL_SHADER_DISK_CACHE_PATH for one process;
STATS_LOG that process's stderr with LONGATTN_VULKAN_PIPELINE_STATS=1 (one JSON line per pipeline,
among them "Binary Size"). The cache files hold zstd frames; a pipeline's frame decompresses to an
NVDANVVM container whose instructions start kCodeOffset bytes in and are "Binary Size" bytes long
(found on the 580 driver). Each container that holds code of a listed size is written out as
OUT_PREFIX.N.bin and disassembled with `nvdisasm -b SM90` into OUT_PREFIX.N.sass.
"""
import json
import os
import re
import subprocess
import sys

kZstdMagic = b"\x28\xb5\x2f\xfd"
kContainer = b"NVDANVVM"
kCodeOffset = 2680


def frames(data):
    """Offsets of the zstd frames in a cache file."""
    at, out = 0, []
    while True:
        i = data.find(kZstdMagic, at)
        if i < 0:
            return out
        out.append(i)
        at = i + 4


def decompress(segment, zstd):
    # trailing bytes after the frame make zstd complain; what it wrote before is the frame
    r = subprocess.run([zstd, "-d", "-c", "-q"], input=segment, capture_output=True)
    return r.stdout


def binary_sizes(stats_log):
    sizes = []
    with open(stats_log, errors="replace") as f:
        for line in f:
            if line.startswith('{"pipeline_stats"'):
                try:
                    s = json.loads(line)
                except ValueError:
                    continue
                if "Binary Size" in s:
                    sizes.append((s["pipeline_stats"], s["constants"], int(s["Binary Size"])))
    return sizes


def main():
    cache_dir, stats_log, prefix = sys.argv[1:4]
    zstd = sys.argv[4] if len(sys.argv) > 4 else "zstd"
    nvdisasm = sys.argv[5] if len(sys.argv) > 5 else "nvdisasm"
    sizes = binary_sizes(stats_log)
    n = 0
    for root, _, files in os.walk(cache_dir):
        for name in sorted(files):
            data = open(os.path.join(root, name), "rb").read()
            offs = frames(data) + [len(data)]
            for a, b in zip(offs, offs[1:]):
                blob = decompress(data[a:b], zstd)
                if kContainer not in blob:
                    continue
                base = blob.find(kContainer)
                # the largest listed code that fits the container (a small one always fits)
                for shader, constants, size in sorted(sizes, key=lambda x: -x[2]):
                    code = blob[base + kCodeOffset:base + kCodeOffset + size]
                    if len(code) != size:
                        continue
                    out = f"{prefix}.{n}"
                    # the code is followed by data nvdisasm rejects: cut at the first address it names
                    for _ in range(8):
                        open(out + ".bin", "wb").write(code)
                        r = subprocess.run([nvdisasm, "-b", "SM90", out + ".bin"], capture_output=True, text=True)
                        m = re.search(r"at address 0x([0-9a-f]+)", r.stderr)
                        if not m:
                            break
                        code = code[:int(m.group(1), 16)]
                    with open(out + ".sass", "w") as f:
                        f.write(f"// {shader} {constants} binary size {size} ({len(code)} disassembled), cache file {name}\n")
                        f.write(r.stdout)
                    print(f"{out}.sass: {shader} size {size} from {name}")
                    n += 1
                    break
    if n == 0:
        print("no pipeline code found", file=sys.stderr)


if __name__ == "__main__":
    main()
