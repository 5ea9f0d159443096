package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"
)

// DatasetFormat is the shape of a dataset's rows, as stored in datasets.format.
type DatasetFormat string

// Dataset formats, detected from the keys of the first row.
const (
	FormatChat       DatasetFormat = "chat"       // {"messages":[{"role":"user","content":"..."}, ...]}
	FormatCompletion DatasetFormat = "completion" // {"prompt":"...","completion":"..."}
	FormatPreference DatasetFormat = "preference" // {"prompt":"...","chosen":"...","rejected":"..."} (DPO)
)

// DatasetFormats lists every format.
var DatasetFormats = []DatasetFormat{FormatChat, FormatCompletion, FormatPreference}

// DatasetLimits bound what an upload may contain.
type DatasetLimits struct {
	MaxLineBytes int // longest accepted line, in bytes
	MinRows      int // fewest rows worth training on
	MaxErrors    int // errors collected before giving up (the person sees these)
	PreviewRows  int // rows kept for the preview
}

// DefaultDatasetLimits are used when a field of DatasetLimits is zero.
var DefaultDatasetLimits = DatasetLimits{MaxLineBytes: 1 << 20, MinRows: 10, MaxErrors: 20, PreviewRows: 5}

// LineError is one problem, located by its 1-based line number (0: the file as a whole).
type LineError struct {
	Line int
	Msg  string
}

func (e LineError) String() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// DatasetReport is what validation learned about a file.
type DatasetReport struct {
	Format    DatasetFormat
	Rows      int
	Tokens    int64    // estimated tokens, see EstimateTokens
	RowTokens []int    // estimated tokens per row, for the length histogram
	Preview   []string // the first rows, as compact JSON
	Errors    []LineError
}

// Valid reports whether the file may be stored.
func (r DatasetReport) Valid() bool { return len(r.Errors) == 0 }

// EstimateTokens estimates the tokens of a text: one per 4 bytes of UTF-8, rounded up,
// the usual rule of thumb for English under BPE tokenizers. Chat messages add 4 tokens
// each for the role markers of chat templates.
func EstimateTokens(s string) int { return (len(s) + 3) / 4 }

var errTooManyErrors = errors.New("too many errors")

// ValidateDataset reads a JSONL dataset line by line and checks every row. It accepts a
// UTF-8 byte order mark, CRLF line endings, blank lines and a trailing newline. It never
// holds more than one line in memory. A read error from r is returned as an error; problems
// with the content are in the report.
func ValidateDataset(r io.Reader, lim DatasetLimits) (DatasetReport, error) {
	lim = lim.withDefaults()
	v := &datasetValidator{lim: lim}
	br := bufio.NewReaderSize(r, 64<<10)
	line := 0
	for {
		raw, tooLong, err := readLine(br, lim.MaxLineBytes)
		if len(raw) > 0 || tooLong || err == nil {
			line++
			if line == 1 {
				raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
			}
			raw = bytes.TrimSuffix(raw, []byte("\r"))
			if e := v.row(line, raw, tooLong); errors.Is(e, errTooManyErrors) {
				return v.report, nil
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return DatasetReport{}, fmt.Errorf("store: read dataset: %w", err)
		}
	}
	if v.report.Rows == 0 && len(v.report.Errors) == 0 {
		v.fail(0, "the file has no rows. Upload a JSONL file with one JSON object per line.")
	} else if v.report.Rows < lim.MinRows && len(v.report.Errors) == 0 {
		v.fail(0, fmt.Sprintf("the file has %d rows; at least %d are needed to train on. Add more examples.", v.report.Rows, lim.MinRows))
	}
	return v.report, nil
}

func (l DatasetLimits) withDefaults() DatasetLimits {
	d := DefaultDatasetLimits
	if l.MaxLineBytes > 0 {
		d.MaxLineBytes = l.MaxLineBytes
	}
	if l.MinRows > 0 {
		d.MinRows = l.MinRows
	}
	if l.MaxErrors > 0 {
		d.MaxErrors = l.MaxErrors
	}
	if l.PreviewRows > 0 {
		d.PreviewRows = l.PreviewRows
	}
	return d
}

// readLine returns the next line without its "\n". A line longer than max is skipped to
// its end and reported as tooLong, so a huge line never sits in memory.
func readLine(br *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > max+1 { // +1: the newline itself
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err != nil:
			return buf, tooLong, err
		default:
			return bytes.TrimSuffix(buf, []byte("\n")), tooLong, nil
		}
	}
}

