package trainer

import (
	"fmt"
	"strconv"
)

// BaseModel is a model the CPU trainer can fine-tune, as a run form offers
// it. Size fixes the shapes Train builds (Config.ContextChars, EmbedDim,
// HiddenDim).
type BaseModel struct {
	ID, Name, About string
	Size            ModelSize
}

// BaseModels is the catalogue of the built-in CPU trainer, smallest first.
var BaseModels = []BaseModel{
	newBaseModel("tunelab/byte-mlp-small", "Byte MLP small", ModelSize{Context: 16, Embed: 16, Hidden: 128},
		"the quickest to train; good for trying the platform out"),
	newBaseModel("tunelab/byte-mlp-base", "Byte MLP base", ModelSize{Context: 24, Embed: 24, Hidden: 256},
		"about three times the size of small: slower, and it fits longer patterns better"),
}

// BaseModelByID finds a model of the catalogue.
func BaseModelByID(id string) (BaseModel, bool) {
	for _, m := range BaseModels {
		if m.ID == id {
			return m, true
		}
	}
	return BaseModel{}, false
}

// Parameters counts the weights of a full model of this size; lora adapters
// come on top of it.
func (s ModelSize) Parameters() int {
	return VocabSize*s.Embed + s.Hidden*s.in() + s.Hidden + VocabSize*s.Hidden + VocabSize
}

// newBaseModel writes Name and About from the real sizes, so the numbers a
// person reads on the form are the ones that train.
func newBaseModel(id, name string, size ModelSize, fit string) BaseModel {
	params := size.Parameters()
	return BaseModel{
		ID:   id,
		Name: fmt.Sprintf("%s (%s parameters)", name, roundedCount(params)),
		About: fmt.Sprintf("A tiny byte-level language model with %s parameters that reads the last %d bytes of text "+
			"to predict the next one. It starts from random weights, so it knows only what your dataset teaches it. "+
			"It trains on this server's CPU, no GPU needed; %s.", groupedCount(params), size.Context, fit),
		Size: size,
	}
}

// roundedCount writes 219929 as "220k".
func roundedCount(n int) string {
	if n < 1000 {
		return strconv.Itoa(n)
	}
	return strconv.Itoa((n+500)/1000) + "k"
}

// groupedCount writes 219929 as "219,929".
func groupedCount(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
