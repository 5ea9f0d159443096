package views

// AuditRow is one audit-log entry in words (handlers compute them).
type AuditRow struct {
	When    string
	Action  string // "Run deleted"
	Target  string // "run 40"
	Actor   string // who did it: "You", an email, "the server", "account 12 (closed)"
	Subject string // whose data (admin view only)
}

// CloseAccount is the close-account page.
type CloseAccount struct {
	TwoFactorOn   bool
	PasswordError string
	CodeError     string
	FormError     string
	ReopenDays    int    // 14
	PurgeDays     int    // 90
	Subscription  string // "" or what happens to it: "Your Pro subscription ends on 3 January 2027 and is not renewed."
	Kept          []KeptRecord
}

// KeptRecord is something kept after an account is purged, and why.
type KeptRecord struct {
	What, Why string
}

// AccountClosed is the page after closing, and the sign-in offer to reopen.
type AccountClosed struct {
	ReopenUntil string // "13 December 2026, 14:00 UTC"
	Reopen      bool   // the person signed in again: offer the reopen button
	FormError   string
}

// ExportPage is the data-export page.
type ExportPage struct {
	TwoFactorOn   bool
	PasswordError string
	CodeError     string
	FormError     string
	Notice        string
	// The newest export, if any.
	Has      bool
	Building bool   // queued or building: the page polls the status
	Progress int    // percent
	Status   string // in words: "Being built", "Ready: the link is in your mail", …
	Tone     string // badge tone
	Detail   string // "The link works until 6 December 2026, 14:00 UTC."
	CanAsk   bool   // no export in the last day
	NextAt   string // when the next may be asked for
}

// ExportDownload is the page the mailed export link opens.
type ExportDownload struct {
	Action  string // the link itself, posted to download
	Size    string // "2.4 MB"
	Created string // when it was built
	Expires string // when the file is deleted
}

// MailExportReady is the content of the "your export is ready" mail.
type MailExportReady struct {
	Link    string
	Expires string
	Size    string
}
