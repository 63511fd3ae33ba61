#!/usr/bin/env bash
# Issue 31 ("speed where users train: 3x the official IsoNet2 per step on the GPU"): one lent
# GPU machine, one call. Phases in priority order, each under its own time limit, results
# archived to $OUT after every phase, so whatever finished comes back.
#   official_src/  the official IsoNet2's python files and its timing sitecustomize.py (git-ignored)
#   .whl/          wheels that machine lacks: mrcfile, starfile, fire, termcolor
# Usage there: bash bench/device/issue31.sh SECONDS   (the whole script's budget, e.g. 480)
# Phases (PHASES selects, default all, in this order):
#   data  simulate the pm60 lamellae of 1a and 1b at once (cached)
#   1a    per step, official then ours, tutorial settings: unet-small, cube 48, batch 4
#         (issue 11's CTF_mode network, mw_weight 200), 2 epochs x 16 steps (bench.side_by_side)
#   1b    per step, official then ours, the official defaults: unet-medium, cube 96, batch
#         left to each program (official 4, ours its auto rule), CTF_mode/mw_weight each its
#         own, 2 epochs x 48 cubes; peaks of every process: bench/device/peak_hook (both
#         programs alike), and the card's used memory sampled from nvidia-smi
#   2     GPU busy fraction of our step at cube 96 (bench.gpu_busy, torch.profiler)
#   3     the largest batch (cube 96) and cube (batch 1) that fit, ours (bench.fit_search)
#   4     whole predict processes, ours and official, 64x192x192 and 256x1024x1024
#         (bench.process_rows predict, the models of 1a)
#   1c    ours alone at cube 96 with the official batch (4): per step at equal work
#   3o    the official batch that fits at cube 96 (whole processes, as time allows)
#   1a2   1a again (a second interleaved round)
# Local dry run on the CPU: SMALL=1 DEVICE=cpu PY=.venv/bin/python OUT=/tmp/i31 bash ... 150
# (OFFICIAL_SRC: the official sources, default ./official_src, absent: its rows are skipped
# and say so; OPY: the python that runs them, default PY; EXTRA_PATH: more PYTHONPATH, e.g.
# the CPU shim's folder; WORK: scratch, default /tmp/i31_work).
set -u
budget=${1:-480}
PHASES_DEFAULT="data 1a 1b 2 3 4 1c 3o 1a2"
source "$(dirname "$0")/phases.sh"     # t0, left, phase, want
PY=${PY:-python3}
OPY=${OPY:-$PY}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/issue31_out}
W=${WORK:-/tmp/i31_work}
OFFICIAL_SRC=${OFFICIAL_SRC:-$PWD/official_src}
mkdir -p "$OUT" "$W"; rm -f "$OUT/failures.txt" "$W"/*.log
SITE=
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  SITE=/tmp/site:
fi
export PYTHONPATH=$PWD/bench/device/peak_hook:$SITE$PWD:$OFFICIAL_SRC${EXTRA_PATH:+:$EXTRA_PATH}
export ISONET_PEAK_LOG=$W/peaks.jsonl PYTHONUNBUFFERED=1
if [ -d "$OFFICIAL_SRC/IsoNet" ]; then
  OFF="--official-python $OPY"
else
  OFF=""; echo "official program: $OFFICIAL_SRC/IsoNet absent: its rows are skipped (phases 1a/1b ours only, 3o, official predict)"
fi
if [ "$DEVICE" = cuda ]; then
  { nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; } | tee "$W/env.txt"
  MP=--mixed-precision; NC=16; PNC=   # predict: each program's defaults
  ( while :; do echo "$(date +%s.%N) $(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)"
      sleep 0.2; done ) > "$W/card.txt" 2>/dev/null &
  SAMPLER=$!; trap 'kill $SAMPLER 2>/dev/null' EXIT
  CARD="--card $W/card.txt"
else
  echo "device $DEVICE: no nvidia-smi samples of the card (peaks from the hook: resident set)" | tee "$W/env.txt"
  MP=; NC=1; PNC="--ncpus 1"; CARD=""; export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
fi
if [ "${SMALL:-0}" = 1 ]; then    # tiny sizes: the code paths, not the numbers
  # (cube 32: the official predict's tiles need more than 16; the maps deeper than the cube)
  # 2 steps an epoch: the official timing log's gaps need more than one
  SHAPE_A=48x64x64; A="--arch unet-small --cube 32 --batch 4 --subtomos 8"
  SHAPE_B=48x64x64; B="--arch unet-small --cube 32 --batch 0 --subtomos 8 --own-defaults"
  C="--arch unet-small --cube 32 --batch 4 --subtomos 8 --own-defaults"
  BUSY="--config unet-small:16:auto --warmup 1 --steps 2"
  FIT="--arch unet-small --cube 16 --batch-start 1 --max-batch 2 --cube-start 16 --max-cube 32 --refine 0"
  FITO="--cube 32 --official-start 4 --official-max-batch 4"
  PRED="--shapes 32x48x48"
else
  SHAPE_A=64x192x192; A="--arch unet-small --cube 48 --batch 4 --subtomos 64"
  SHAPE_B=112x192x192; B="--arch unet-medium --cube 96 --batch 0 --subtomos 48 --own-defaults"
  C="--arch unet-medium --cube 96 --batch 4 --subtomos 48 --own-defaults"
  BUSY="--config unet-medium:96:auto --config unet-medium:96:4 --config unet-small:48:4 --warmup 2 --steps 4"
  FIT="--arch unet-medium --cube 96 --batch-start 4 --max-batch 512 --cube-start 96 --max-cube 512 --refine 1"
  FITO="--cube 96 --official-start 4 --official-max-batch 128"
  PRED="--shapes 64x192x192,256x1024x1024"
fi
SBS="$PY -m bench.side_by_side --data $W/data --device $DEVICE $MP --ncpus $NC --geometries pm60 --seeds 0 --epochs 2 --skip baselines,official-by-ours,last-weights"
RUNS=$W/sbs_a,$W/sbs_b,$W/sbs_c,$W/sbs_a2
save() {   # the tables into summary.md, every result and log into results.tgz (the tool returns at most 8 files)
  ls -d "$W"/sbs_* > /dev/null 2>&1 && \
    $PY -m bench.process_rows steps --runs "$RUNS" --peaks "$W/peaks.jsonl" $CARD --out "$W/steps.json" > /dev/null 2>&1
  { echo "# Issue 31 ($(date -u '+%Y-%m-%d %H:%M UTC'), $(left)s of ${budget}s left)"; cat "$W/env.txt"
    for f in steps gpu_busy fit fit_official predict; do
      if [ -f "$W/$f.md" ]; then echo; echo "## $f"; echo; cat "$W/$f.md"; fi
    done; } > "$OUT/summary.md.part" && mv "$OUT/summary.md.part" "$OUT/summary.md"
  (cd "$W" && tar czf "$OUT/results.tgz.part" $(ls -d ./*.json ./*.md ./*.jsonl ./*.txt ./*.log sbs_*/side_by_side.* \
     sbs_*/*/*/log.txt sbs_*/*/*/timing.txt sbs_*/*/*/maps/loss_history.json fit_official_*/log.txt 2>/dev/null) \
   && mv "$OUT/results.tgz.part" "$OUT/results.tgz")
}

