package views

import (
	"strings"
	"testing"
)

// Each outside party appears in "Who else handles it" exactly when it is configured, and
// "nobody" only when none is.
func TestLegalProcessorsFollowTheConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    Legal
		want []string
	}{
		{"none", Legal{Backend: "this server itself"}, []string{"legal-processors-none"}},
		{"mail", Legal{Backend: "b", MailRelay: true}, []string{"legal-processor-mail"}},
		{"sign-in", Legal{Backend: "b", Providers: "Google and GitHub"}, []string{"legal-processor-signin"}},
		{"stripe", Legal{Backend: "b", BillingOn: true}, []string{"legal-processor-stripe"}},
		{"all", Legal{Backend: "b", Provider: true, BillingOn: true, MailRelay: true, Providers: "GitHub"},
			[]string{"legal-provider", "legal-processor-stripe", "legal-processor-mail", "legal-processor-signin"}},
	} {
		doc := render(t, legalProcessors(tc.l))
		for _, id := range []string{"legal-processors-none", "legal-provider", "legal-processor-stripe", "legal-processor-mail", "legal-processor-signin"} {
			has := doc.Find(`[data-testid="`+id+`"]`).Length() > 0
			want := false
			for _, w := range tc.want {
				want = want || w == id
			}
			if has != want {
				t.Errorf("%s: %s shown = %v, want %v", tc.name, id, has, want)
			}
		}
		if text := doc.Text(); tc.l.Providers != "" && !strings.Contains(text, tc.l.Providers) {
			t.Errorf("%s: the providers are not named: %s", tc.name, text)
		}
	}
}
