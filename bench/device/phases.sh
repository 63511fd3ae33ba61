# Sourced by the device scripts (gpu_session.sh, issue31.sh): a budget of seconds for the whole
# script and phases that each run under a limit no longer than what is left, then call the
# script's own `save`. Usage: budget=SECONDS; source bench/device/phases.sh; PHASES_DEFAULT="..."
t0=$(date +%s)
left() { echo $(( budget - ($(date +%s) - t0) )); }
phase() {  # phase NAME SECONDS COMMAND...: run with a limit no longer than what is left
  local name=$1 limit=$2; shift 2
  local l; l=$(left); [ "$limit" -gt "$l" ] && limit=$l
  if [ "$limit" -lt 20 ]; then echo "== $name skipped: ${l}s left"; return; fi
  echo "== $name (limit ${limit}s, $(left)s left)"
  timeout "$limit" "$@"; echo "== $name exit $? after $(( $(date +%s) - t0 ))s"
  save
}
want() { case " ${PHASES:-$PHASES_DEFAULT} " in *" $1 "*) return 0;; esac; return 1; }
