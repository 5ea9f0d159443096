package handlers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// One person may hold StreamsQuota live streams open; the next is refused with 429 and a
// message saying what to do, while another person's streams are unaffected, and closing
// a stream frees its place.
func TestLiveStreamsPerPersonAreCapped(t *testing.T) {
	ts := newTestServer(t, Config{StreamsQuota: 2})
	ada, bob := ts.signUp("ada@example.com"), ts.signUp("bob@example.com")
	adaRun := ts.startRun(ada, runValues(ts.datasetFor(ada, completionLines(20))))
	bobRun := ts.startRun(bob, runValues(ts.datasetFor(bob, completionLines(20))))

	open := func(c *http.Client, run int64) (*http.Response, func()) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/runs/%d/events?after=0", ts.URL, run), nil)
		resp, err := c.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		return resp, func() { cancel(); resp.Body.Close() }
	}
	_, close1 := open(ada, adaRun)
	defer close1()
	first, close2 := open(ada, adaRun)
	defer close2()
	if first.StatusCode != http.StatusOK {
		t.Fatalf("second stream: %d", first.StatusCode)
	}
	third, close3 := open(ada, adaRun)
	body, _ := io.ReadAll(third.Body)
	close3()
	if third.StatusCode != http.StatusTooManyRequests || third.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), "2 live run pages open") || !strings.Contains(string(body), "TUNELAB_QUOTA_STREAMS") {
		t.Fatalf("third stream: %d %q %q", third.StatusCode, third.Header.Get("Retry-After"), body)
	}
	// Another person is not affected by Ada's streams.
	other, closeOther := open(bob, bobRun)
	defer closeOther()
	if other.StatusCode != http.StatusOK {
		t.Fatalf("another person's stream: %d", other.StatusCode)
	}
	// Closing one of Ada's streams gives its place back (once the server sees it go).
	close2()
	deadline := time.Now().Add(10 * time.Second)
	for {
		again, closeAgain := open(ada, adaRun)
		status := again.StatusCode
		closeAgain()
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream's place never came back: %d", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
