package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"tunelab/static"
	"tunelab/store"
	"tunelab/views"
)

// analyticsDays is the window of the admin analytics page.
const analyticsDays = 30

// showAdminAnalytics is the admin analytics page: views per day (uPlot) and the top tables.
func (a *app) showAdminAnalytics(w http.ResponseWriter, r *http.Request) {
	rep, err := a.store.Analytics(r.Context(), analyticsDays)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	v := views.AdminAnalytics{Days: analyticsDays, GeoIPLoaded: a.geo.Loaded()}
	chart := struct {
		Days     []int64 `json:"days"`
		Views    []int64 `json:"views"`
		Visitors []int64 `json:"visitors"`
	}{}
	var views_, visitors int64
	for i, d := range rep.Views {
		day, _ := time.Parse(time.DateOnly, d.Day)
		chart.Days = append(chart.Days, day.Unix())
		chart.Views = append(chart.Views, d.Count)
		chart.Visitors = append(chart.Visitors, rep.Visitors[i].Count)
		views_ += d.Count
		visitors += rep.Visitors[i].Count
	}
	b, err := json.Marshal(chart)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	v.ChartJSON, v.TotalViews, v.Visitors = string(b), strconv.FormatInt(views_, 10), strconv.FormatInt(visitors, 10)
	v.Pages = countRows(rep.Pages, nil)
	v.Referrers = countRows(rep.Referrers, nil)
	v.Devices = countRows(rep.Devices, nil)
	v.Countries = countRows(rep.Countries, countryLabel)
	v.Clicks = countRows(rep.Clicks, nil)
	v.Scroll = countRows(rep.Scroll, func(k string) string { return k + "%" })
	p := a.page(r, "Analytics", "admin")
	p.AnalyticsCharts = static.Path("js/analytics-chart.js")
	a.render(w, r, http.StatusOK, p, views.AdminAnalyticsPage(v))
}

func countRows(counts []store.Count, label func(string) string) []views.CountRow {
	var total int64
	for _, c := range counts {
		total += c.Count
	}
	out := make([]views.CountRow, 0, len(counts))
	for _, c := range counts {
		key := c.Key
		if label != nil {
			key = label(key)
		}
		out = append(out, views.CountRow{Key: key, Count: strconv.FormatInt(c.Count, 10), Share: fmt.Sprintf("%d%%", (c.Count*100+total/2)/max(total, 1))})
	}
	return out
}
