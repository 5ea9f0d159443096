package handlers

import "net/http"

// htmx request and response headers (htmx 4).
const (
	hxRequest        = "HX-Request"
	hxBoosted        = "HX-Boosted"
	hxHistoryRestore = "HX-History-Restore-Request"
	hxRedirect       = "HX-Redirect"
	hxRetarget       = "HX-Retarget"
	hxReswap         = "HX-Reswap"
)

// isHTMX reports whether htmx sent the request.
func isHTMX(r *http.Request) bool { return r.Header.Get(hxRequest) == "true" }

// wantsFragment reports whether to answer with a bare fragment instead of a whole page:
// only for htmx requests that are not boosted navigations or history restores.
func wantsFragment(r *http.Request) bool {
	return isHTMX(r) && r.Header.Get(hxBoosted) != "true" && r.Header.Get(hxHistoryRestore) != "true"
}
