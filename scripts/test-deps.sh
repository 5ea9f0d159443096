#!/usr/bin/env bash
# Installs what the tests use, when it is missing: stripe-mock (the Go tool pinned in
# go.mod, built into the Go cache; billing tests start it themselves on free loopback
# ports), chromium (browser tests, a Debian package) and Slurm with munge (the slurm
# backend's tests start them with scripts/slurm-up.sh). Under CI=true a failure fails
# the run; elsewhere the tests that need it skip with a loud message instead.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! go tool -n stripe-mock >/dev/null; then
  if [ "${CI:-}" = "true" ]; then
    echo "test-deps: could not build stripe-mock (go tool -n stripe-mock); CI needs it" >&2
    exit 1
  fi
  echo "test-deps: WARNING could not build stripe-mock; billing tests will be SKIPPED" >&2
fi
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The slurm backend's tests start a single-node Slurm (scripts/slurm-up.sh) from these.
{ command -v slurmctld && command -v slurmd && command -v sbatch && command -v munged; } >/dev/null 2>&1 ||
  need+=(slurmctld slurmd slurm-client munge)
[ ${#need[@]} -eq 0 ] && exit 0

echo "test-deps: installing ${need[*]} (Debian packages; takes about a minute the first time)"
sudo=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo -n"
if $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; then
  echo "test-deps: installed ${need[*]}"
  exit 0
fi
if [ "${CI:-}" = "true" ]; then
  echo "test-deps: could not install ${need[*]}; CI needs them" >&2
  exit 1
fi
echo "test-deps: WARNING could not install ${need[*]}; browser tests (chromium) and Slurm tests (slurm*, munge) will be SKIPPED" >&2
exit 0
