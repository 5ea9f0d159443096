package trainer

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseRows(t *testing.T) {
	for _, tc := range []struct {
		name, format, jsonl string
		want                Rows
	}{
		{
			name:   "chat with BOM, CRLF and blank lines",
			format: FormatChat,
			jsonl: "\xef\xbb\xbf" + `{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}]}` + "\r\n" +
				"\r\n   \r\n" +
				`{"messages":[{"role":"user","content":"2+2?"},{"role":"assistant","content":"4"}]}` + "\r\n",
			want: Rows{Format: FormatChat, Examples: []Example{
				{Prompt: "System: Be brief.\nUser: Hi\nAssistant: ", Completion: "Hello"},
				{Prompt: "User: 2+2?\nAssistant: ", Completion: "4"},
			}},
		},
		{
			name:   "completion without a final newline",
			format: FormatCompletion,
			jsonl:  `{"prompt":"English: cat\nFrench:","completion":" chat"}` + "\n\n" + `{"prompt":"2+2=","completion":"4"}`,
			want: Rows{Format: FormatCompletion, Examples: []Example{
				{Prompt: "English: cat\nFrench:", Completion: " chat"}, {Prompt: "2+2=", Completion: "4"},
			}},
		},
		{
			name:   "preference with a BOM",
			format: FormatPreference,
			jsonl:  "\xef\xbb\xbf" + `{"prompt":"Hi","chosen":"Hello!","rejected":"What."}` + "\r\n",
			want:   Rows{Format: FormatPreference, Pairs: []Pair{{Prompt: "Hi", Chosen: "Hello!", Rejected: "What."}}},
		},
		{name: "empty", format: FormatCompletion, jsonl: "\n\r\n", want: Rows{Format: FormatCompletion}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRows(strings.NewReader(tc.jsonl), tc.format)
			if err != nil {
				t.Fatal(err)
			}
			if got.Format != tc.want.Format || !slices.Equal(got.Examples, tc.want.Examples) || !slices.Equal(got.Pairs, tc.want.Pairs) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
			if got.Len() != len(tc.want.Examples)+len(tc.want.Pairs) {
				t.Errorf("Len() = %d", got.Len())
			}
		})
	}
}

func TestParseRowsNamesTheBrokenLine(t *testing.T) {
	good := `{"prompt":"a","completion":"b"}`
	for _, tc := range []struct {
		name, format, jsonl, want string
	}{
		{"not JSON", FormatCompletion, good + "\n\n" + `{"prompt":"a",` + "\n", `dataset line 3: the line is not valid JSON`},
		{"not an object", FormatCompletion, good + "\n[1,2]\n", "dataset line 2: the line is JSON but not an object"},
		{"missing key", FormatCompletion, `{"prompt":"a"}`, `dataset line 1: a completion row needs "prompt" and "completion"`},
		{"wrong type", FormatPreference, `{"prompt":"a","chosen":1,"rejected":"c"}`, `dataset line 1: "chosen" is a number where text belongs`},
		{"no messages", FormatChat, `{"messages":[]}`, `dataset line 1: a chat row needs a non-empty "messages" list`},
		{"message without content", FormatChat, `{"messages":[{"role":"user"}]}`, `dataset line 1: messages[0] needs "role" and "content"`},
		{"unknown format", "yaml", good, `format "yaml" is unknown`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRows(strings.NewReader(tc.jsonl), tc.format)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseRowsPassesOnReadErrors(t *testing.T) {
	_, err := ParseRows(iotest.TimeoutReader(strings.NewReader(strings.Repeat(`{"prompt":"a","completion":"b"}`+"\n", 5000))), FormatCompletion)
	if !errors.Is(err, iotest.ErrTimeout) {
		t.Errorf("err = %v, want the reader's error", err)
	}
}
