#!/usr/bin/env bash
# slurm-local.sh: a one-node Slurm cluster on this machine, for trying examples-c/slurm/ and for
# tests/slurm.rs. Everything it starts lives in DIR: its own munged (own key and socket, so a
# system munge is left alone), slurm.conf, slurmctld and slurmd on free ports, state, spool, logs.
#
#   scripts/slurm-local.sh up DIR      install slurm-wlm + munge if missing (apt-get, as root),
#                                      start the daemons, wait until the node is idle
#   scripts/slurm-local.sh down DIR    stop what `up DIR` started (by the pids in DIR), kill
#                                      whatever the jobs left behind in slurmstepd
#   scripts/slurm-local.sh env DIR     print `export SLURM_CONF=DIR/slurm.conf`
#
# Then: export SLURM_CONF=DIR/slurm.conf; sinfo; sbatch --wrap 'hostname'; squeue.
#
# Runs as root (Debian's slurm-wlm 22.05, no cgroups: proctrack/linuxproc, task/none; no
# accounting, so follow jobs with squeue/scontrol, not sacct). The node is configured with
# SLURM_LOCAL_CPUS CPUs (default 16, more than the machine may have: jobs here mostly wait, and
# each job takes one), memory is not scheduled, KillWait is 5 s.
#
# Exit status: 0 done; 1 usage; 2 cannot run here (not root, no apt-get, install failed);
# 3 a daemon did not start (the message names its log file).
set -euo pipefail

usage() {
    echo "usage: $0 up DIR | down DIR | env DIR" >&2
    exit 1
}
cant() {
    echo "slurm-local: $*" >&2
    exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2
case $cmd in up | down | env) ;; *) usage ;; esac
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# The pid in FILE if that process is alive.
alive_pid() {
    local pid
    [ -f "$1" ] || return 1
    pid=$(tr -dc 0-9 <"$1")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# A TCP port nobody listens on, from $1 upwards.
free_port() {
    local port=$1
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        port=$((port + 1))
    done
    echo "$port"
}

stop_pidfile() {
    local pid i
    pid=$(alive_pid "$1") || return 0
    kill "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

down() {
    local pid ids i environ
    # Cancel every job first (KillWait: SIGTERM, then SIGKILL 5 s later), so that nothing a job
    # started outlives the cluster.
    if alive_pid "$dir/slurmctld.pid" >/dev/null; then
        ids=$(SLURM_CONF=$dir/slurm.conf squeue -h -o %i 2>/dev/null || true)
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086
            SLURM_CONF=$dir/slurm.conf scancel $ids 2>/dev/null || true
            for i in $(seq 80); do
                [ -z "$(SLURM_CONF=$dir/slurm.conf squeue -h -o %i 2>/dev/null)" ] && break
                sleep 0.1
            done
        fi
    fi
    stop_pidfile "$dir/slurmd.pid"
    stop_pidfile "$dir/slurmctld.pid"
    # Whatever is left of this cluster's slurmstepd and jobs: their environment has exactly
    # SLURM_CONF=DIR/slurm.conf (slurmd's, or the submitter's, passed on by sbatch).
    for environ in /proc/[0-9]*/environ; do
        pid=${environ#/proc/}
        pid=${pid%/environ}
        [ "$pid" = $$ ] && continue
        if grep -qszxF "SLURM_CONF=$dir/slurm.conf" "$environ"; then kill -9 "$pid" 2>/dev/null || true; fi
    done
    stop_pidfile "$dir/munged.pid"
    rm -f "$dir/munge.socket" "$dir/munge.socket.lock"
}

if [ "$cmd" = env ]; then
    echo "export SLURM_CONF=$dir/slurm.conf"
    exit 0
fi
if [ "$cmd" = down ]; then
    down
    echo "slurm-local: stopped the cluster in $dir"
    exit 0
fi

# ---- up ----------------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || cant "must run as root (slurmd runs jobs as their users; this setup runs everything as root)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null ||
    ! command -v sbatch >/dev/null; then
    command -v apt-get >/dev/null || cant "slurm-wlm and munge are not installed and there is no apt-get"
    echo "slurm-local: installing slurm-wlm and munge with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq slurm-wlm munge >"$dir/apt.log" 2>&1; then
        apt-get update -qq >>"$dir/apt.log" 2>&1 || true
        apt-get install -y -qq slurm-wlm munge >>"$dir/apt.log" 2>&1 ||
            cant "apt-get install slurm-wlm munge failed (see $dir/apt.log)"
    fi
fi

down # a previous `up DIR` that was not taken down
mkdir -p "$dir/state" "$dir/spool" "$dir/log"
chmod 700 "$dir"

# munge: a private key and daemon; slurm reaches it through AuthInfo=socket=...
if [ ! -s "$dir/munge.key" ]; then
    dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
fi
chmod 400 "$dir/munge.key"
munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
    --seed-file="$dir/munged.seed" --log-file="$dir/log/munged.log" ||
    { echo "slurm-local: munged did not start (see $dir/log/munged.log)" >&2; exit 3; }

host=$(hostname -s)
ctld_port=$(free_port 6817)
slurmd_port=$(free_port $((ctld_port + 1)))
cpus=${SLURM_LOCAL_CPUS:-16}
cat >"$dir/slurm.conf" <<EOF
# Written by scripts/slurm-local.sh: a one-node cluster, everything as root, no cgroups.
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
MinJobAge=300
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$dir/slurm.conf

slurmctld -f "$SLURM_CONF" || { echo "slurm-local: slurmctld did not start (see $dir/log/slurmctld.log)" >&2; exit 3; }
slurmd -f "$SLURM_CONF" || { echo "slurm-local: slurmd did not start (see $dir/log/slurmd.log)" >&2; exit 3; }

# Wait (up to 30 s) for the node to be idle.
for _ in $(seq 60); do
    state=$(sinfo -h -N -o %T 2>/dev/null | head -n1 || true)
    case $state in
    idle*)
        echo "slurm-local: node $host idle (slurmctld port $ctld_port); export SLURM_CONF=$SLURM_CONF"
        exit 0
        ;;
    esac
    sleep 0.5
done
echo "slurm-local: the node did not become idle (state '${state:-none}'; see $dir/log/)" >&2
exit 3
