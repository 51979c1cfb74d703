#!/usr/bin/env bash
# A throwaway single-node Slurm cluster on loopback, for the Slurm launcher tests.
#
#   scripts/slurm.sh install          # Debian's slurm-wlm and munge (as root), if missing
#   scripts/slurm.sh start DIR        # munged, slurmctld, slurmd; prints SLURM_CONF=DIR/slurm.conf
#   scripts/slurm.sh stop DIR         # cancels every job, stops the daemons
#
# Everything lives in DIR: a munge key made for this cluster, a generated
# slurm.conf (node "localhost" = 127.0.0.1, one partition "debug", no cgroups:
# proctrack/linuxproc, task/none, daemons as root), spool, state and logs.
# Run "start" inside a network namespace of its own (the tests do; see
# tests/_netns.py); Slurm resolves addresses with AI_ADDRCONFIG, so the
# namespace needs one non-loopback IPv4 address, even one that leads nowhere.
set -euo pipefail

usage() {
    echo "usage: $0 install | $0 start DIR | $0 stop DIR" >&2
    exit 2
}

installed() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null
}

install() {
    installed && return 0
    if [ "$(id -u)" != "0" ]; then
        echo "installing slurm-wlm and munge needs root" >&2
        return 1
    fi
    echo "installing slurm-wlm and munge from Debian packages..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends slurm-wlm munge >&2
}

wait_for() {  # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.2
    done
}

start() {
    local dir=$1
    installed || { echo "Slurm is not installed: run '$0 install' first" >&2; exit 1; }
    mkdir -p "$dir/spool" "$dir/state" "$dir/munge" "$dir/log"
    chmod 700 "$dir/munge"
    head -c 1024 /dev/urandom >"$dir/munge.key"
    chmod 400 "$dir/munge.key"
    munged --key-file="$dir/munge.key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/seed" \
        --log-file="$dir/log/munged.log" --force
    local cpus
    cpus=$(nproc)
    cat >"$dir/slurm.conf" <<EOF
ClusterName=carbstest
SlurmctldHost=localhost(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CryptoType=crypto/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=5
MinJobAge=600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$dir/slurm.conf"
    slurmctld -f "$SLURM_CONF"
    slurmd -f "$SLURM_CONF" -N localhost
    if ! wait_for 60 sh -c 'sinfo --noheader --states=idle --format=%n | grep -q localhost'; then
        echo "the Slurm node did not come up; logs in $dir/log:" >&2
        tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
        stop "$dir"
        exit 1
    fi
    echo "SLURM_CONF=$SLURM_CONF"
}

kill_pidfile() {
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

stop() {
    local dir=$1
    export SLURM_CONF="$dir/slurm.conf"
    if [ -f "$dir/slurmctld.pid" ]; then
        scancel --full --signal=KILL --partition=debug 2>/dev/null || true
        scancel --partition=debug 2>/dev/null || true
    fi
    kill_pidfile "$dir/slurmd.pid"
    kill_pidfile "$dir/slurmctld.pid"
    # Job steps left behind (slurmstepd) and anything they started.
    for pid in $(pgrep -f "slurmstepd: \[" || true); do
        if grep -q "$dir" "/proc/$pid/environ" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    kill_pidfile "$dir/munge/munged.pid"
}

case "${1:-}" in
install) install ;;
start) [ -n "${2:-}" ] || usage; start "$(realpath "$2")" ;;
stop) [ -n "${2:-}" ] || usage; stop "$(realpath "$2")" ;;
*) usage ;;
esac
