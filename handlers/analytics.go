package handlers

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"tunelab/static"
	"tunelab/store"
)

// beaconsPerMinute caps analytics events per client address (a page sends about three), so
// one consenting client cannot flood the table.
const beaconsPerMinute = 120

func analyticsScript() string { return static.Path("js/analytics.js") }

// visitorSalt is the daily salt of visitor ids. It lives only in memory and is replaced at
// each UTC midnight, so yesterday's ids cannot be linked to today's, nor rebuilt after a restart.
type visitorSalt struct {
	mu   sync.Mutex
	day  string
	salt [32]byte
}

// visitor is hash(daily salt, user agent, IP): the same person on one day, nothing more.
// The IP goes into the hash and is then dropped.
func (v *visitorSalt) visitor(now time.Time, userAgent, ip string) string {
	v.mu.Lock()
	if day := now.UTC().Format(time.DateOnly); day != v.day {
		v.day = day
		rand.Read(v.salt[:])
	}
	h := sha256.New()
	h.Write(v.salt[:])
	v.mu.Unlock()
	h.Write([]byte(userAgent))
	h.Write([]byte{0})
	h.Write([]byte(ip))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// analyticsBeacon is what static/js/analytics.js sends.
type analyticsBeacon struct {
	Kind     string `json:"k"`
	Path     string `json:"p"`
	Referrer string `json:"r"`
	Target   string `json:"t"`
	Depth    int    `json:"d"`
}

var (
	trackName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	idSegment = regexp.MustCompile(`/[0-9]+(/|$)`)
)

// analyticsPath keeps the path's shape, not which item: /runs/42 is counted as /runs/:id.
func analyticsPath(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || len(p) > 256 {
		return "", false
	}
	for idSegment.MatchString(p) {
		p = idSegment.ReplaceAllString(p, "/:id$1")
	}
	return p, true
}

// referrerHost keeps only the host of a referrer from another site.
func referrerHost(raw, self string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || strings.EqualFold(u.Host, self) || (u.Scheme != "http" && u.Scheme != "https") {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// deviceType is a coarse class from the user agent.
func deviceType(ua string) string {
	switch {
	case strings.Contains(ua, "iPad") || strings.Contains(ua, "Tablet") || (strings.Contains(ua, "Android") && !strings.Contains(ua, "Mobile")):
		return "tablet"
	case strings.Contains(ua, "Mobi") || strings.Contains(ua, "iPhone"):
		return "phone"
	}
	return "desktop"
}

// recordAnalytics takes one beacon. Without analytics consent in the signed cookie (or with
// GPC and no explicit opt-in) it is refused with 403 and nothing is stored.
func (a *app) recordAnalytics(w http.ResponseWriter, r *http.Request) {
	c, ok := a.readConsentCookie(r)
	if !ok || !c.Analytics || (r.Header.Get("Sec-GPC") == "1" && c.Source == store.ConsentFromGPC) {
		http.Error(w, "no analytics consent", http.StatusForbidden)
		return
	}
	ip := a.clientIP(r)
	if blocked, wait := a.beacons.blocked(limitKey(ip)); blocked {
		w.Header().Set("Retry-After", retryAfter(wait))
		http.Error(w, "too many analytics events; wait a minute", http.StatusTooManyRequests)
		return
	}
	a.beacons.hit(limitKey(ip))
	var b analyticsBeacon
	if err := json.NewDecoder(io.LimitReader(r.Body, 2048)).Decode(&b); err != nil {
		http.Error(w, "the event must be a JSON object", http.StatusBadRequest)
		return
	}
	path, ok := analyticsPath(b.Path)
	e := store.AnalyticsEvent{Kind: b.Kind, Path: path}
	switch {
	case !ok:
		http.Error(w, "p must be a path on this site", http.StatusBadRequest)
		return
	case b.Kind == store.AnalyticsView:
		e.Referrer = referrerHost(b.Referrer, r.Host)
	case b.Kind == store.AnalyticsClick && trackName.MatchString(b.Target):
		e.Target = b.Target
	case b.Kind == store.AnalyticsScroll && b.Depth >= 0 && b.Depth <= 100:
		e.Depth = b.Depth
	default:
		http.Error(w, "k must be view, click (with a data-track name in t) or scroll (with d from 0 to 100)", http.StatusBadRequest)
		return
	}
	e.Visitor = a.salt.visitor(a.now(), r.UserAgent(), ip)
	e.Device = deviceType(r.UserAgent())
	e.Country = a.geo.Country(ip)
	if err := a.store.RecordAnalytics(r.Context(), e); err != nil {
		a.log.ErrorContext(r.Context(), "record analytics", "err", err)
		http.Error(w, "not recorded", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