type datasetValidator struct {
	lim    DatasetLimits
	report DatasetReport
}

func (v *datasetValidator) fail(line int, msg string) error {
	v.report.Errors = append(v.report.Errors, LineError{Line: line, Msg: msg})
	if len(v.report.Errors) >= v.lim.MaxErrors {
		return errTooManyErrors
	}
	return nil
}

var formatKeys = map[DatasetFormat][]string{
	FormatChat:       {"messages"},
	FormatCompletion: {"prompt", "completion"},
	FormatPreference: {"prompt", "chosen", "rejected"},
}

func (v *datasetValidator) row(line int, raw []byte, tooLong bool) error {
	if tooLong {
		return v.fail(line, fmt.Sprintf("the line is longer than %d bytes. Split the example or shorten it.", v.lim.MaxLineBytes))
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil // blank lines are allowed
	}
	if !utf8.Valid(raw) {
		return v.fail(line, "the line is not valid UTF-8 text. Save the file as UTF-8.")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) || bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			return v.fail(line, "the line is JSON but not an object. Each line must be one object like {\"prompt\": ..., \"completion\": ...}.")
		}
		return v.fail(line, "the line is not valid JSON ("+jsonProblem(err)+"). Each line must be one complete JSON object.")
	}
	if obj == nil {
		return v.fail(line, "the line is JSON but not an object. Each line must be one object like {\"prompt\": ..., \"completion\": ...}.")
	}
	format := detectFormat(obj)
	if v.report.Format != "" && keysWithin(obj, formatKeys[v.report.Format]) {
		format = v.report.Format // a row of the file's format with keys missing: say which
	}
	if format == "" {
		return v.fail(line, "the keys "+keyList(obj)+" match no format. Use \"messages\" (chat), \"prompt\" and \"completion\", or \"prompt\", \"chosen\" and \"rejected\" (preference).")
	}
	if v.report.Format == "" {
		v.report.Format = format
	} else if format != v.report.Format {
		return v.fail(line, fmt.Sprintf("this row is in %s format but the file started in %s format. Use one format per file.", format, v.report.Format))
	}
	for k := range obj {
		if !contains(formatKeys[format], k) {
			return v.fail(line, fmt.Sprintf("unknown key %q. A %s row has only %s.", k, format, quoteList(formatKeys[format])))
		}
	}
	tokens, msg := checkRow(format, obj)
	if msg != "" {
		return v.fail(line, msg)
	}
	v.report.Rows++
	v.report.Tokens += int64(tokens)
	v.report.RowTokens = append(v.report.RowTokens, tokens)
	if len(v.report.Preview) < v.lim.PreviewRows {
		var compact bytes.Buffer
		json.Compact(&compact, raw)
		v.report.Preview = append(v.report.Preview, compact.String())
	}
	return nil
}

func detectFormat(obj map[string]json.RawMessage) DatasetFormat {
	_, hasMessages := obj["messages"]
	_, hasPrompt := obj["prompt"]
	_, hasCompletion := obj["completion"]
	_, hasChosen := obj["chosen"]
	_, hasRejected := obj["rejected"]
	switch {
	case hasMessages:
		return FormatChat
	case hasChosen || hasRejected:
		return FormatPreference
	case hasPrompt || hasCompletion:
		return FormatCompletion
	}
	return ""
}

