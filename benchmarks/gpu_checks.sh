#!/usr/bin/env bash
# The benchmarks that need a GPU, for a machine with a CUDA GPU
# (a bare image is enough: python3 with torch, numpy, safetensors, scikit-image, tifffile, h5py, pytest;
# no network, no sigpy or nilearn, so nothing here needs them).
#
#   bash benchmarks/gpu_checks.sh speed          # GPU tests, 256³ timing (estimated ~5 min)
#   bash benchmarks/gpu_checks.sh train SECONDS  # a larger prior, trained for about SECONDS
#   INIT=PRIOR.safetensors bash benchmarks/gpu_checks.sh train SECONDS  # ... continuing PRIOR
#   PRECISION=bf16 bash benchmarks/gpu_checks.sh train SECONDS  # mixed precision (default auto: TF32)
#
# Results land in $OUT (default ./gpu_out). Phase "speed":
# pytest_gpu.log, speed_cuda_*.json (D3IP NFE 50: the 256³ wall time with precision auto =
# TF32, and fp32 / bf16 / larger slice batches at 64 slices, each with its PSNR). Phase
# "train": the prior's .json/.md, loss.csv and its weights split into parts under 16 MB (for
# transfers that limit the file size); put them back together with `cat NAME.safetensors.part-* >
# NAME.safetensors`, then score it here on the CPU with benchmarks/prior_scores.py.
#
# Dry run on a CPU (small sizes, to check the script): DEVICE=cpu SIZE=32 SLICES=16 NFE=3
# BASE=8 bash benchmarks/gpu_checks.sh speed; the same with `train 30`.
set -u -o pipefail
phase=${1:?usage: gpu_checks.sh speed | train SECONDS}
out=${OUT:-gpu_out}
device=${DEVICE:-cuda}
size=${SIZE:-256}
slices=${SLICES:-256}
nfe=${NFE:-50}
base=${BASE:-32}
py=${PYTHON:-python3}
export PYTHONPATH="$PWD/src:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$out"

speed() {  # one speed_memory.py run: TAG SLICES [--set K=V ...]
    local tag=$1 n=$2
    shift 2
    timeout 300 "$py" benchmarks/speed_memory.py --device "$device" --methods d3ip \
        --slices "$n" --size "$size" --nfe "$nfe" --out "$out" --tag "$tag" "$@" ||
        echo "speed run $tag failed or timed out"
}

case $phase in
speed)
    { nvidia-smi || true; "$py" -c 'import torch; print(torch.__version__, torch.cuda.is_available())'; } \
        >"$out/env.txt" 2>&1
    timeout 240 "$py" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py tests/test_ct.py \
        2>&1 | tee "$out/pytest_gpu.log" | tail -5
    speed _cube "$slices"                                      # precision auto: TF32 on CUDA
    speed _fp32 $((slices / 4)) --set precision=fp32
    speed _bf16 $((slices / 4)) --set precision=bf16
    speed _batch16 $((slices / 4)) --set slice_batch=16
    speed _batch256 $((slices / 4)) --set slice_batch=256
    ;;
train)
    budget=${2:?train needs a time budget in seconds}
    name=ellipse-patch-v-c$base
    common=(--prediction v --base-channels "$base" --batch-size 64 --lr 5e-4 --device "$device"
        --precision "${PRECISION:-auto}" --quiet)
    # Continue a prior trained earlier, e.g. on the CPU (its architecture wins over --base-channels).
    [[ -n ${INIT:-} ]] && common+=(--init "$INIT")
    # Steps per second of this network on this device, from a short probe run.
    "$py" -m napari_ddip train-prior --out "$out/probe" --name probe --steps 60 --log-every 20 \
        "${common[@]}" >/dev/null
    steps=$("$py" -c "import json; s=json.load(open('$out/probe/probe.json'))['info']['wall_seconds']; print(max(100, int($budget * 60 / s)))")
    rm -rf "$out/probe"
    echo "training $name for $steps steps"
    mkdir -p runs
    "$py" -m napari_ddip train-prior --out "runs/$name" --name "$name" --steps "$steps" \
        --lr-schedule cosine --warmup-steps $((steps / 20)) "${common[@]}"
    cp "runs/$name/$name.json" "runs/$name/$name.md" "runs/$name/loss.csv" "$out/"
    split -b 15M -d "runs/$name/$name.safetensors" "$out/$name.safetensors.part-"
    ;;
*)
    echo "unknown phase $phase (speed or train SECONDS)" >&2
    exit 2
    ;;
esac
ls -la "$out"
