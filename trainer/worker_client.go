package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"tunelab/trainer/protocol"
)

// Backoff between retries of one request: it doubles from retryFirst up to
// retryMax, unless the server names its own wait in Retry-After.
const (
	retryFirst = 200 * time.Millisecond
	retryMax   = 5 * time.Second
	// jsonCallTimeout bounds one attempt of a small JSON request; streamed
	// datasets and snapshots have no such bound.
	jsonCallTimeout = 60 * time.Second
)

// client speaks the worker API for one run: it adds the bearer token, retries
// what the protocol says is safe to retry, and turns the server's error
// envelope into an *apiError. It never writes the token anywhere else.
type client struct {
	server   *url.URL
	base     string // server + /api/v1/worker/runs/{id}
	token    string
	http     *http.Client
	patience time.Duration
	note     func(format string, args ...any) // local lines for the operator

	mu          sync.Mutex
	lastSuccess time.Time
}

// apiError is a refusal from the server: {"error":{"code","message"}}.
type apiError struct {
	Status        int
	Code, Message string
}

func (e *apiError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code == "" {
		return fmt.Sprintf("the server answered %d: %s", e.Status, msg)
	}
	return fmt.Sprintf("the server answered %d %s: %s", e.Status, e.Code, msg)
}

// netError is a failure to reach the server or to read its answer.
type netError struct{ err error }

func (e *netError) Error() string { return "could not reach the server: " + e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

// retryable says whether the protocol allows sending the request again.
func retryable(err error) bool {
	var ne *netError
	var ae *apiError
	switch {
	case errors.As(err, &ne):
		return true
	case errors.As(err, &ae):
		return ae.Status == http.StatusTooManyRequests || ae.Status >= 500
	}
	return false
}

// endsRun says whether err means the server will accept nothing more for this
// run: the token is dead or foreign, or the run already ended. Finishing is
// pointless then.
func endsRun(err error) bool {
	var ae *apiError
	if !errors.As(err, &ae) {
		return false
	}
	return ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden ||
		(ae.Status == http.StatusConflict && ae.Code == protocol.CodeRunFinished)
}

// call is one request, built afresh for every attempt.
type call struct {
	what        string // for messages: "send metrics"
	method, url string
	body        func() io.Reader // nil: no body
	size        int64            // of body
	contentType string
	header      http.Header
	timeout     time.Duration              // per attempt; 0: none
	read        func(body io.Reader) error // consumes a 2xx answer; nil ignores it
}

func newClient(o WorkerOptions, note func(string, ...any)) (*client, error) {
	u, err := url.Parse(o.Server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("worker: server %q is not an http:// or https:// URL", o.Server)
	}
	if o.RunID <= 0 {
		return nil, fmt.Errorf("worker: run id must be a positive number, got %d", o.RunID)
	}
	if o.Token == "" || strings.ContainsFunc(o.Token, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return nil, errors.New("worker: the run token is missing or has characters a token cannot have")
	}
	hc := o.HTTPClient
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = 2 * time.Minute // a snapshot is hashed and stored before the answer
		hc = &http.Client{Transport: t}
	}
	patience := o.Patience
	if patience <= 0 {
		patience = 5 * time.Minute
	}
	return &client{
		server:      u,
		base:        strings.TrimRight(u.String(), "/") + "/api/v1/worker/runs/" + strconv.FormatInt(o.RunID, 10),
		token:       o.Token,
		http:        hc,
		patience:    patience,
		note:        note,
		lastSuccess: time.Now(),
	}, nil
}

// resolve turns a URL from the job spec into an absolute one on the server.
// The token goes only to the server the worker was started with.
func (c *client) resolve(ref string) (string, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("the job names a dataset URL %q that does not parse", ref)
	}
	u := c.server.ResolveReference(r)
	if u.Scheme != c.server.Scheme || u.Host != c.server.Host {
		return "", fmt.Errorf("the job names a dataset on %s, not on the server %s; the run token is not sent elsewhere", u.Host, c.server.Host)
	}
	return u.String(), nil
}

