package handlers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"tunelab/gpu"
	"tunelab/store"
	"tunelab/trainer/protocol"
)

// The playground picks a live GPU deployment and streams its answer through the
// deployment's inference server, which gets the prompt as an OpenAI request with the serve
// key; a stopped deployment cannot be picked and says why; another person's is 404.
func TestPlaygroundStreamsThroughAGPUDeployment(t *testing.T) {
	ts := newTestServerRuns(t, Config{}, nil, func(r *Runs, _ *store.Store, _ func() time.Time) { r.Backend = gpuOfferBackend{} })
	ctx := context.Background()
	c := ts.signUp("play-deploy@example.com")
	uid := mustUserID(t, ts, c)
	zipBody := append([]byte("PK\x03\x04"), bytes.Repeat([]byte("adapter"), 50)...)
	sid := ts.storedSnapshot(t, c, "Qwen/Qwen2.5-0.5B", zipBody, "application/zip")
	sn, _ := ts.store.PlaygroundSnapshotByID(ctx, uid, sid)
	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/snapshots/%d/deploy", sn.RunID, sid), nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("deploy: %d", r.status)
	}
	deps, _ := ts.store.Deployments(ctx, uid)
	d := deps[0]
	token, hash := gpu.NewRunToken()
	ts.store.SetDeploymentToken(ctx, d.ID, hash)
	var job protocol.ServeJob
	wantAnswer(t, "job", ts.workerCall("GET", fmt.Sprintf("%s%d/job", protocol.DeployPathPrefix, d.ID), token, nil, nil), http.StatusOK, &job)
	var got []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, r.URL.Path+" "+r.Header.Get("Authorization")+" "+string(b))
		w.Header().Set("Content-Type", "text/event-stream")
		for _, piece := range []string{`{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
			`{"choices":[{"index":0,"delta":{"content":"Paris <is>"},"finish_reason":null}]}`,
			`{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}`} {
			fmt.Fprintf(w, "data: %s\n\n", piece)
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer upstream.Close()
	ts.workerCall("POST", fmt.Sprintf("%s%d/heartbeat", protocol.DeployPathPrefix, d.ID), token,
		strings.NewReader(fmt.Sprintf(`{"url":%q,"healthy":true,"detail":""}`, upstream.URL)), nil)

	ref := fmt.Sprintf("deployment:%d", d.ID)
	page := ts.do(c, "GET", "/playground", nil, nil)
	if !strings.Contains(page.body, fmt.Sprintf(`value="%s"`, ref)) || strings.Contains(page.body, `data-testid="playground-needs-deployment"`) {
		t.Fatalf("the deployment is not offered:\n%s", page.body)
	}
	v := playgroundValues(ref)
	v.Set("mode", "chat")
	v.Set("system", "Be brief.")
	v.Set("prompt", "Capital of France?")
	v.Set("stop", "###")
	r := ts.do(c, "POST", "/playground", v, nil)
	loc := runLocation.FindStringSubmatch(r.header.Get("Location"))
	if r.status != http.StatusSeeOther || loc == nil {
		t.Fatalf("generate: %d %s", r.status, r.body)
	}
	stream := ts.do(c, "GET", fmt.Sprintf("/playground/%s/stream/a", loc[1]), nil, nil)
	if !strings.Contains(stream.body, "data: <span>Paris &lt;is&gt;</span>") || !strings.Contains(stream.body, "Reached max tokens") ||
		!strings.Contains(stream.body, "on "+d.Name) || !strings.HasSuffix(stream.body, "event: done\ndata: {}\n\n") {
		t.Fatalf("stream:\n%s", stream.body)
	}
	want := regexp.MustCompile(`^/v1/chat/completions Bearer ` + job.APIKey + ` \{.*"messages":\[\{"content":"Be brief.","role":"system"\},\{"content":"Capital of France\?","role":"user"\}\].*"model":"` + d.Name + `".*"stop":\["###"\].*"stream":true`)
	if len(got) != 1 || !want.MatchString(got[0]) {
		t.Fatalf("the inference server got %q", got)
	}

	if again := ts.do(c, "GET", "/playground?run="+loc[1], nil, nil); !strings.Contains(again.body, "laid out by the model&#39;s own chat template") {
		t.Fatal("the page shows the built-in model's chat layout for a deployment")
	}

	// Another person's deployment: 404 on the stream, refused in the form.
	o := ts.signUp("play-other@example.com")
	if r := ts.do(o, "GET", "/playground?a="+ref, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("another person's deployment in ?a=: %d", r.status)
	}
	if r := ts.do(o, "GET", fmt.Sprintf("/playground/%s/stream/a", loc[1]), nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("another person's stream: %d", r.status)
	}

	// Stopped: not offered, refused with the reason, and an earlier prompt says so.
	ts.do(c, "POST", fmt.Sprintf("/deployments/%d/stop", d.ID), nil, nil)
	if r := ts.do(c, "POST", "/playground", v, nil); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "That deployment has stopped") {
		t.Fatalf("a stopped deployment in the form: %d", r.status)
	}
	if again := ts.do(c, "GET", "/playground?run="+loc[1], nil, nil); !strings.Contains(again.body, "That deployment has stopped") {
		t.Fatal("an earlier prompt on a stopped deployment does not say so")
	}
}