// checkRow checks the values of a row whose keys are known, and estimates its tokens.
func checkRow(format DatasetFormat, obj map[string]json.RawMessage) (int, string) {
	if format == FormatChat {
		return checkMessages(obj["messages"])
	}
	tokens := 0
	for _, k := range formatKeys[format] {
		raw, ok := obj[k]
		if !ok {
			return 0, fmt.Sprintf("missing key %q. A %s row needs %s.", k, format, quoteList(formatKeys[format]))
		}
		s, msg := nonEmptyString(k, raw)
		if msg != "" {
			return 0, msg
		}
		tokens += EstimateTokens(s)
	}
	if format == FormatPreference {
		var chosen, rejected string
		json.Unmarshal(obj["chosen"], &chosen)
		json.Unmarshal(obj["rejected"], &rejected)
		if chosen == rejected {
			return 0, "`chosen` and `rejected` are the same text, so there is no preference to learn. Make them differ."
		}
	}
	return tokens, ""
}

func nonEmptyString(path string, raw json.RawMessage) (string, string) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Sprintf("`%s` is %s; it must be a string.", path, jsonKind(raw))
	}
	if strings.TrimSpace(s) == "" {
		return "", fmt.Sprintf("`%s` is empty. Give it the text of the example.", path)
	}
	return s, ""
}

var roles = []string{"system", "user", "assistant"}

func checkMessages(raw json.RawMessage) (int, string) {
	var msgs []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msgs); err != nil {
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) == nil {
			for i, m := range list {
				if jsonKind(m) != "an object" {
					return 0, fmt.Sprintf("`messages[%d]` is %s; each message must be an object with \"role\" and \"content\".", i, jsonKind(m))
				}
			}
		}
		return 0, fmt.Sprintf("`messages` is %s; it must be a list of messages.", jsonKind(raw))
	}
	if len(msgs) == 0 {
		return 0, "`messages` is empty. Give at least a user message and an assistant reply."
	}
	tokens, assistant := 0, false
	prev := ""
	for i, m := range msgs {
		at := fmt.Sprintf("messages[%d]", i)
		if m == nil {
			return 0, fmt.Sprintf("`%s` is null; each message must be an object with \"role\" and \"content\".", at)
		}
		for k := range m {
			if k != "role" && k != "content" {
				return 0, fmt.Sprintf("unknown key %q in `%s`. A message has only \"role\" and \"content\".", k, at)
			}
		}
		for _, k := range []string{"role", "content"} {
			if _, ok := m[k]; !ok {
				return 0, fmt.Sprintf("`%s` has no %q.", at, k)
			}
		}
		var role string
		if err := json.Unmarshal(m["role"], &role); err != nil {
			return 0, fmt.Sprintf("`%s.role` is %s; use \"system\", \"user\" or \"assistant\".", at, jsonKind(m["role"]))
		}
		if !contains(roles, role) {
			return 0, fmt.Sprintf("`%s.role` is %q; use system, user or assistant.", at, role)
		}
		content, msg := nonEmptyString(at+".content", m["content"])
		if msg != "" {
			return 0, msg
		}
		switch {
		case role == "system" && i != 0:
			return 0, fmt.Sprintf("`%s` is a system message; only the first message may be one.", at)
		case role == "user" && prev == "user":
			return 0, fmt.Sprintf("`%s` is a second user message in a row; user and assistant messages must alternate.", at)
		case role == "assistant" && prev != "user":
			return 0, fmt.Sprintf("`%s` is an assistant message that does not answer a user message; put a user message before it.", at)
		}
		prev = role
		assistant = assistant || role == "assistant"
		tokens += EstimateTokens(content) + 4
	}
	if !assistant {
		return 0, "there is no assistant message, so there is nothing to learn from. Add the reply the model should give."
	}
	return tokens, ""
}

func jsonKind(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "missing"
	}
	switch t[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at character %d", strings.TrimPrefix(se.Error(), "invalid character "), se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "unexpected end") {
		return "it ends before the object is closed"
	}
	return err.Error()
}

func keyList(obj map[string]json.RawMessage) string {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return "(none)"
	}
	return quoteList(keys)
}

func quoteList(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = fmt.Sprintf("%q", k)
	}
	return strings.Join(q, ", ")
}

func keysWithin(obj map[string]json.RawMessage, allowed []string) bool {
	for k := range obj {
		if !contains(allowed, k) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
