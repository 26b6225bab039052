#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine (munge, slurmctld, slurmd) for `metarun sweep
# --launcher slurm` and its tests. Needs root and Debian's slurm-wlm and munge (scripts/setup.sh
# installs them). Idempotent: a cluster already answering is left as it is.
# Exit codes: 0 up, 10 cannot (not root, packages missing, daemons do not come up).
set -euo pipefail

fail() { echo "slurm-local: $*" >&2; exit 10; }
[ "$(id -u)" = 0 ] || fail "needs root (it writes /etc/slurm and starts daemons)"
for c in munged slurmctld slurmd sbatch scontrol; do
  command -v "$c" >/dev/null || fail "$c not found; install slurm-wlm and munge (scripts/setup.sh does, as root)"
done

node="$(hostname -s)"
cpus="$(nproc)"
# Addresses are given as 127.0.0.1 so the cluster works where the host name does not resolve
# (containers, CI). Leave room for the OS; Slurm refuses a node that reports less memory than configured.
mem_mb=$(( $(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo) * 9 / 10 ))
conf=/etc/slurm/slurm.conf
state=/var/lib/metarun-slurm

up() { scontrol ping 2>/dev/null | grep -q "is UP" && sinfo -h -n "$node" -o "%T" 2>/dev/null | grep -Eq "^(idle|mixed|allocated)"; }
if up; then echo "slurm-local: cluster already up on $node" >&2; exit 0; fi

mkdir -p /etc/slurm "$state/ctld" "$state/d" /var/log/slurm /run/munge /var/log/munge /var/lib/munge
# No systemd here (containers, CI): every daemon runs as root, tracking its processes through
# /proc (proctrack/linuxproc) with no cgroups or CPU binding (task/none).
cat > "$conf" <<EOF
ClusterName=metarun
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  if id munge >/dev/null 2>&1; then runuser -u munge -- munged; else munged --force; fi
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null 2>&1 || fail "munged did not start (see /var/log/munge/munged.log)"
fi

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 100); do
  if up; then echo "slurm-local: cluster up on $node ($cpus CPUs)" >&2; exit 0; fi
  # A node left down by an earlier run (or that registered before the controller) is resumed.
  scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
  sleep 0.3
done
tail -5 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
fail "slurmctld/slurmd did not come up (logs above)"
