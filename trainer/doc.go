// Package trainer is tunelab's built-in CPU trainer: a small character-level
// language model written in plain Go, with hand-written forward and backward
// passes, Adam, and three methods (full, lora, dpo). It exists so that a
// person without a GPU can watch a real fine-tuning run: the loss falls
// because weights really change, not because a curve is simulated.
//
// The model is a Bengio-style MLP: the embeddings of the previous
// ContextChars symbols are concatenated, pass through one tanh hidden layer,
// and a softmax over the vocabulary predicts the next symbol.
//
// Vocabulary: bytes, not characters. Symbols 0..255 are the bytes of the
// UTF-8 text, so any input works without building a vocabulary from the data
// and a snapshot stays valid for every dataset. Symbol 256 (EOS) pads the
// context before the first byte and ends every completion, so the model
// learns where to stop. A "character" in this package's docs is one byte.
//
// Only completion bytes (and the closing EOS) are predicted and scored; the
// prompt is context. For DPO the sequence log-probability is the sum over
// the response bytes and its EOS.
package trainer
