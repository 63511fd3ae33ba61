#!/bin/sh
# A machine with little memory, emulated: bench.memory_scale and every step it runs inside a
# memory cgroup (v1, /sys/fs/cgroup/memory; root) limited to LIMIT_GIB, page cache included, no
# swap; then the cgroup's peak usage and OOM count. A tomogram larger than LIMIT_GIB goes
# through every step when each exits 0 and oom_kill stays 0.
#   sh bench/memory_in_cgroup.sh 2 --sizes 640x1024x1024 --steps deconv,make-mask,refine,denoise,predict \
#      --predict_input full --memory_gb 1.5 --label "2 GiB cgroup (VmHWM)"
set -e
LIMIT_GIB=$1; shift
CG=/sys/fs/cgroup/memory/isonet2_bench_$$
[ -d /sys/fs/cgroup/memory ] || { echo "no cgroup v1 memory controller at /sys/fs/cgroup/memory" >&2; exit 2; }
mkdir "$CG"
echo $((LIMIT_GIB * 1024 * 1024 * 1024)) > "$CG/memory.limit_in_bytes"
echo $$ > "$CG/cgroup.procs"
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -m bench.memory_scale "$@"
echo "cgroup $CG: limit $(cat "$CG/memory.limit_in_bytes") bytes, peak usage $(cat "$CG/memory.max_usage_in_bytes") bytes; $(tr '\n' ' ' < "$CG/memory.oom_control")"
