package geoip_test

import (
	"os"
	"path/filepath"
	"testing"

	"tunelab/geoip"
	"tunelab/geoip/geoiptest"
)

// Both record layouts resolve: MaxMind's country.iso_code and the npm builds' country_code.
// The networks are documentation (RFC 5737, RFC 3849) and private (RFC 1918) ranges.
func TestCountryBothLayouts(t *testing.T) {
	nets := map[string]string{"192.0.2.0/24": "DE", "198.51.100.0/24": "JP", "10.0.0.0/8": "FR", "2001:db8::/32": "BR"}
	for _, layout := range []geoiptest.Layout{geoiptest.MaxMindLayout, geoiptest.NPMLayout} {
		path := filepath.Join(t.TempDir(), "country.mmdb")
		if err := geoiptest.WriteTestDB(path, layout, nets); err != nil {
			t.Fatal(err)
		}
		db, ok, err := geoip.Open(path)
		if err != nil || !ok {
			t.Fatalf("layout %d: open: ok %v err %v", layout, ok, err)
		}
		for ip, want := range map[string]string{
			"192.0.2.10": "DE", "198.51.100.7": "JP", "10.1.2.3": "FR", "2001:db8::1": "BR",
			"::ffff:192.0.2.10": "DE", "203.0.113.5": "", "not an ip": "", "": "",
		} {
			if got := db.Country(ip); got != want {
				t.Errorf("layout %d: Country(%q) = %q, want %q", layout, ip, got, want)
			}
		}
		db.Close()
	}
}

// A missing database means every country is unknown; it is not an error and nothing is fetched.
func TestMissingDatabaseIsUnknown(t *testing.T) {
	for _, path := range []string{"", filepath.Join(t.TempDir(), "absent.mmdb")} {
		db, ok, err := geoip.Open(path)
		if err != nil || ok {
			t.Fatalf("Open(%q): ok %v err %v", path, ok, err)
		}
		if got := db.Country("192.0.2.10"); got != "" {
			t.Errorf("no database: Country = %q", got)
		}
	}
	var nilDB *geoip.DB
	if nilDB.Country("192.0.2.10") != "" {
		t.Error("a nil DB knows a country")
	}
}

// A file that is not an mmdb is an error the operator sees at start-up.
func TestCorruptDatabaseIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.mmdb")
	os.WriteFile(path, []byte("not a database"), 0o644)
	if _, _, err := geoip.Open(path); err == nil {
		t.Fatal("a corrupt database opened without error")
	}
}
