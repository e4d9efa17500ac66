#!/usr/bin/env bash
# GPU figures for issue 13: the scale benchmark's train and predict parts on CUDA.
#
#   bash benchmarks/gpu.sh OUT
#
# NOT RUN YET: no GPU was lent to the session that wrote this script, so there are no GPU
# results in the repository; whoever runs it commits OUT/*.json and OUT/*.md as they come.
#
# What it does, within ~10 minutes on one GPU:
#   1. installs fakeseg (editable, from this checkout) into ./.venv-gpu unless FAKESEG_PY
#      names a Python that already has it;
#   2. builds 50 full-HD pairs with the demo simulator (benchmarks/bench_scale.py's data, in
#      $OUT/data, reused by a rerun);
#   3. 1 GPU: bench_scale.py --sizes 50 --device cuda (targets rate, train 50 steps with bf16
#      AMP and channels_last, predict on 200 full-HD images, loader ratio);
#   4. several GPUs: the same train through torchrun --nproc_per_node=<GPUs> (DDP, NCCL,
#      SyncBatchNorm), its steps/s and wall time in $OUT/ddp.json.
set -euo pipefail
OUT=${1:?usage: benchmarks/gpu.sh OUT}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."

PY=${FAKESEG_PY:-}
if [[ -z "$PY" ]]; then
  python3 -m venv .venv-gpu
  .venv-gpu/bin/pip install --quiet -e .
  PY=.venv-gpu/bin/python
fi
"$PY" - <<'EOF'
import torch
assert torch.cuda.is_available(), "no CUDA device: this script is for a GPU machine"
print("GPUs:", [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
      "bf16:", torch.cuda.is_bf16_supported())
EOF

timeout 480 "$PY" benchmarks/bench_scale.py --sizes 50 --device cuda --workers 4 \
  --target-seconds 60 --predict-images 200 --root "$OUT/data" --out "$OUT" --name gpu_1

GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if (( GPUS > 1 )); then
  DATA=$(ls -d "$OUT"/data/n50_* | head -1)
  rm -rf "$OUT/ddp_run"
  START=$(date +%s.%N)
  timeout 240 "$PY" -m torch.distributed.run --standalone --nproc_per_node="$GPUS" \
    -m fakeseg train "$DATA" --out "$OUT/ddp_run" --steps 50 --set steps_per_epoch=50 \
    --set val_pairs=4 --device cuda --workers 2 --quiet
  END=$(date +%s.%N)
  "$PY" - "$OUT" "$GPUS" "$START" "$END" <<'EOF'
import json, sys
out, gpus, start, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
history = json.load(open(f"{out}/ddp_run/history.json"))
json.dump({"gpus": gpus, "per_gpu_batch": 8, "steps": 50, "wall_s": round(end - start, 1),
           "steps_per_s": history[-1]["steps_per_s"]}, open(f"{out}/ddp.json", "w"), indent=2)
EOF
fi
ls -l "$OUT"
