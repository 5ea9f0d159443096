package handlers

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"tunelab/store"
)

// Uploads below are shaped as the SDKs send them (recorded from their source):
// openai-python's files.create sends multipart/form-data with the data fields first
// ("purpose") and then the "file" part; openai-node builds the form from the body object in
// the caller's order, so `{file, purpose}` puts the file first. Lists pass after, limit,
// order and purpose as query parameters; the next page is after=<last id> while has_more.

// openaiUpload posts a file the way the SDKs do; fileFirst is openai-node's usual order.
func (ts *testServer) openaiUpload(key, purpose, filename, content string, fileFirst bool) response {
	ts.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	writeFile := func() {
		if filename != "" {
			fw, _ := mw.CreateFormFile("file", filename)
			fw.Write([]byte(content))
		}
	}
	if fileFirst {
		writeFile()
	}
	if purpose != "" {
		mw.WriteField("purpose", purpose)
	}
	if !fileFirst {
		writeFile()
	}
	mw.Close()
	return ts.workerCall("POST", "/v1/files", key, &body, map[string]string{"Content-Type": mw.FormDataContentType()})
}

func decodeFile(t *testing.T, r response) openaiFile {
	t.Helper()
	var f openaiFile
	if r.status != 200 || json.Unmarshal([]byte(r.body), &f) != nil || f.Object != "file" {
		t.Fatalf("not a file: %d %s", r.status, r.body)
	}
	return f
}

type listPage[T any] struct {
	Object  string `json:"object"`
	Data    []T    `json:"data"`
	HasMore bool   `json:"has_more"`
}

func TestOpenAIFilesUploadListContentDelete(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("files@example.com")
	key := ts.makeAPIKey(c, "k", "")
	rows := completionLines(12)

	// Both field orders are read (the file is spooled before it is validated).
	first := decodeFile(t, ts.openaiUpload(key, "fine-tune", "train.jsonl", rows, true))
	second := decodeFile(t, ts.openaiUpload(key, "fine-tune", "valid.jsonl", completionLines(11), false))
	if first.Filename != "train.jsonl" || first.Purpose != "fine-tune" || first.Bytes != int64(len(rows)) || first.Status != "processed" ||
		!regexp.MustCompile(`^file-\d+$`).MatchString(first.ID) || first.CreatedAt == 0 || first.ExpiresAt != nil {
		t.Fatalf("file: %+v", first)
	}
	// The same datasets are on the Datasets page.
	if page := ts.do(c, "GET", "/datasets", nil, nil); !strings.Contains(page.body, "train.jsonl") || !strings.Contains(page.body, "valid.jsonl") {
		t.Fatalf("the uploaded files are not on the Datasets page")
	}
	// A dataset uploaded on the page is a file too.
	ts.datasetFor(c, completionLines(10))

	// Pages: newest first, after the last id while has_more.
	var p1, p2 listPage[openaiFile]
	ts.apiGet(key, "/v1/files?limit=2", &p1)
	ts.apiGet(key, "/v1/files?limit=2&after="+p1.Data[1].ID, &p2)
	if p1.Object != "list" || len(p1.Data) != 2 || !p1.HasMore || p1.Data[1].ID != second.ID || len(p2.Data) != 1 || p2.HasMore || p2.Data[0].ID != first.ID {
		t.Fatalf("pages: %+v then %+v", p1, p2)
	}
	var asc listPage[openaiFile]
	ts.apiGet(key, "/v1/files?order=asc&purpose=fine-tune", &asc)
	if len(asc.Data) != 3 || asc.Data[0].ID != first.ID {
		t.Fatalf("ascending: %+v", asc)
	}
	var none listPage[openaiFile]
	if ts.apiGet(key, "/v1/files?purpose=batch", &none); len(none.Data) != 0 {
		t.Fatalf("purpose batch listed files: %+v", none)
	}

	if got := decodeFile(t, ts.apiGet(key, "/v1/files/"+first.ID, nil)); got != first {
		t.Fatalf("retrieve: %+v", got)
	}
	content := ts.apiGet(key, "/v1/files/"+first.ID+"/content", nil)
	if content.status != 200 || content.body != rows {
		t.Fatalf("content: %d %q", content.status, content.body)
	}
	del := ts.workerCall("DELETE", "/v1/files/"+first.ID, key, nil, nil)
	if del.status != 200 || del.body != `{"deleted":true,"id":"`+first.ID+`","object":"file"}`+"\n" {
		t.Fatalf("delete: %d %s", del.status, del.body)
	}
	if r := ts.apiGet(key, "/v1/files/"+first.ID, nil); r.status != 404 || *openaiErrorOf(t, r).Param != "id" {
		t.Fatalf("deleted file: %d %s", r.status, r.body)
	}
	if page := ts.do(c, "GET", "/datasets", nil, nil); strings.Contains(page.body, "train.jsonl") {
		t.Fatal("the deleted file is still on the Datasets page")
	}

	// Another person's file is a 404 everywhere, like one that does not exist.
	other := ts.makeAPIKey(ts.signUp("other-files@example.com"), "k", "")
	denied := ts.eventCount(store.EventAuthzDenied)
	for _, r := range []response{ts.apiGet(other, "/v1/files/"+second.ID, nil), ts.apiGet(other, "/v1/files/"+second.ID+"/content", nil),
		ts.workerCall("DELETE", "/v1/files/"+second.ID, other, nil, nil), ts.apiGet(other, "/v1/files/nonsense", nil)} {
		if e := openaiErrorOf(t, r); r.status != 404 || e.Type != "invalid_request_error" {
			t.Fatalf("another person's file: %d %s", r.status, r.body)
		}
	}
	if got := ts.eventCount(store.EventAuthzDenied); got != denied+3 { // the three tries at an existing file
		t.Fatalf("authorization denials recorded: %d, want %d", got, denied+3)
	}
	var theirs listPage[openaiFile]
	if ts.apiGet(other, "/v1/files", &theirs); len(theirs.Data) != 0 {
		t.Fatalf("another person's files listed: %+v", theirs)
	}
	if r := ts.apiGet(key, "/v1/files?limit=0", nil); r.status != 400 || *openaiErrorOf(t, r).Param != "limit" {
		t.Fatalf("limit 0: %d %s", r.status, r.body)
	}

	// A revoked key is a 401 in OpenAI's shape.
	keys := ts.do(c, "GET", "/settings/api-keys", nil, nil)
	revoke := regexp.MustCompile(`action="(/settings/api-keys/\d+/revoke)"`).FindStringSubmatch(keys.body)
	if revoke == nil || ts.do(c, "POST", revoke[1], nil, nil).status != http.StatusSeeOther {
		t.Fatal("could not revoke the key")
	}
	if r := ts.apiGet(key, "/v1/files", nil); r.status != 401 || *openaiErrorOf(t, r).Code != "invalid_api_key" {
		t.Fatalf("revoked key: %d %s", r.status, r.body)
	}
}

