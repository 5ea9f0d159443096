#!/usr/bin/env bash
# Stops the single-node Slurm that scripts/slurm-up.sh started, and munged when that script
# started it.
set -uo pipefail
S="${TUNELAB_SLURM_DIR:-/tmp/tunelab-slurm}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo -n"
[ -f "$S/slurm.conf" ] || exit 0
SLURM_CONF="$S/slurm.conf" $sudo env SLURM_CONF="$S/slurm.conf" scontrol shutdown >/dev/null 2>&1 || true
stopped=""
for _ in $(seq 1 40); do
  if ! { [ -f "$S/slurmctld.pid" ] && kill -0 "$(cat "$S/slurmctld.pid")" 2>/dev/null; } &&
     ! { [ -f "$S/slurmd.pid" ] && kill -0 "$(cat "$S/slurmd.pid")" 2>/dev/null; }; then
    stopped=yes
    break
  fi
  sleep 0.25
done
if [ -f "$S/munged-started" ]; then
  $sudo runuser -u munge -- /usr/sbin/munged --stop >/dev/null 2>&1 || true
  rm -f "$S/munged-started"
fi
if [ -z "$stopped" ]; then
  echo "slurm-down: Slurm daemons still running after 10 s" >&2
  exit 1
fi
