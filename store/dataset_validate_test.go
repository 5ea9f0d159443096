package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/iotest"
)

func chatRow(i int) string {
	return fmt.Sprintf(`{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Question %d?"},{"role":"assistant","content":"Answer %d."}]}`, i, i)
}

func completionRow(i int) string {
	return fmt.Sprintf(`{"prompt":"Translate %d to French:","completion":" numéro %d"}`, i, i)
}

func preferenceRow(i int) string {
	return fmt.Sprintf(`{"prompt":"Say hi %d","chosen":"Hello!","rejected":"Go away."}`, i)
}

func rows(f func(int) string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// file joins ten good rows with the bad line placed as line 4.
func withBadLine(good func(int) string, bad string) string {
	r := rows(good, 10)
	r = append(r[:3], append([]string{bad}, r[3:]...)...)
	return strings.Join(r, "\n") + "\n"
}

func TestValidateDatasetAcceptsRealFiles(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		format DatasetFormat
		rows   int
	}{
		{"chat", strings.Join(rows(chatRow, 12), "\n"), FormatChat, 12},
		{"completion with trailing newline", strings.Join(rows(completionRow, 10), "\n") + "\n", FormatCompletion, 10},
		{"preference", strings.Join(rows(preferenceRow, 10), "\n"), FormatPreference, 10},
		{"BOM, CRLF and blank lines", "\xef\xbb\xbf" + strings.Join(rows(completionRow, 10), "\r\n\r\n") + "\r\n", FormatCompletion, 10},
		{"chat without system", strings.Repeat(`{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"},{"role":"assistant","content":"d"}]}`+"\n", 10), FormatChat, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := ValidateDataset(strings.NewReader(tc.body), DatasetLimits{})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Valid() || rep.Format != tc.format || rep.Rows != tc.rows || len(rep.RowTokens) != tc.rows {
				t.Fatalf("report = %+v", rep)
			}
			if rep.Tokens <= 0 || len(rep.Preview) != DefaultDatasetLimits.PreviewRows || strings.HasPrefix(rep.Preview[0], "\xef\xbb\xbf") {
				t.Fatalf("tokens %d preview %q", rep.Tokens, rep.Preview)
			}
		})
	}
}

func TestValidateDatasetNamesTheLineAndTheFix(t *testing.T) {
	cases := []struct {
		name string
		body string
		want string
	}{
		{"not JSON", withBadLine(completionRow, `{"prompt": "a", "completion": `), "line 4: the line is not valid JSON"},
		{"not an object", withBadLine(completionRow, `["prompt", "completion"]`), "line 4: the line is JSON but not an object"},
		{"null", withBadLine(completionRow, `null`), "line 4: the line is JSON but not an object"},
		{"number", withBadLine(completionRow, `42`), "line 4: the line is JSON but not an object"},
		{"no known keys", withBadLine(completionRow, `{"input":"a","output":"b"}`), `line 4: the keys "input", "output" match no format`},
		{"unknown key", withBadLine(completionRow, `{"prompt":"a","completion":"b","weight":2}`), `line 4: unknown key "weight"`},
		{"missing key", withBadLine(preferenceRow, `{"prompt":"a","chosen":"b"}`), `line 4: missing key "rejected"`},
		{"wrong type", withBadLine(completionRow, `{"prompt":"a","completion":7}`), "line 4: `completion` is a number; it must be a string."},
		{"empty content", withBadLine(completionRow, `{"prompt":"  ","completion":"b"}`), "line 4: `prompt` is empty"},
		{"mixed formats", withBadLine(completionRow, preferenceRow(1)), "line 4: this row is in preference format but the file started in completion format"},
		{"bad role", withBadLine(chatRow, `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"},{"role":"bot","content":"x"}]}`), "line 4: `messages[2].role` is \"bot\"; use system, user or assistant."},
		{"role not a string", withBadLine(chatRow, `{"messages":[{"role":1,"content":"hi"}]}`), "line 4: `messages[0].role` is a number"},
		{"message not an object", withBadLine(chatRow, `{"messages":["hi"]}`), "line 4: `messages[0]` is a string"},
		{"messages not a list", withBadLine(chatRow, `{"messages":"hi"}`), "line 4: `messages` is a string; it must be a list"},
		{"empty messages", withBadLine(chatRow, `{"messages":[]}`), "line 4: `messages` is empty"},
		{"unknown message key", withBadLine(chatRow, `{"messages":[{"role":"user","content":"a","name":"x"}]}`), `line 4: unknown key "name" in ` + "`messages[0]`"},
		{"missing content", withBadLine(chatRow, `{"messages":[{"role":"user"}]}`), "line 4: `messages[0]` has no \"content\""},
		{"empty message content", withBadLine(chatRow, `{"messages":[{"role":"user","content":""},{"role":"assistant","content":"b"}]}`), "line 4: `messages[0].content` is empty"},
		{"late system", withBadLine(chatRow, `{"messages":[{"role":"user","content":"a"},{"role":"system","content":"b"},{"role":"assistant","content":"c"}]}`), "line 4: `messages[1]` is a system message; only the first"},
		{"two users in a row", withBadLine(chatRow, `{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"assistant","content":"c"}]}`), "line 4: `messages[1]` is a second user message in a row"},
		{"assistant first", withBadLine(chatRow, `{"messages":[{"role":"assistant","content":"a"},{"role":"user","content":"b"}]}`), "line 4: `messages[0]` is an assistant message that does not answer"},
		{"no assistant turn", withBadLine(chatRow, `{"messages":[{"role":"system","content":"a"},{"role":"user","content":"b"}]}`), "line 4: there is no assistant message"},
		{"same chosen and rejected", withBadLine(preferenceRow, `{"prompt":"a","chosen":"b","rejected":"b"}`), "line 4: `chosen` and `rejected` are the same text"},
		{"invalid UTF-8", withBadLine(completionRow, "{\"prompt\":\"caf\xe9\",\"completion\":\"b\"}"), "line 4: the line is not valid UTF-8"},
		{"line too long", withBadLine(completionRow, `{"prompt":"`+strings.Repeat("a", 2000)+`","completion":"b"}`), "line 4: the line is longer than 1000 bytes"},
		{"too few rows", strings.Join(rows(completionRow, 3), "\n"), "the file has 3 rows; at least 10 are needed"},
		{"empty file", "\n\n", "the file has no rows"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := ValidateDataset(strings.NewReader(tc.body), DatasetLimits{MaxLineBytes: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Valid() {
				t.Fatalf("accepted: %+v", rep)
			}
			if got := rep.Errors[0].String(); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("first error = %q\nwant prefix  %q", got, tc.want)
			}
		})
	}
}

