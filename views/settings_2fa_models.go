package views

// TwoFactor is the two-factor sign-in page of Settings.
type TwoFactor struct {
	Enabled      bool
	Pending      bool     // enrolment started: the QR code and manual key are shown
	ManualKey    string   // the seed in base32, in groups of four, while pending
	QRPath       string   // our own route serving the QR code PNG
	RecoveryLeft int      // unused recovery codes
	NewCodes     []string // recovery codes just made: shown this once
	Notice       string
	FormError    string
	// Errors beside the fields of the form that was sent (Form names it).
	Form          string // "begin", "confirm", "regenerate", "disable"
	PasswordError string
	CodeError     string
}

// SignInCode is the second step of signing in: a code from the app or a recovery code.
type SignInCode struct {
	Error string
}
