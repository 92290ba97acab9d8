#!/usr/bin/env bash
# Builds the payload benches/cuda-check.sh expects, for a GPU machine that cannot reach
# PyPI: the onnxruntime-gpu wheel's libraries, the MiniLM export, the golden fixture and
# the two release binaries, as one xz tar split into parts of at most PART bytes (51M:
# under a 64 MiB transfer limit). SM=90 keeps only that architecture's kernels in the
# CUDA provider (the others are zeroed, so they compress to nothing: 185 -> 52 MB for
# H100/H200); SM= keeps all.
#   usage: benches/cuda-payload.sh OUT_DIR        then, on the GPU machine:
#   cat OUT_DIR/part* | xz -d | tar -x -C /tmp/p && benches/cuda-check.sh /tmp/p
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: benches/cuda-payload.sh OUT_DIR}
SM=${SM-90}
PART=${PART:-51M}
MODELS=${MODELS:-minilm}   # MODELS="minilm smollm2" adds the causal scorer's golden test
XZ=${XZ:--6}
CACHE=${CACHE:-$HOME/.cache/gleaner}
ORT=${ORT:-onnxruntime-gpu==1.31.1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/pay/fixtures" "$OUT"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 -d "$work/whl" "$ORT"
unzip -q -o "$work"/whl/*.whl 'onnxruntime/capi/libonnxruntime*' -d "$work"
cp "$work"/onnxruntime/capi/libonnxruntime.so.* "$work"/onnxruntime/capi/libonnxruntime_providers_shared.so "$work/pay/"
python3 - "$work/onnxruntime/capi/libonnxruntime_providers_cuda.so" \
  "$work/pay/libonnxruntime_providers_cuda.so" "$SM" <<'PY'
# Zero every cubin/PTX entry of .nv_fatbin whose architecture is not SM (fatbin layout:
# header magic 0xBA55ED50, then entries of kind/version/header size/payload size; the
# architecture is the u32 at entry offset 28). Headers stay, so the loader still parses it.
import struct, sys
src, dst, keep = sys.argv[1], sys.argv[2], sys.argv[3]
data = bytearray(open(src, "rb").read())
if keep:
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    secs = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab = secs[shstrndx][4]
    name = lambda n: bytes(data[strtab + n:data.index(b"\0", strtab + n)]).decode()
    fat = next(s for s in secs if name(s[0]) == ".nv_fatbin")
    off, end = fat[4], fat[4] + fat[5]
    while off < end:
        magic, _, hsz, fsz = struct.unpack_from("<IHHQ", data, off)
        if magic != 0xBA55ED50:
            off += 8
            continue
        p, pend = off + hsz, off + hsz + fsz
        while p < pend:
            _, _, ehsz, psz = struct.unpack_from("<HHIQ", data, p)
            arch, = struct.unpack_from("<I", data, p + 28)
            if arch != int(keep):
                data[p + ehsz:p + ehsz + psz] = bytes(psz)
            p += ehsz + psz
        off = pend
open(dst, "wb").write(data)
PY
for m in $MODELS; do
  mkdir -p "$work/pay/$m" && cp -L "$CACHE/models/$m"/* "$work/pay/$m/"
done
cp ../shared/fixtures/minilm_reference.json ../shared/fixtures/smollm2_ifd_reference.json "$work/pay/fixtures/"
# cargo names each executable as "Executable <source> (<path>)".
exe() { "$@" 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1; }
cp "$(exe cargo test --release --locked --test models --no-run)" "$work/pay/models-test"
cp "$(exe cargo bench --locked --bench embed --no-run)" "$work/pay/embed-bench"
strip "$work/pay/models-test" "$work/pay/embed-bench"
rm -f "$OUT"/part*
tar -C "$work/pay" -cf - . | xz "$XZ" -T0 | split -b "$PART" -d - "$OUT/part"
ls -l "$OUT"