func (c *client) getJSON(ctx context.Context, what, path string, out any) error {
	return c.do(ctx, call{what: what, method: http.MethodGet, url: c.base + path, timeout: jsonCallTimeout, read: decodeInto(out)})
}

func (c *client) postJSON(ctx context.Context, what, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return c.do(ctx, call{
		what: what, method: http.MethodPost, url: c.base + path,
		body: func() io.Reader { return bytes.NewReader(b) }, size: int64(len(b)), contentType: "application/json",
		timeout: jsonCallTimeout, read: decodeInto(out),
	})
}

func decodeInto(out any) func(io.Reader) error {
	if out == nil {
		return nil
	}
	return func(r io.Reader) error {
		if err := json.NewDecoder(io.LimitReader(r, 4<<20)).Decode(out); err != nil {
			return fmt.Errorf("the server's answer is not the JSON expected: %w", err)
		}
		return nil
	}
}

// do sends k until it succeeds, the server refuses it for good, or the
// server has been unreachable for the patience: counted from the last
// success of any request, or from this request's first try when some other
// request succeeded since (so one endpoint that keeps failing gives up too).
func (c *client) do(ctx context.Context, k call) error {
	started := time.Now()
	wait := retryFirst
	for attempt := 1; ; attempt++ {
		retryAfter, err := c.once(ctx, k)
		if err == nil {
			c.mu.Lock()
			c.lastSuccess = time.Now()
			c.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", k.what, ctx.Err())
		}
		if !retryable(err) {
			return fmt.Errorf("%s: %w", k.what, err)
		}
		c.mu.Lock()
		deadline := min(c.lastSuccess.UnixNano(), started.UnixNano()) + int64(c.patience)
		c.mu.Unlock()
		left := time.Duration(deadline - time.Now().UnixNano())
		if left <= 0 {
			return fmt.Errorf("%s: gave up after %d tries over %s: %w", k.what, attempt, time.Since(started).Round(time.Second), err)
		}
		pause := wait
		if retryAfter > 0 {
			pause = retryAfter
		}
		pause = min(pause, left)
		c.note("%s: %v (trying again in %s)", k.what, err, pause.Round(time.Millisecond))
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", k.what, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, retryMax)
	}
}

// once makes one attempt. A failed attempt also returns the server's
// Retry-After, if it named one.
func (c *client) once(ctx context.Context, k call) (time.Duration, error) {
	if k.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, k.timeout)
		defer cancel()
	}
	var body io.Reader
	if k.body != nil {
		body = k.body()
	}
	req, err := http.NewRequestWithContext(ctx, k.method, k.url, body)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.ContentLength = k.size
		req.Header.Set("Content-Type", k.contentType)
	}
	for name, values := range k.header {
		req.Header[name] = values
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, &netError{err}
	}
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), readAPIError(resp)
	}
	if k.read == nil {
		return 0, nil
	}
	tracked := &trackedReader{r: resp.Body}
	if err := k.read(tracked); err != nil {
		if tracked.err != nil {
			return 0, &netError{tracked.err} // the answer broke off: worth another try
		}
		return 0, err
	}
	return 0, nil
}

// trackedReader remembers a read error other than EOF, so a body cut off by
// the network can be told apart from a body that is wrong.
type trackedReader struct {
	r   io.Reader
	err error
}

func (t *trackedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

func readAPIError(resp *http.Response) error {
	var env protocol.ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &apiError{Status: resp.StatusCode}
	if json.Unmarshal(b, &env) == nil {
		e.Code, e.Message = env.Error.Code, env.Error.Message
	}
	return e
}

// parseRetryAfter reads seconds or an HTTP date; 0 when absent or past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return time.Duration(min(max(s, 0), 24*60*60)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
