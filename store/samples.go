package store

import (
	"embed"
	"io/fs"
)

//go:embed samples/*.jsonl
var sampleFiles embed.FS

// Sample is a small dataset shipped with tunelab, so a new person can try a run at once.
type Sample struct {
	Format DatasetFormat
	Name   string // shown as the dataset name
	About  string // one line on what it teaches
	file   string
}

// Samples lists the shipped datasets, one per format.
var Samples = []Sample{
	{FormatChat, "Capitals and sums", "Short question-and-answer chats about capital cities and small additions.", "samples/chat.jsonl"},
	{FormatCompletion, "English–French words", "Prompt/completion pairs translating single words, and numbers written in words.", "samples/completion.jsonl"},
	{FormatPreference, "Helpful support replies", "Support questions with a helpful chosen reply and a curt rejected one, for DPO.", "samples/preference.jsonl"},
}

// Open returns the sample's JSONL content.
func (s Sample) Open() (fs.File, error) { return sampleFiles.Open(s.file) }
