#!/usr/bin/env bash
# One lent GPU machine, one call: the side-by-side quality rows (issue 11) and the CUDA speed
# rows (issue 15), in priority order, each phase under its own time limit so that whatever
# finished comes back.
#   official_src/  the official IsoNet2's python files (git-ignored, never committed)
#   .whl/          wheels that machine lacks: mrcfile, starfile, fire, termcolor
# Usage there: bash bench/device/gpu_session.sh SECONDS   (the whole script's budget)
# Phases (PHASES="data A B C" by default; clean timings only where one job runs at a time):
#   0  simulate both lamellae (cached in /tmp/sbs_data)
#   A  serial, per geometry: official refine, ours seed 0 trained 8 epochs (equal steps at 4,
#      equal wall time at the official training time): the timed side-by-side rows
#   B  parallel, quality only: ours seeds 1 and 2 per geometry, the denoise pair per geometry
#   C  serial: python -m bench CUDA rows (float32 / bfloat16 / float16; predict), then compile
#   D  parallel, quality only: our loss functions (denoise L2 and FSC+L2, refine FSC+L2)
#   T  serial: the training rows of C alone (precisions, auto batch size, compiled)
# Environment for a local dry run on the CPU: PY (python), DEVICE (cpu), SMALL=1 (tiny sizes).
set -u
budget=${1:-560}
PHASES_DEFAULT="data A B C"
source "$(dirname "$0")/phases.sh"     # t0, left, phase, want
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/gpu_session_out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD:$PWD/official_src
else
  export PYTHONPATH=$PWD:$PWD/official_src:${PYTHONPATH:-}
fi
export PYTHONUNBUFFERED=1
if [ "$DEVICE" = cuda ]; then
  nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
  MP=--mixed-precision; NC=8
else
  MP=; NC=2
fi
if [ "${SMALL:-0}" = 1 ]; then
  SIZE="--shape 32x64x64 --cube 16 --epochs 2 --steps-per-epoch 2"; WALL=3
  BENCH_SIZES="--cubes 16 --predict-cube 16 --predict-sizes 16x32x32"
else
  SIZE=""; WALL=8
  BENCH_SIZES="--cubes 48 --predict-cube 48 --predict-sizes 64x192x192,96x384x384"
fi
SBS="$PY -m bench.side_by_side --data /tmp/sbs_data --device $DEVICE $MP --official-python $PY $SIZE"
save() {   # one archive of what the phases wrote (the tool returns at most 8 files)
  (cd /tmp && tar czf "$OUT/results.tgz.part" $(ls -d sbs_*/side_by_side.json sbs_*/side_by_side.md \
     bench_*/results.json bench_*/results.md ./*.log 2>/dev/null) && mv "$OUT/results.tgz.part" "$OUT/results.tgz")
}

# data: both geometries at once
want data && phase data 120 bash -c "
  $SBS --out /tmp/data_pm60 --geometries pm60 --skip baselines,official,ours > /tmp/data_pm60.log 2>&1 &
  $SBS --out /tmp/data_lamella --geometries lamella --skip baselines,official,ours > /tmp/data_lamella.log 2>&1 &
  wait"
# A: timed rows, one job at a time
for g in pm60 lamella; do
  want A && phase "A $g" 150 bash -c "$SBS --out /tmp/sbs_A_$g --geometries $g --seeds 0 --wall-epochs $WALL --ncpus $NC > /tmp/A_$g.log 2>&1"
done
# B: quality rows, four jobs at once (timings of these rows are not clean)
want B && phase B 160 bash -c "
  $SBS --out /tmp/sbs_B_pm60_seeds --geometries pm60 --seeds 1,2 --skip baselines,official --ncpus 4 > /tmp/B1.log 2>&1 &
  $SBS --out /tmp/sbs_B_lamella_seeds --geometries lamella --seeds 1,2 --skip baselines,official --ncpus 4 > /tmp/B2.log 2>&1 &
  $SBS --out /tmp/sbs_B_pm60_denoise --geometries pm60 --skip baselines,official,ours --denoise --ncpus 4 > /tmp/B3.log 2>&1 &
  $SBS --out /tmp/sbs_B_lamella_denoise --geometries lamella --skip baselines,official,ours --denoise --ncpus 4 > /tmp/B4.log 2>&1 &
  wait"
# D: our loss functions (quality only, no official rows, jobs at once): denoise with L2 and
# FSC+L2 on both geometries, refine with FSC+L2 (seed 0) on both
SBS_OURS="$PY -m bench.side_by_side --data /tmp/sbs_data --device $DEVICE $MP $SIZE --ncpus 3"
want D && phase D 150 bash -c "
  for g in pm60 lamella; do
    for l in L2 FSC+L2; do
      $SBS_OURS --out /tmp/sbs_D_\${g}_denoise_\${l/+/_} --geometries \$g --skip baselines,official,ours --denoise --ours-extra \"--loss_func \$l\" > /tmp/D_\${g}_\${l/+/_}.log 2>&1 &
    done
    $SBS_OURS --out /tmp/sbs_D_\${g}_refine_FSC_L2 --geometries \$g --seeds 0 --skip baselines,official --ours-extra \"--loss_func FSC+L2\" > /tmp/D_\${g}_refine.log 2>&1 &
  done
  wait"
# C: CUDA speed rows at the official settings (unet-small, cube 48, batch 4), then compiled
want C && phase "C precisions" 120 bash -c "$PY -m bench --device $DEVICE --sections train,predict --archs unet-small $BENCH_SIZES --train-batch 4 --predict-batch 8 --mixed-precision all --reps 3 --out /tmp/bench_precisions > /tmp/C1.log 2>&1"
want T && phase "T train precisions" 90 bash -c "$PY -m bench --device $DEVICE --sections train --archs unet-small $BENCH_SIZES --train-batch 4 --mixed-precision all --reps 3 --out /tmp/bench_train_precisions > /tmp/T1.log 2>&1"
want T && phase "T auto batch" 40 bash -c "$PY -m bench --device $DEVICE --sections train --archs unet-small $BENCH_SIZES --mixed-precision on --reps 3 --out /tmp/bench_train_auto > /tmp/T2.log 2>&1"
want C && phase "C compile" 200 bash -c "$PY -m bench --device $DEVICE --sections train,predict --archs unet-small $BENCH_SIZES --train-batch 4 --predict-batch 8 --mixed-precision on --compile on --reps 3 --out /tmp/bench_compile > /tmp/C2.log 2>&1"
want T && phase "T compile" 200 bash -c "$PY -m bench --device $DEVICE --sections train --archs unet-small $BENCH_SIZES --train-batch 4 --mixed-precision on --compile on --reps 3 --out /tmp/bench_train_compile > /tmp/T3.log 2>&1"
save
for f in /tmp/sbs_*/*/*/log.txt; do
  [ -f "$f" ] || continue
  grep -q "Traceback\|Error" "$f" && { echo "--- $f"; tail -n 8 "$f"; } >> "$OUT/failures.txt"
done
ls -la "$OUT"; echo "done after $(( $(date +%s) - t0 ))s"
