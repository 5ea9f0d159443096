package trainer

import (
	"fmt"
	"math/rand/v2"
)

// smallConfig is a model small enough for -race on 2 cores.
func smallConfig(method Method) Config {
	c := DefaultConfig()
	c.Method = method
	c.Epochs = 6
	c.LearningRate = 1e-2
	c.BatchSize = 8
	c.LoRARank = 4
	c.LoRAAlpha = 8
	c.MaxSeqLen = 64
	c.ContextChars = 6
	c.EmbedDim = 6
	c.HiddenDim = 24
	c.LogEvery = 5
	c.Seed = 7
	return c
}

// additionExamples is "Q: add 2 and 3\nA:" -> " 5" style rows.
func additionExamples(n int, seed uint64) []Example {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]Example, n)
	for i := range out {
		a, b := rng.IntN(10), rng.IntN(10)
		out[i] = Example{Prompt: fmt.Sprintf("Q: add %d and %d\nA:", a, b), Completion: fmt.Sprintf(" %d", a+b)}
	}
	return out
}

// colourPairs prefers a polite answer to a curt one.
func colourPairs(n int) []Pair {
	colours := []string{"red", "blue", "green", "black", "white", "pink", "grey", "gold"}
	out := make([]Pair, n)
	for i := range out {
		c := colours[i%len(colours)]
		out[i] = Pair{Prompt: "Name a colour:", Chosen: " " + c + ", thanks", Rejected: " no"}
	}
	return out
}
