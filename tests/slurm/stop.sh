#!/usr/bin/env bash
# End exactly the daemons tests/slurm/start.sh started (by the pids it recorded), nothing else.
set -uo pipefail
STATE="${PROGBENCH_SLURM_STATE:-/tmp/progbench-slurm}"
[ -f "$STATE/pids" ] || { echo "stop.sh: no $STATE/pids; nothing to stop"; exit 0; }
tac "$STATE/pids" | while read -r name pid; do
    if kill "$pid" 2>/dev/null; then echo "stop.sh: ended $name ($pid)"; fi
done
rm -f "$STATE/pids"
