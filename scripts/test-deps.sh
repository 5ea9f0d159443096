#!/usr/bin/env bash
# Installs the Debian packages the tests use, when they are missing:
# chromium (browser tests). Under CI=true a failed install fails the run; elsewhere the
# browser tests skip with a loud message instead.
set -uo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
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
echo "test-deps: WARNING could not install ${need[*]}; browser tests will be SKIPPED" >&2
exit 0
