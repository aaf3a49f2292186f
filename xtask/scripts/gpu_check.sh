#!/usr/bin/env bash
# The GPU checks, as one prepared call of at most 8 minutes on a lent machine (no Rust there).
#
# Here (a CPU machine with the toolchain), build and pack what travels:
#   bash xtask/scripts/gpu_check.sh prepare      # release ddpm, xtask and the GPU test binary in .gpu/
# There, from the repository root, carrying .gpu:
#   bash xtask/scripts/gpu_check.sh run          # writes its results to $OUT as it goes
#
# `run`, in order, each with its own time limit (the sum stays under 8 minutes):
#   1. the GPU tests (ddpm-cuda's ignored tests: each cuDNN/cuBLAS and fixed kernel against flex
#      and burn-cuda's own, values and gradients, f32 and bf16; a training step of each model);
#   2. cold start, no carried caches: the time `ddpm bench --backend cuda --case train --preset
#      seed --batch 64` takes to print its result, for each --gpu-kernels choice, and how many
#      kernels cubecl still tuned;
#   3. the demo recipe (`ddpm train`, 3,000 steps): time to its first logged step and in all;
#   4. `xtask bench --cuda`: every case side by side with PyTorch eager, f32 and bf16, for the
#      cudnn and fixed kernels (BENCH_ARGS adds options, e.g. `--reps 1 --cases train:seed:64`).
set -uo pipefail
mode=${1:-run}

if [ "$mode" = prepare ]; then
    set -e
    cargo build --release -p ddpm-cli -p xtask
    tests=$(cargo test --release -p ddpm-cuda --test gpu --no-run --message-format=json 2>/dev/null |
        grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
    mkdir -p .gpu   # ignored by git; carry it
    strip -o .gpu/ddpm target/release/ddpm
    strip -o .gpu/xtask target/release/xtask
    strip -o .gpu/gpu-tests "$tests"
    gzip -9f .gpu/ddpm .gpu/xtask .gpu/gpu-tests
    du -ch .gpu/*.gz
    exit 0
fi

out=${OUT:-gpu-out}
mkdir -p "$out"
for f in .gpu/ddpm .gpu/xtask .gpu/gpu-tests; do
    [ -e "$f.gz" ] && gunzip -f "$f.gz"
    chmod +x "$f"
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/summary.txt"
# cuDNN and cuBLAS: the system's if the loader finds them, else those of PyTorch's wheels.
for lib in cudnn cublas; do
    dir=$(python3 -c "import os, nvidia.$lib as m; print(os.path.join(list(m.__path__)[0], 'lib'))" 2>/dev/null) &&
        export LD_LIBRARY_PATH=$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
done
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}" >> "$out/summary.txt"
export DDPM_CACHE_DIR=$PWD/.gpu/cache
rm -rf "$DDPM_CACHE_DIR"
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

echo "== 1. GPU tests" | tee -a "$out/summary.txt"
timeout 100 .gpu/gpu-tests --ignored --test-threads 1 > "$out/tests.log" 2>&1
echo "exit $?: $(grep -E '^test result' "$out/tests.log")" | tee -a "$out/summary.txt"

echo "== 2. cold start: bench train seed 64, each --gpu-kernels" | tee -a "$out/summary.txt"
for kernels in cudnn fixed tuned; do
    rm -rf "$DDPM_CACHE_DIR"
    start=$(now)
    timeout 45 .gpu/ddpm bench --backend cuda --gpu-kernels "$kernels" --case train \
        --preset seed --batch 64 --iters 5 > "$out/cold-$kernels.json" 2> "$out/cold-$kernels.log"
    code=$?
    tuned=$(cat "$out/cold-$kernels.json" "$out/cold-$kernels.log" | grep -c "Tuning")
    printf '%s: exit %s after %.1f s, %s tunings: %s\n' "$kernels" "$code" "$(since "$start")" \
        "$tuned" "$(grep -o '"images_per_second":[0-9.]*' "$out/cold-$kernels.json")" |
        tee -a "$out/summary.txt"
done

echo "== 3. the demo recipe, cold (cudnn)" | tee -a "$out/summary.txt"
rm -rf "$DDPM_CACHE_DIR" runs
start=$(now)
timeout 90 .gpu/ddpm train --backend cuda --checkpoint-dir runs 2>&1 |
    while IFS= read -r line; do printf '%8.2f %s\n' "$(since "$start")" "$line"; done > "$out/train.log"
grep -m1 " step " "$out/train.log" | sed 's/^/first logged step: /' | tee -a "$out/summary.txt"
tail -1 "$out/train.log" | sed 's/^/last line: /' | tee -a "$out/summary.txt"
cp runs/cpu-demo/samples.png "$out/" 2>/dev/null

echo "== 4. against PyTorch eager" | tee -a "$out/summary.txt"
timeout 240 .gpu/xtask bench --cuda --backends cuda-cudnn,cuda-fixed --ddpm .gpu/ddpm \
    --python python3 --reps 2 ${BENCH_ARGS:-} --out "$out/bench-gpu.json" 2>&1 | tee "$out/bench.log" |
    grep -E "ratio|matrix rate" >> "$out/summary.txt"
cat "$out/summary.txt"
