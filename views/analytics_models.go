package views

// AdminAnalytics is the admin analytics page.
type AdminAnalytics struct {
	Days        int
	TotalViews  string
	Visitors    string // distinct daily visitors, summed over the days
	ChartJSON   string // {"days":[unix seconds...],"views":[...],"visitors":[...]} for uPlot
	Pages       []CountRow
	Referrers   []CountRow
	Devices     []CountRow
	Countries   []CountRow
	Clicks      []CountRow
	Scroll      []CountRow
	GeoIPLoaded bool // a country database is loaded; without one every country is "unknown"
}

// CountRow is one line of a top-N table.
type CountRow struct {
	Key   string
	Count string
	Share string // "42%" of the table's total
}

// AdminSecurity is the admin security review.
type AdminSecurity struct {
	Filter     SecurityFilterForm
	Kinds      []KindOption
	Events     []SecurityEventRow
	ByAccount  []FailureRow
	ByIP       []FailureRow
	NewCountry []SecurityEventRow
	Accounts   []AccountRow
}

// SecurityFilterForm is what the filter form was sent with, and what is wrong with it.
type SecurityFilterForm struct {
	Email, IP, Kind, From, To string
	Error                     string
}

// KindOption is one event kind in the filter's select.
type KindOption struct {
	Value    string
	Label    string
	Selected bool
}

// FailureRow is failures of one account or address, linking to its events.
type FailureRow struct {
	Key   string
	Count string
	Last  string
	Href  string
}

// AccountRow is an account with its suspend or unsuspend action.
type AccountRow struct {
	ID        string
	Email     string
	IsAdmin   bool
	Self      bool // the admin looking: no suspend button
	Suspended bool
	Since     string
}
