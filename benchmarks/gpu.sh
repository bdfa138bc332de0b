#!/usr/bin/env bash
# Items 1-3 of the performance benchmarks on one CUDA device, at paper size, in at most ~8 min.
#
#   bash benchmarks/gpu.sh [OUT_DIR]        # default OUT_DIR: ./gpu-benchmarks
#
# 1. training (throughput.py): the authors' loop vs RCOTModule's step (direct and under a
#    Trainer) at batch 3 / patch 128, fp32, bf16-mixed and 16-mixed (GradScaler), with FLOPs
#    and the matmul peak of the card;
# 2. memory (memory.py --device cuda): torch.cuda.max_memory_allocated of one iteration, fp32,
#    bf16, fp16, each with and without activation checkpointing;
# 3. inference (inference_scaling.py): the paper map on 1, 4, 16 MP squares and a 12 MP
#    (3000x4000) photo, tiled, fp32 (bf16: the squares) (quality of tiling: tiling_quality.py, on CPU).
#
# Every step writes OUT_DIR/<name>.json and its one-line summary; a step that fails is reported
# and the script goes on, so one failure does not hide the others. Exit status: 2 without CUDA,
# 1 if any step failed, else 0. Needs PYTHONPATH (or an install) that provides rcot_lightning.
set -u
cd "$(dirname "$0")/.."
OUT="${1:-gpu-benchmarks}"
mkdir -p "$OUT"

if ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu.sh: no CUDA device visible to torch (torch.cuda.is_available() is False); run it on a machine with a GPU and a CUDA build of torch" >&2
    exit 2
fi
python -c 'import torch; print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)' | tee "$OUT/device.txt"

failed=0
step() {  # step NAME TIMEOUT_S COMMAND...: run with a time limit, keep JSON and summary
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*" >&2
    if timeout "$limit" "$@" >"$OUT/$name.json" 2>"$OUT/$name.log"; then
        tail -n 1 "$OUT/$name.log"
    else
        echo "gpu.sh: step $name failed or timed out (${limit}s); see $OUT/$name.log" >&2
        failed=1
    fi
}

# 1. Training: ~0.1-1 s per iteration on a current card; 3 repeats x 5 iterations per variant.
step training 150 python benchmarks/throughput.py --device cuda --preset paper --batch 3 \
    --patch 128 --threads 4 --repeats 3 --iters 5 --warmup 2 --flops \
    --variants authors ours ours_bf16 ours_checkpointing ours_best ours_lightning \
    ours_lightning_bf16 ours_lightning_fp16 ours_lightning_best --best bf16 foreach
# 2. Memory: one fresh process per configuration.
step memory 100 python benchmarks/memory.py --device cuda --batch 3 --patch 128 \
    --configs fp32 bf16 fp16 fp32_checkpointing bf16_checkpointing fp16_checkpointing
# 3. Inference: whole images (no identity stand-in), tile 256 / overlap 32, then bf16.
step inference 130 python benchmarks/inference_scaling.py --device cuda --preset paper \
    --megapixels 1 4 16 --sizes 3000x4000 --tiled-only --repeats 1
step inference_bf16 90 python benchmarks/inference_scaling.py --device cuda --preset paper \
    --megapixels 1 4 16 --tiled-only --repeats 1 --bf16

echo "gpu.sh: results in $OUT/" >&2
exit "$failed"
