package geoip_test

import (
	"os"
	"testing"

	"tunelab/geoip"
)

// With TUNELAB_GEOIP_TEST_DB naming the database `go tool task geoip` fetched, the real
// npm build (country_code layout) resolves well-known addresses.
func TestRealDatabase(t *testing.T) {
	path := os.Getenv("TUNELAB_GEOIP_TEST_DB")
	if path == "" {
		t.Skip("TUNELAB_GEOIP_TEST_DB not set: the real database is checked only when fetched")
	}
	db, ok, err := geoip.Open(path)
	if err != nil || !ok {
		t.Fatalf("open %s: ok %v err %v", path, ok, err)
	}
	defer db.Close()
	for ip, want := range map[string]string{"8.8.8.8": "US", "2001:4860:4860::8888": "US", "127.0.0.1": ""} {
		if got := db.Country(ip); got != want {
			t.Errorf("Country(%s) = %q, want %q", ip, got, want)
		}
	}
}
