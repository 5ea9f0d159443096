package trainer

import "strings"

// Vocabulary sizes; see the package comment for why bytes.
const (
	// EOS pads the context before the text and ends each completion.
	EOS = 256
	// VocabSize is the 256 byte values plus EOS.
	VocabSize = 257
)

// Example is one supervised row: the model learns Completion given Prompt.
type Example struct {
	Prompt, Completion string
}

// Pair is one preference row for DPO.
type Pair struct {
	Prompt, Chosen, Rejected string
}

// Message is one chat turn (role system, user or assistant).
type Message struct {
	Role, Content string
}

// TrainingData is what Train learns from: Examples for full and lora, Pairs
// for dpo. The Eval sets, when given, replace the hold-out split.
type TrainingData struct {
	Examples     []Example
	Pairs        []Pair
	EvalExamples []Example
	EvalPairs    []Pair
	// Base holds the starting weights; nil starts from a fresh model
	// initialised from Config.Seed and the model sizes.
	Base *Model
	// Init continues an earlier run: training starts from its snapshot's weights
	// (LoadInitSnapshot), adapters included, instead of Base or a fresh model.
	Init *InitWeights
}

// ChatPrompt renders turns with plain role markers and ends with the
// assistant marker, so the model's continuation is the assistant reply. The
// playground uses it to build prompts shaped like the training rows.
func ChatPrompt(msgs []Message) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(roleMarker(m.Role))
		b.WriteString(m.Content)
		b.WriteByte('\n')
	}
	b.WriteString(roleMarker("assistant"))
	return b.String()
}

func roleMarker(role string) string {
	switch role {
	case "system":
		return "System: "
	case "user":
		return "User: "
	case "assistant":
		return "Assistant: "
	}
	return role + ": "
}

// FlattenChat turns a conversation into an Example: the prompt is every turn
// before the last assistant turn (with role markers), the completion is that
// last assistant reply. Turns after it have nothing to learn from and are
// dropped. Without an assistant turn the completion is empty.
func FlattenChat(msgs []Message) Example {
	last := -1
	for i, m := range msgs {
		if m.Role == "assistant" {
			last = i
		}
	}
	if last < 0 {
		return Example{Prompt: ChatPrompt(msgs)}
	}
	return Example{Prompt: ChatPrompt(msgs[:last]), Completion: msgs[last].Content}
}

// sequence is an encoded row: tokens[start:] are the scored targets, each
// predicted from the symbols before it.
type sequence struct {
	tokens []int
	start  int
}

func (s sequence) targets() int { return len(s.tokens) - s.start }

// encode builds prompt+completion+EOS within maxLen symbols. The prompt is
// cut from the left first because the model only sees its last few bytes
// anyway; a completion longer than maxLen is cut at the end.
func encode(prompt, completion string, maxLen int) sequence {
	p, c := []byte(prompt), []byte(completion)
	if keep := maxLen - len(c) - 1; len(p) > keep {
		p = p[len(p)-max(keep, 0):]
	}
	toks := make([]int, 0, len(p)+len(c)+1)
	for _, b := range p {
		toks = append(toks, int(b))
	}
	for _, b := range c {
		toks = append(toks, int(b))
	}
	toks = append(toks, EOS)
	if len(toks) > maxLen {
		toks = toks[:maxLen]
	}
	return sequence{tokens: toks, start: len(p)}
}
