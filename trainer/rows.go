package trainer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
)

// Dataset formats, named as in the job spec.
const (
	FormatChat       = "chat"       // {"messages":[{"role":"user","content":"..."}, ...]}
	FormatCompletion = "completion" // {"prompt":"...","completion":"..."}
	FormatPreference = "preference" // {"prompt":"...","chosen":"...","rejected":"..."}
)

// Rows is a parsed dataset: Examples for chat and completion rows, Pairs for
// preference rows.
type Rows struct {
	Format   string
	Examples []Example
	Pairs    []Pair
}

// Len counts the rows.
func (r Rows) Len() int { return len(r.Examples) + len(r.Pairs) }

var utf8BOM = []byte("\xef\xbb\xbf")

// ParseRows reads a JSONL dataset in format. The server validated the file at
// upload, so this only guards against surprises: it skips blank lines,
// accepts a byte order mark and CRLF endings, and names the line of a row it
// cannot use. Chat rows become Examples through FlattenChat.
func ParseRows(r io.Reader, format string) (Rows, error) {
	parse, ok := rowParsers[format]
	if !ok {
		return Rows{}, fmt.Errorf("dataset: format %q is unknown; expected chat, completion or preference", format)
	}
	rows := Rows{Format: format}
	br := bufio.NewReaderSize(r, 64<<10)
	for line := 1; ; line++ {
		raw, err := br.ReadBytes('\n')
		if line == 1 {
			raw = bytes.TrimPrefix(raw, utf8BOM)
		}
		if raw = bytes.TrimSpace(raw); len(raw) > 0 {
			if perr := parse(&rows, raw); perr != nil {
				return Rows{}, fmt.Errorf("dataset line %d: %w", line, perr)
			}
		}
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return Rows{}, fmt.Errorf("dataset: read: %w", err)
		}
	}
}

var rowParsers = map[string]func(*Rows, []byte) error{
	FormatChat:       parseChatRow,
	FormatCompletion: parseCompletionRow,
	FormatPreference: parsePreferenceRow,
}

func parseChatRow(rows *Rows, raw []byte) error {
	var row struct {
		Messages []struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		} `json:"messages"`
	}
	if err := decodeRow(raw, &row); err != nil {
		return err
	}
	if len(row.Messages) == 0 {
		return errors.New(`a chat row needs a non-empty "messages" list`)
	}
	msgs := make([]Message, len(row.Messages))
	for i, m := range row.Messages {
		if m.Role == nil || m.Content == nil {
			return fmt.Errorf(`messages[%d] needs "role" and "content"`, i)
		}
		msgs[i] = Message{Role: *m.Role, Content: *m.Content}
	}
	rows.Examples = append(rows.Examples, FlattenChat(msgs))
	return nil
}

func parseCompletionRow(rows *Rows, raw []byte) error {
	var row struct {
		Prompt     *string `json:"prompt"`
		Completion *string `json:"completion"`
	}
	if err := decodeRow(raw, &row); err != nil {
		return err
	}
	if row.Prompt == nil || row.Completion == nil {
		return errors.New(`a completion row needs "prompt" and "completion"`)
	}
	rows.Examples = append(rows.Examples, Example{Prompt: *row.Prompt, Completion: *row.Completion})
	return nil
}

func parsePreferenceRow(rows *Rows, raw []byte) error {
	var row struct {
		Prompt   *string `json:"prompt"`
		Chosen   *string `json:"chosen"`
		Rejected *string `json:"rejected"`
	}
	if err := decodeRow(raw, &row); err != nil {
		return err
	}
	if row.Prompt == nil || row.Chosen == nil || row.Rejected == nil {
		return errors.New(`a preference row needs "prompt", "chosen" and "rejected"`)
	}
	rows.Pairs = append(rows.Pairs, Pair{Prompt: *row.Prompt, Chosen: *row.Chosen, Rejected: *row.Rejected})
	return nil
}

// decodeRow unmarshals one row, saying what is wrong in the dataset's terms
// rather than in Go's.
func decodeRow(raw []byte, v any) error {
	err := json.Unmarshal(raw, v)
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return errors.New("the line is JSON but not an object")
	case errors.As(err, &typeErr):
		return fmt.Errorf("%q is a %s where %s belongs", typeErr.Field, typeErr.Value, jsonKindOf(typeErr.Type))
	default:
		return fmt.Errorf("the line is not valid JSON (%v)", err)
	}
}

func jsonKindOf(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "text"
	case reflect.Slice:
		return "a list"
	case reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKindOf(t.Elem())
	}
	return t.Kind().String()
}