func TestValidateDatasetStopsAfterMaxErrorsAndKeepsCounting(t *testing.T) {
	body := strings.Repeat("not json\n", 500)
	rep, err := ValidateDataset(strings.NewReader(body), DatasetLimits{MaxErrors: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) != 5 || rep.Errors[4].Line != 5 {
		t.Fatalf("errors = %v", rep.Errors)
	}
	// A line far over the cap is skipped without being held whole; the next line is read.
	huge := `{"prompt":"` + strings.Repeat("x", 5<<20) + `","completion":"y"}`
	rep, err = ValidateDataset(strings.NewReader(huge+"\n"+strings.Join(rows(completionRow, 10), "\n")), DatasetLimits{MaxLineBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) != 1 || rep.Errors[0].Line != 1 || rep.Rows != 10 {
		t.Fatalf("report: %d rows, errors %v", rep.Rows, rep.Errors)
	}
}

func TestValidateDatasetReturnsReadErrors(t *testing.T) {
	boom := errors.New("connection reset")
	_, err := ValidateDataset(iotest.TimeoutReader(iotest.ErrReader(boom)), DatasetLimits{})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
}

func TestEstimateTokens(t *testing.T) {
	for s, want := range map[string]int{"": 0, "a": 1, "abcd": 1, "abcde": 2, "héllo": 2} {
		if got := EstimateTokens(s); got != want {
			t.Errorf("EstimateTokens(%q) = %d, want %d", s, got, want)
		}
	}
}

// FuzzValidateDataset: any input gives a report or a read error, never a panic, and a
// valid report always has the minimum number of rows and a format.
func FuzzValidateDataset(f *testing.F) {
	f.Add(strings.Join(rows(chatRow, 10), "\n"))
	f.Add(strings.Join(rows(preferenceRow, 10), "\r\n"))
	f.Add("\xef\xbb\xbf{\"prompt\":\"a\",\"completion\":\"b\"}\n")
	f.Add(`{"messages":[{"role":"user","content":"a"},null]}`)
	f.Fuzz(func(t *testing.T, body string) {
		rep, err := ValidateDataset(strings.NewReader(body), DatasetLimits{MinRows: 1, MaxLineBytes: 4096})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Valid() && (rep.Rows < 1 || rep.Format == "") {
			t.Fatalf("valid report without rows or format: %+v", rep)
		}
	})
}