want data && phase data 90 bash -c "
  $SBS --out $W/data_a --shape $SHAPE_A --skip baselines,official,ours > $W/data_a.log 2>&1 &
  [ $SHAPE_B = $SHAPE_A ] || $SBS --out $W/data_b --shape $SHAPE_B --skip baselines,official,ours > $W/data_b.log 2>&1 &
  wait"
want 1a && phase 1a 110 bash -c "$SBS $OFF --out $W/sbs_a --shape $SHAPE_A $A > $W/1a.log 2>&1"
want 1b && phase 1b 150 bash -c "$SBS $OFF --out $W/sbs_b --shape $SHAPE_B $B > $W/1b.log 2>&1"
want 1a && { echo "-- per step so far:"; cat "$W/steps.md" 2>/dev/null; }
want 2 && phase 2 70 bash -c "$PY -m bench.gpu_busy --device $DEVICE $BUSY --out $W/gpu_busy.json > $W/2.log 2>&1"
want 3 && phase 3 120 bash -c "$PY -m bench.fit_search --device $DEVICE $FIT --out $W/fit.json > $W/3.log 2>&1"
if [ -d "$W/sbs_a" ]; then
  want 4 && phase 4 150 bash -c "$PY -m bench.process_rows predict --from-run $W/sbs_a $PRED --data $W/predict_data \
    --device $DEVICE $PNC $OFF --peaks $W/peaks.jsonl $CARD --out $W/predict.json > $W/4.log 2>&1"
else
  echo "== 4 skipped: no models (phase 1a did not run)"
fi
want 1c && phase 1c 60 bash -c "$SBS --out $W/sbs_c --shape $SHAPE_B $C --skip baselines,official,official-by-ours,last-weights > $W/1c.log 2>&1"
if [ -n "$OFF" ]; then
  want 3o && phase 3o 100 bash -c "$PY -m bench.fit_search --device $DEVICE --arch unet-medium $FITO --skip-ours $OFF \
    --data $W/data --shape $SHAPE_B --peak-log $W/peaks.jsonl --out $W/fit_official.json > $W/3o.log 2>&1"
else
  echo "== 3o skipped: no official program"
fi
want 1a2 && phase 1a2 110 bash -c "$SBS $OFF --out $W/sbs_a2 --shape $SHAPE_A $A > $W/1a2.log 2>&1"
save
for f in "$W"/*.log; do
  grep -q "Traceback" "$f" && { echo "--- $f"; grep -B2 -A12 "Traceback" "$f" | tail -n 16; } >> "$OUT/failures.txt"
done
cat "$OUT/summary.md"; ls -la "$OUT"; echo "done after $(( $(date +%s) - t0 ))s"
