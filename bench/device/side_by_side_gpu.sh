#!/usr/bin/env bash
# The side-by-side bench (bench.side_by_side) on a lent GPU machine, in one call:
#   official_src/  the official IsoNet2's python files (git-ignored, never committed)
#   .whl/          wheels that machine lacks: mrcfile, starfile, fire, termcolor
# Usage there: bash bench/device/side_by_side_gpu.sh SECONDS [extra bench options]
# Results (side_by_side.md/json, failing runs' log tails) go to $OUT.
set -u
budget=${1:-480}; shift || true
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD:$PWD/official_src PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
timeout "$budget" python3 -m bench.side_by_side --out /tmp/sbs --device cuda --mixed-precision \
  --official-python python3 --ncpus 8 "$@" 2>&1 | grep -v "it/s\]" | tail -n 60
mkdir -p "$OUT"; cp /tmp/sbs/side_by_side.* "$OUT"/ 2>/dev/null
for f in /tmp/sbs/*/*/log.txt; do d=$(basename "$(dirname "$f")"); g=$(basename "$(dirname "$(dirname "$f")")"); tail -n 15 "$f" > "$OUT/${g}_${d}_log_tail.txt"; done
