#!/usr/bin/env bash
# Every check of the kit that needs a CUDA GPU, in one run of about 5 minutes on one GPU, for a
# machine that is lent for a short time (or a cluster node before a long job). Each part runs even
# when an earlier one failed; the outputs go to $OUT (default gpu_out/), and the script's exit
# status says whether all parts passed.
#
#   PY=python3 OUT=gpu_out bash benchmarks/gpu_session.sh
#
# Parts: nvidia-smi; `tinlib doctor` in full (the interlace op on every backend and dtype against
# float64, the op's bandwidth as % of the datasheet, TIN-R50 steps in float32 and AMP); the GPU
# tests (the compiled Triton kernel against the reference, the auto fallback, one host read-back per
# log interval on CUDA); the op benchmark on the GPU (the >= 70 % bandwidth target at the layer1
# shape); video decoding per backend with torchcodec on the GPU (NVDEC) and batched nvJPEG (table in
# $OUT/bench-decode.txt; results/benchmarks.md is left alone); one epoch of the demo TIN through
# torchrun (NCCL, bf16 AMP) and its test; one epoch decoding its JPEG frames with nvJPEG in spawned
# loader workers (data.decode_device=cuda); the zoo's latency and gpu_mem columns for TIN, TSM and TSN
# ResNet-50. papermill is not needed.
set -u
PY=${PY:-python3}
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
failed=()

part() {  # part NAME COMMAND...: run, keep its output in $OUT/NAME.txt, note a failure
  local name=$1
  shift
  echo "== $name: $*"
  local start=$SECONDS
  if "$@" >"$OUT/$name.txt" 2>&1; then
    echo "   passed in $((SECONDS - start)) s"
  else
    echo "   FAILED (exit $?) in $((SECONDS - start)) s; last lines of $OUT/$name.txt:"
    tail -n 15 "$OUT/$name.txt" | sed 's/^/   | /'
    failed+=("$name")
  fi
}

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_session: $PY sees no CUDA device; nothing to check here" >&2
  exit 1
fi

data=$(mktemp -d)
work=$(mktemp -d)
part nvidia-smi nvidia-smi
part doctor "$PY" -m tinlib doctor
"$PY" -m tinlib doctor --json >"$OUT/doctor.json" 2>/dev/null
part gpu-tests env TINLIB_INTERLACE_BACKEND=triton "$PY" -m pytest -q -p no:cacheprovider \
  tests/test_ops_triton.py tests/test_ops_backend_choice.py tests/test_train_syncs.py tests/test_doctor.py \
  tests/test_video_backends.py tests/test_data_normalization.py
part bench-op "$PY" benchmarks/bench_op.py --device cuda
part bench-decode "$PY" benchmarks/bench_decode.py --clips 8 --rounds 3 --no-write
part demo-data "$PY" -m tinlib prepare synthetic --out "$data/sthv1" --height 40
part train-torchrun "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 -m tinlib train \
  demo_tin_r18_synthetic --work-dir "$work/tin" --amp bf16 --no-progress \
  --set data.root="$data/sthv1" train.epochs=1 results_dir="$work/results"
part train-nvjpeg "$PY" -m tinlib train demo_tin_r18_synthetic --work-dir "$work/tin-nvjpeg" --no-progress \
  --set data.root="$data/sthv1" data.decode_device=cuda data.workers_per_gpu=2 train.epochs=1 \
  results_dir="$work/results-nvjpeg"
part test-amp "$PY" -m tinlib test demo_tin_r18_synthetic "$work/tin/latest.pth" --split test --amp bf16 \
  --results-dir "$work/results" --no-progress --set data.root="$data/sthv1"
part latency "$PY" -m tinlib latency tin_r50_1x1x8_40e_sthv1_rgb --devices cuda --out "$OUT/latency.json"
cp results/benchmarks.md "$OUT/benchmarks.md"

if ((${#failed[@]})); then
  echo "gpu_session: failed: ${failed[*]} (outputs in $OUT)"
  exit 1
fi
echo "gpu_session: every part passed (outputs in $OUT)"
