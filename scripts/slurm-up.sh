#!/usr/bin/env bash
# Starts a single-node Slurm on this machine for the slurm backend's tests (and for trying
# the backend by hand): munge, slurmctld and slurmd from the Debian packages, installed when
# missing, with one node "localhost" carrying one fake GPU (gres gpu:fake:1) in partition
# "debug". Everything lives in $TUNELAB_SLURM_DIR (default /tmp/tunelab-slurm); the config
# is there too, so point clients at it with SLURM_CONF=$TUNELAB_SLURM_DIR/slurm.conf (the
# script prints that line last). Needs root (or password-less sudo). Stop with
# scripts/slurm-down.sh. See ../shared/notes/slurm-single-node.md for what was measured.
set -euo pipefail
S="${TUNELAB_SLURM_DIR:-/tmp/tunelab-slurm}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo -n"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  echo "slurm-up: installing slurmctld, slurmd, slurm-client and munge (Debian packages, about 15 s)" >&2
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

mkdir -p "$S/state" "$S/spool" "$S/log"
export SLURM_CONF="$S/slurm.conf"
if [ -f "$S/slurmctld.pid" ] && kill -0 "$(cat "$S/slurmctld.pid")" 2>/dev/null && sinfo -h >/dev/null 2>&1; then
  echo "slurm-up: already running" >&2
  echo "SLURM_CONF=$SLURM_CONF"
  exit 0
fi

cat >"$S/slurm.conf" <<CONF
ClusterName=tunelabdev
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
SlurmctldPort=${TUNELAB_SLURM_CTLD_PORT:-16817}
SlurmdPort=${TUNELAB_SLURM_D_PORT:-16818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$S/log/jobcomp.txt
GresTypes=gpu
KillWait=5
MinJobAge=600
SchedulerParameters=sched_interval=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=1000 Gres=gpu:fake:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
cat >"$S/gres.conf" <<CONF
AutoDetect=off
NodeName=localhost Name=gpu Type=fake File=/dev/null
CONF

if ! pgrep -x munged >/dev/null; then
  $sudo mkdir -p /run/munge
  $sudo chown munge:munge /run/munge
  [ -f /etc/munge/munge.key ] || $sudo mungekey --create 2>/dev/null || $sudo /usr/sbin/create-munge-key -f
  $sudo runuser -u munge -- /usr/sbin/munged
  touch "$S/munged-started" # slurm-down.sh stops only the munged this script started
fi
$sudo env SLURM_CONF="$SLURM_CONF" slurmctld
$sudo env SLURM_CONF="$SLURM_CONF" slurmd -N localhost
for _ in $(seq 1 120); do
  state="$(sinfo -h -N -o %t 2>/dev/null || true)"
  [ "$state" = idle ] && break
  sleep 0.5
done
if [ "$(sinfo -h -N -o %t 2>/dev/null || true)" != idle ]; then
  echo "slurm-up: the node did not become idle; logs in $S/log" >&2
  tail -n 20 "$S/log/slurmctld.log" "$S/log/slurmd.log" >&2 || true
  exit 1
fi
echo "slurm-up: single-node Slurm is up (partition debug, 1 fake GPU)" >&2
echo "SLURM_CONF=$SLURM_CONF"
