#!/usr/bin/env bash
# On a lent GPU machine (no Rust there): the CUDA checks of the `ddpm` binary, then the benchmark
# against PyTorch eager on CUDA. Build here first and put the binaries in .gpu/:
#   cargo build --release -p ddpm-cli -p xtask && mkdir -p .gpu &&   (or the dev profile: also opt-level 3)
#   strip -o .gpu/ddpm target/release/ddpm && strip -o .gpu/xtask target/release/xtask &&
#   gzip -9 .gpu/ddpm .gpu/xtask            # the device tool carries at most 64 MiB
# then run `bash xtask/scripts/gpu_check.sh` there from the repository root, carrying .gpu.
# Results go to $OUT (or ./gpu-out). GATHERING_AB=1 adds seed training at batch 64 with
# SimpleUnet's batch gathering off (cuda's default) and on.
set -uo pipefail
out=${OUT:-gpu-out}
mkdir -p "$out"
for f in .gpu/*.gz; do [ -e "$f" ] && gunzip -f "$f"; done
chmod +x .gpu/ddpm .gpu/xtask
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
runs=$(mktemp -d)

echo "== train the cpu-demo recipe for 200 steps on cuda, then sample with DDPM and DDIM"
# The whole log: a first run compiles and autotunes kernels (minutes), and the log says where.
time .gpu/ddpm train --backend cuda --steps 200 --checkpoint-dir "$runs" 2>&1 | tee "$out/train.log" |
    grep -v "Tuning\|autotune cache" | tail -8
cp "$runs"/cpu-demo/samples/*.png "$out"/ 2>/dev/null
time .gpu/ddpm sample --backend cuda --checkpoint "$runs/cpu-demo" --sampler ddim --steps 50 \
    -n 64 --out "$out/ddim.png"
time .gpu/ddpm sample --checkpoint "$runs/cpu-demo" -n 64 --out "$out/ddpm.png"

echo "== benchmark"
.gpu/xtask bench --cuda --ddpm .gpu/ddpm --python python3 ${BENCH_ARGS:-} --out "$out/bench-gpu.json"

if [ "${GATHERING_AB:-0}" = 1 ]; then
    echo "== SimpleUnet's batch gathering on cuda: seed training, batch 64, off then on"
    for gathering in off on; do
        timeout 300 .gpu/ddpm bench --backend cuda --case train --preset seed --batch 64 \
            --batch-gathering "$gathering" | tee -a "$out/gathering.jsonl"
    done
fi
