#!/usr/bin/env bash
# Fails when a committed *_templ.go file does not match what its .templ source generates.
set -euo pipefail
cd "$(dirname "$0")/.."
stale=0
while IFS= read -r src; do
  gen="${src%.templ}_templ.go"
  if [ ! -f "$gen" ] || ! go tool templ generate -f "$src" -stdout 2>/dev/null | cmp -s - "$gen"; then
    echo "stale or missing: $gen (run: go tool task generate)" >&2
    stale=1
  fi
done < <(find views -name '*.templ' | sort)
exit "$stale"
