#!/usr/bin/env bash
# On a lent GPU machine (no Rust there), in one call of at most 8 minutes: the CUDA checks of the
# `ddpm` binary, the time to the first logged training step (cold or warm kernel caches), and the
# benchmark against PyTorch eager on CUDA, f32 (TF32 allowed on both sides) and bf16 (our mixed
# precision against PyTorch's autocast). Build here first and put the binaries in .gpu/:
#   cargo build --release -p ddpm-cli -p xtask && mkdir -p .gpu &&   (or the dev profile: also opt-level 3)
#   strip -o .gpu/ddpm target/release/ddpm && strip -o .gpu/xtask target/release/xtask &&
#   gzip -9 .gpu/ddpm .gpu/xtask            # the device tool carries at most 64 MiB
# then run `bash xtask/scripts/gpu_check.sh` there from the repository root, carrying .gpu.
# Results go to $OUT (or ./gpu-out), with the kernel caches as gpu-cache.tar.gz: copy that file
# into .gpu/ before the next call and it starts warm. BENCH_ARGS adds `cargo xtask bench` options
# (say `--cases train:seed:512 --reps 1`) to fit the time.
set -uo pipefail
out=${OUT:-gpu-out}
mkdir -p "$out"
for f in .gpu/ddpm.gz .gpu/xtask.gz; do [ -e "$f" ] && gunzip -f "$f"; done
chmod +x .gpu/ddpm .gpu/xtask
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

# The kernel caches (autotune results and compiled kernels) in one folder, carried between calls.
export DDPM_CACHE_DIR=$PWD/.gpu/cache
mkdir -p "$DDPM_CACHE_DIR"
if [ -e .gpu/gpu-cache.tar.gz ]; then
    tar xzf .gpu/gpu-cache.tar.gz -C "$DDPM_CACHE_DIR" && echo "warm start: caches restored"
else
    echo "cold start: no caches carried"
fi
runs=$(mktemp -d)
stamp() { while IFS= read -r line; do printf '%8.2f %s\n' "$(echo "$(date +%s.%N) - $1" | bc)" "$line"; done; }

echo "== the cpu-demo recipe on cuda, 200 steps (seconds since start on each line), then sampling"
start=$(date +%s.%N)
.gpu/ddpm train --backend cuda --steps 200 --checkpoint-dir "$runs" 2>&1 | stamp "$start" |
    tee "$out/train.log" | grep -v "Tuning\|autotune cache" | head -12
grep -m1 " step 10/" "$out/train.log" | sed 's/^/first logged step: /'
cp "$runs"/cpu-demo/samples.png "$runs"/cpu-demo/loss.png "$out"/ 2>/dev/null
timeout 120 .gpu/ddpm sample --backend cuda --checkpoint "$runs/cpu-demo" --sampler ddim \
    --steps 50 -n 64 --out "$out/ddim.png"

echo "== benchmark against PyTorch eager"
timeout 330 .gpu/xtask bench --cuda --ddpm .gpu/ddpm --python python3 --reps 2 ${BENCH_ARGS:-} \
    --out "$out/bench-gpu.json"

tar czf "$out/gpu-cache.tar.gz" -C "$DDPM_CACHE_DIR" . && du -h "$out/gpu-cache.tar.gz"
