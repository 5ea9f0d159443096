package views

// Sessions is the list of a person's signed-in sessions.
type Sessions struct {
	Notice string
	Items  []SessionItem
}

// SessionItem is one signed-in session.
type SessionItem struct {
	ID        string
	Device    string // browser and operating system, read from the user agent
	UserAgent string
	IP        string
	LastSeen  string
	Created   string
	Current   bool
}
