#!/usr/bin/env bash
# Prints the path of a small Python virtualenv holding the official openai SDK at the pinned
# version, creating it first when missing (a few seconds, a few MB). Like python-env.sh it
# lives outside the checkout, keyed by the pin, and is reused. Used by
# TestOpenAISDKAgainstADeployment. Install output goes to stderr; stdout is only the path.
set -euo pipefail
pin="openai==3.57.0"
cache="${TUNELAB_PYENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tunelab}"
venv="$cache/openai-${pin#openai==}"
if [ -f "$venv/.complete" ]; then
  echo "$venv"
  exit 0
fi
python="${TUNELAB_PYTHON:-python3}"
mkdir -p "$cache"
exec 9>"$cache/.openai.lock"
flock 9
if [ -f "$venv/.complete" ]; then
  echo "$venv"
  exit 0
fi
tmp="$cache/.openai.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
"$python" -m venv "$tmp" >&2
"$tmp/bin/python" -m pip install --quiet --no-input --progress-bar off "$pin" >&2
touch "$tmp/.complete"
rm -rf "$venv"
mv "$tmp" "$venv"
trap - EXIT
echo "$venv"
