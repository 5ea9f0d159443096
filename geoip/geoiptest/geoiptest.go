// Package geoiptest writes small GeoLite2-format databases for tests.
package geoiptest

import (
	"net"
	"os"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Layout names how a test database stores the country.
type Layout int

const (
	MaxMindLayout Layout = iota // {"country": {"iso_code": "US"}}
	NPMLayout                   // {"country_code": "US"}
)

// WriteTestDB writes a small mmdb mapping each network (CIDR) to a country code, for tests.
func WriteTestDB(path string, layout Layout, networks map[string]string) error {
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoIP2-Country", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		return err
	}
	for cidr, cc := range networks {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			return err
		}
		var v mmdbtype.Map
		if layout == NPMLayout {
			v = mmdbtype.Map{"country_code": mmdbtype.String(cc)}
		} else {
			v = mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(cc)}}
		}
		if err := w.Insert(n, v); err != nil {
			return err
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := w.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
