package views

// ConsentBanner is the first-visit cookie banner.
type ConsentBanner struct {
	Return    string // local path the choice goes back to
	GPCNotice bool   // the browser sent Global Privacy Control: analytics were refused for it, say so
}

// CookieChoice is the visitor's current choice on the cookie settings page.
type CookieChoice struct {
	Decided   bool
	Analytics bool
	GPC       bool   // this request carries Sec-GPC: 1
	Summary   string // the state in one sentence
	When      string // when it was chosen, "" when not chosen
	Until     string // when the banner asks again
	Saved     bool   // the page follows a save
	SignedIn  bool   // the choice is also kept with the account
}
