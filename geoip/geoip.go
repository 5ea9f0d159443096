// Package geoip turns an IP address into a country code with a local GeoLite2-format
// database (.mmdb). It never reaches the network: without a database every answer is "".
package geoip

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"

	"github.com/oschwald/maxminddb-golang/v2"
)

// DB looks up countries. The zero value and nil answer "" (unknown) for every address.
type DB struct {
	r *maxminddb.Reader
}

// record accepts both layouts in use: MaxMind's {"country": {"iso_code": "US"}} and the
// {"country_code": "US"} of the ip-location-db builds published on npm.
type record struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	CountryCode string `maxminddb:"country_code"`
}

// Open reads the database at path. An empty path or a missing file gives a DB that knows
// no country (ok false), not an error; a file that is not a readable mmdb is an error.
func Open(path string) (db *DB, ok bool, err error) {
	if path == "" {
		return &DB{}, false, nil
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return &DB{}, false, nil
	}
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, false, fmt.Errorf("geoip: open %s: %w", path, err)
	}
	return &DB{r: r}, true, nil
}

// Country returns the ISO 3166-1 alpha-2 code of the address, or "" when the address is not
// an IP, is not in the database, or there is no database.
func (db *DB) Country(ip string) string {
	if db == nil || db.r == nil {
		return ""
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	var rec record
	if err := db.r.Lookup(addr.Unmap()).Decode(&rec); err != nil {
		return ""
	}
	if rec.Country.ISOCode != "" {
		return rec.Country.ISOCode
	}
	return rec.CountryCode
}

// Close releases the database file.
func (db *DB) Close() error {
	if db == nil || db.r == nil {
		return nil
	}
	return db.r.Close()
}

// Loaded reports whether a database is open.
func (db *DB) Loaded() bool { return db != nil && db.r != nil }
