package store

import (
	"context"
	"errors"
	"testing"
)

func TestPlaygroundHistoryKeepsTheNewest50PerPerson(t *testing.T) {
	f := newCloseFixture(t)
	ctx := context.Background()
	a, _ := f.s.CreateUser(ctx, NewUser{Email: "a@example.com", Password: "playground pass 1", TermsVersion: "v"})
	b, _ := f.s.CreateUser(ctx, NewUser{Email: "b@example.com", Password: "playground pass 1", TermsVersion: "v"})
	var first, last PlaygroundPrompt
	for i := range PlaygroundHistoryLimit + 3 {
		p, err := f.s.SavePlaygroundPrompt(ctx, PlaygroundPrompt{UserID: a.ID, Mode: "completion", Prompt: "hi",
			ModelA: "base:tunelab/byte-mlp-small", Temperature: 0.7, TopP: 0.9, MaxTokens: 64, Stop: []string{"\n", "User:"}, Seed: int64(i)})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = p
		}
		last = p
	}
	list, err := f.s.PlaygroundPrompts(ctx, a.ID)
	if err != nil || len(list) != PlaygroundHistoryLimit || list[0].ID != last.ID {
		t.Fatalf("history: %d rows, err %v", len(list), err)
	}
	if got := list[0]; len(got.Stop) != 2 || got.Stop[1] != "User:" || got.Seed != PlaygroundHistoryLimit+2 {
		t.Fatalf("round trip: %+v", got)
	}
	if _, err := f.s.PlaygroundPromptByID(ctx, a.ID, first.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the oldest prompt should be gone: %v", err)
	}
	if _, err := f.s.PlaygroundPromptByID(ctx, b.ID, last.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another person's prompt: %v", err)
	}
	if list, _ := f.s.PlaygroundPrompts(ctx, b.ID); len(list) != 0 {
		t.Fatalf("b sees %d prompts", len(list))
	}
}