func TestOpenAIFilesRefuseBadUploadsAndKeepNothing(t *testing.T) {
	ts := newTestServer(t, Config{DatasetQuotaBytes: 4000})
	c := ts.signUp("bad-files@example.com")
	key := ts.makeAPIKey(c, "k", "")
	before := ts.vaultFiles()

	bad := `{"prompt":"a","completion":"b"}` + "\n" + `{"prompt":"a"` + "\n"
	r := ts.openaiUpload(key, "fine-tune", "bad.jsonl", bad, false)
	if e := openaiErrorOf(t, r); r.status != 400 || *e.Param != "file" || e.Type != "invalid_request_error" || !strings.Contains(e.Message, "line 2") {
		t.Fatalf("bad line: %d %s", r.status, r.body)
	}
	for _, tc := range []struct{ purpose, filename, param, says string }{
		{"assistants", "x.jsonl", "purpose", "fine-tune"},
		{"", "x.jsonl", "purpose", "purpose"},
		{"fine-tune", "", "file", "file"},
	} {
		r := ts.openaiUpload(key, tc.purpose, tc.filename, completionLines(10), true)
		if e := openaiErrorOf(t, r); r.status != 400 || *e.Param != tc.param || !strings.Contains(e.Message, tc.says) {
			t.Fatalf("%+v: %d %s", tc, r.status, r.body)
		}
	}
	// Not multipart at all.
	if r := ts.openaiPost(key, "/v1/files", `{"purpose":"fine-tune"}`); r.status != 400 || openaiErrorOf(t, r).Type != "invalid_request_error" {
		t.Fatalf("JSON body: %d %s", r.status, r.body)
	}
	// Over the dataset quota: refused, saying what to do.
	r = ts.openaiUpload(key, "fine-tune", "big.jsonl", completionLines(200), false)
	if e := openaiErrorOf(t, r); r.status != 400 || *e.Code != "quota_exceeded" || !strings.Contains(e.Message, "quota") {
		t.Fatalf("over quota: %d %s", r.status, r.body)
	}
	var list listPage[openaiFile]
	if ts.apiGet(key, "/v1/files", &list); len(list.Data) != 0 || ts.vaultFiles() != before {
		t.Fatalf("a refused upload left something: %+v, %d files (was %d)", list, ts.vaultFiles(), before)
	}
}

func TestOpenAIFilesRefuseAFileOverTheUploadCap(t *testing.T) {
	ts := newTestServer(t, Config{MaxUploadBytes: 1000})
	key := ts.makeAPIKey(ts.signUp("big-files@example.com"), "k", "")
	before := ts.vaultFiles()
	// Past the body's cap (the file plus 1 MiB for the form): refused while reading.
	r := ts.openaiUpload(key, "fine-tune", "big.jsonl", completionLines(30000), false)
	if e := openaiErrorOf(t, r); r.status != 413 || *e.Code != "file_too_large" || !strings.Contains(e.Message, "TUNELAB_MAX_UPLOAD_MB") {
		t.Fatalf("too large: %d %s", r.status, r.body)
	}
	// Within the body's slack but past the cap: refused while validating.
	r = ts.openaiUpload(key, "fine-tune", "big.jsonl", completionLines(30), false)
	if e := openaiErrorOf(t, r); r.status != 413 || *e.Code != "file_too_large" {
		t.Fatalf("past the cap: %d %s", r.status, r.body)
	}
	if ts.vaultFiles() != before {
		t.Fatal("a refused upload left a file")
	}
}
