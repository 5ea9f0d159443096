#!/usr/bin/env bash
# Prints the path of a Python virtualenv holding trainer/python/requirements.txt, creating
# it first when missing. The venv lives outside the checkout, in
# ${TUNELAB_PYENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tunelab}/pyenv-<first 16 hex of the
# requirements' sha256>, so every clone and every test run reuses it until the pins change.
# Install progress goes to stderr; stdout is only the venv path.
# Usage: PY="$(scripts/python-env.sh)/bin/python"
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
req="$root/trainer/python/requirements.txt"
hash="$(sha256sum "$req" | cut -c1-16)"
cache="${TUNELAB_PYENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tunelab}"
venv="$cache/pyenv-$hash"
if [ -f "$venv/.complete" ]; then
  echo "$venv"
  exit 0
fi
python="${TUNELAB_PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 10) else 1)' 2>/dev/null; then
  echo "python-env: $python is missing or older than 3.10; set TUNELAB_PYTHON to a Python 3.10+" >&2
  exit 1
fi
mkdir -p "$cache"
# One creator at a time (two test runs may start together); the second reuses the first's.
exec 9>"$cache/.pyenv-$hash.lock"
flock 9
if [ -f "$venv/.complete" ]; then
  echo "$venv"
  exit 0
fi
# Build in a temp folder and move it into place at the end, so an interrupted install
# never leaves a half-filled venv that later runs would trust.
tmp="$cache/.pyenv-$hash.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "python-env: creating $venv (first time only; torch with its CUDA libraries is several GB)" >&2
start=$(date +%s)
"$python" -m venv "$tmp" >&2
"$tmp/bin/python" -m pip install --quiet --no-input --upgrade pip >&2
"$tmp/bin/python" -m pip install --no-input --progress-bar off -r "$req" >&2
rm -rf "$venv"
mv "$tmp" "$venv"
trap - EXIT
# venvs hard-code their own path in scripts: rewrite the temp path to the final one.
grep -rlF "$tmp" "$venv/bin" 2>/dev/null | xargs -r sed -i "s#$tmp#$venv#g"
touch "$venv/.complete"
echo "python-env: ready in $(( $(date +%s) - start )) s, $(du -sh "$venv" | cut -f1) on disk" >&2
echo "$venv"
