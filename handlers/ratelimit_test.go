package handlers

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiterSlidingWindow(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(3, time.Minute, func() time.Time { return now })
	for i := range 3 {
		if b, _ := l.blocked("k"); b {
			t.Fatalf("blocked after %d hits", i)
		}
		l.hit("k")
		now = now.Add(10 * time.Second)
	}
	b, wait := l.blocked("k")
	if !b || wait != 30*time.Second {
		t.Fatalf("blocked=%v wait=%v, want true 30s (until the first hit leaves the window)", b, wait)
	}
	if b, _ := l.blocked("other"); b {
		t.Fatal("keys are not independent")
	}
	now = now.Add(30 * time.Second)
	if b, _ := l.blocked("k"); b {
		t.Fatal("still blocked after the oldest hit left the window")
	}
	l.hit("k")
	l.reset("k")
	if b, _ := l.blocked("k"); b {
		t.Fatal("reset did not clear the key")
	}
}

func TestLimiterMemoryStaysBounded(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(5, time.Minute, func() time.Time { return now })
	for i := range 3 * maxLimiterKeys {
		l.hit(fmt.Sprint("ip-", i))
		if i%maxLimiterKeys == 0 {
			now = now.Add(2 * time.Minute) // earlier keys expire
		}
	}
	if n := len(l.hits); n > maxLimiterKeys+1 {
		t.Fatalf("%d keys held, bound is %d", n, maxLimiterKeys)
	}
}
