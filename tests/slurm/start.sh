#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine (Debian's slurm-wlm and munge, as root) for the tests marked
# `slurm`: writes /etc/slurm/slurm.conf for this host's CPUs and memory, starts munged, slurmctld and slurmd, and
# waits until sinfo shows the node idle. The daemons' pids go to $PROGBENCH_SLURM_STATE/pids for stop.sh, which
# ends exactly those. Install first: apt-get install -y slurm-wlm munge
set -euo pipefail
STATE="${PROGBENCH_SLURM_STATE:-/tmp/progbench-slurm}"
for cmd in munged slurmctld slurmd sinfo; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "start.sh: $cmd not found; apt-get install -y slurm-wlm munge" >&2; exit 2; }
done
if sinfo -h -o %T 2>/dev/null | grep -q idle; then echo "start.sh: a cluster already answers; nothing started"; exit 0; fi
mkdir -p "$STATE"/{spool,state,log,munge} /etc/slurm
: > "$STATE/pids"
HOST="$(hostname -s)"
CPUS="$(nproc)"
MEM_MB="$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)"
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=progbench
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
JobRequeue=1
DefMemPerCPU=$((MEM_MB / CPUS))
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    sleep 1
    echo "munged $(cat /run/munge/munged.pid)" >> "$STATE/pids"
fi
/usr/sbin/slurmctld -f /etc/slurm/slurm.conf
/usr/sbin/slurmd -f /etc/slurm/slurm.conf
for _ in $(seq 1 60); do
    [ -s "$STATE/slurmctld.pid" ] && [ -s "$STATE/slurmd.pid" ] && break
    sleep 0.5
done
echo "slurmctld $(cat "$STATE/slurmctld.pid")" >> "$STATE/pids"
echo "slurmd $(cat "$STATE/slurmd.pid")" >> "$STATE/pids"
for _ in $(seq 1 120); do
    if sinfo -h -o %T 2>/dev/null | grep -q idle; then
        echo "start.sh: node $HOST idle ($CPUS CPUs, $MEM_MB MB); pids in $STATE/pids"
        exit 0
    fi
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    sleep 1
done
echo "start.sh: the node did not become idle; see $STATE/log/" >&2
exit 1
