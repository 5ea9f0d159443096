#!/usr/bin/env bash
# Prints the path of a small node_modules folder holding the official openai Node SDK at the
# pinned version, installing it first when missing (a few seconds, a few MB). Like
# openai-env.sh it lives outside the checkout, keyed by the pin, made under a lock and
# reused. Used by TestOpenAINodeSDK. Install output goes to stderr; stdout is only the path
# of the folder that holds node_modules (run node with NODE_PATH=<it>/node_modules).
set -euo pipefail
pin="openai@7.59.0"
cache="${TUNELAB_PYENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tunelab}"
dir="$cache/node-${pin/@/-}"
if [ -f "$dir/.complete" ]; then
  echo "$dir"
  exit 0
fi
command -v npm >/dev/null || { echo "npm is not installed" >&2; exit 1; }
mkdir -p "$cache"
exec 9>"$cache/.openai-node.lock"
flock 9
if [ -f "$dir/.complete" ]; then
  echo "$dir"
  exit 0
fi
tmp="$cache/.openai-node.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
echo '{"name":"tunelab-openai-node","private":true}' >"$tmp/package.json"
npm install --prefix "$tmp" --no-audit --no-fund --no-save --loglevel=error "$pin" >&2
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
