package handlers

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"

	"tunelab/store"
)

// /v1/files (docs/openai.md): a file is a dataset. Uploads go through the same validation
// as the Datasets page (store.CreateDataset): a bad line is a 400 that names it, and nothing
// is kept unless the whole file is valid. Ids are "file-<dataset id>"; the same datasets
// are listed on the Datasets page, and a dataset uploaded there is a file here.

const filePurpose = "fine-tune"

// openaiFile is a file as OpenAI describes it.
type openaiFile struct {
	ID            string  `json:"id"`
	Object        string  `json:"object"`
	Bytes         int64   `json:"bytes"`
	CreatedAt     int64   `json:"created_at"`
	Filename      string  `json:"filename"`
	Purpose       string  `json:"purpose"`
	Status        string  `json:"status"`
	StatusDetails *string `json:"status_details"`
	ExpiresAt     *int64  `json:"expires_at"`
}

func fileID(datasetID int64) string { return "file-" + strconv.FormatInt(datasetID, 10) }

// parseFileID reads "file-<n>"; ok is false for anything else.
func parseFileID(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "file-"), 10, 64)
	return n, err == nil && n > 0 && strings.HasPrefix(s, "file-")
}

func openaiFileJSON(d store.Dataset) openaiFile {
	return openaiFile{ID: fileID(d.ID), Object: "file", Bytes: d.SizeBytes, CreatedAt: d.CreatedAt.Unix(),
		Filename: d.Name, Purpose: filePurpose, Status: "processed"}
}

func openaiFileNotFound(w http.ResponseWriter, id string) {
	openaiError(w, http.StatusNotFound, "invalid_request_error", "id", "", "No such File object: "+id)
}

// openaiUploadMemory is how much of a multipart upload is held in memory; the rest is
// spooled to a temporary file that net/http removes when the request ends.
const openaiUploadMemory = 1 << 20

// openaiCreateFile answers POST /v1/files: multipart with "file" and "purpose" in any
// order (the Node SDK sends them in the caller's order), so the form is read whole first.
func (a *app) openaiCreateFile(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxUploadBytes+1<<20)
	if err := r.ParseMultipartForm(openaiUploadMemory); err != nil {
		if tooBig := new(http.MaxBytesError); errors.As(err, &tooBig) {
			a.openaiFileTooLarge(w)
			return
		}
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "", "",
			"Send the file as multipart/form-data with the fields file (a JSONL file) and purpose (fine-tune).")
		return
	}
	purpose := r.PostFormValue("purpose")
	switch {
	case purpose == "":
		openaiBadParam(w, "purpose", "You must provide a purpose: fine-tune.")
		return
	case purpose != filePurpose:
		openaiBadParam(w, "purpose", fmt.Sprintf("%q is not a purpose this server accepts: files here are training data, so purpose must be fine-tune.", purpose))
		return
	}
	for k := range r.MultipartForm.Value {
		if strings.HasPrefix(k, "expires_after") {
			openaiBadParam(w, "expires_after", "Files here do not expire; leave expires_after out and delete the file with DELETE /v1/files/{file_id} when you no longer need it.")
			return
		}
	}
	fhs := r.MultipartForm.File["file"]
	if len(fhs) != 1 {
		openaiBadParam(w, "file", "You must provide exactly one file: a JSONL file of training rows.")
		return
	}
	f, err := fhs[0].Open()
	if err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	defer f.Close()
	d, err := a.store.CreateDataset(r.Context(), a.vault, store.NewDataset{UserID: apiUser(r), Name: uploadName(fhs[0]),
		Content: f, MaxSize: a.cfg.MaxUploadBytes, QuotaBytes: a.cfg.DatasetQuotaBytes})
	var invalid *store.DatasetInvalidError
	var quota *store.QuotaError
	switch {
	case errors.As(err, &invalid):
		openaiBadParam(w, "file", invalidFileMessage(invalid.Report))
	case errors.As(err, &quota):
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "file", "quota_exceeded", datasetQuotaMessage(quota))
	case errors.Is(err, store.ErrDatasetTooLarge):
		a.openaiFileTooLarge(w)
	case err != nil:
		a.openaiServerError(w, r, err)
	default:
		writeJSON(w, http.StatusOK, openaiFileJSON(d))
	}
}

// uploadName is the dataset's name: the uploaded file's base name, a label only.
func uploadName(fh *multipart.FileHeader) string {
	return strings.Trim(filepath.Base(strings.ReplaceAll(fh.Filename, "\\", "/")), "/")
}

func (a *app) openaiFileTooLarge(w http.ResponseWriter) {
	openaiError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "file", "file_too_large",
		fmt.Sprintf("The file is larger than the %s limit. Split it, or ask the operator to raise TUNELAB_MAX_UPLOAD_MB.", formatBytes(a.cfg.MaxUploadBytes)))
}

// invalidFileMessage lists the first problems of a refused file, each naming its line.
func invalidFileMessage(rep store.DatasetReport) string {
	var b strings.Builder
	b.WriteString("The file was not saved: fix these lines and upload it again. ")
	for i, p := range rep.Errors {
		if i == maxShownProblems {
			fmt.Fprintf(&b, " (and %d more)", len(rep.Errors)-i)
			break
		}
		if i > 0 {
			b.WriteString(" ")
		}
		msg := p.String()
		b.WriteString(msg)
		if !strings.HasSuffix(msg, ".") {
			b.WriteString(".")
		}
	}
	return b.String()
}

// openaiListFiles answers GET /v1/files with OpenAI's cursor parameters: after (a file
// id), limit (1 to 10000, default 10000), order (desc by default), purpose.
func (a *app) openaiListFiles(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, ok := openaiLimit(w, r, 10000, 10000)
	if !ok {
		return
	}
	order := q.Get("order")
	if order != "" && order != "asc" && order != "desc" {
		openaiBadParam(w, "order", "order must be asc or desc.")
		return
	}
	var after int64
	if v := q.Get("after"); v != "" {
		if after, ok = parseFileID(v); !ok {
			openaiBadParam(w, "after", "after must be the id of a file from a previous page.")
			return
		}
	}
	out := []openaiFile{}
	more := false
	if p := q.Get("purpose"); p == "" || p == filePurpose { // every file here is for fine-tuning
		ds, m, err := a.store.DatasetsAfter(r.Context(), apiUser(r), after, order == "asc", limit)
		if err != nil {
			a.openaiServerError(w, r, err)
			return
		}
		for _, d := range ds {
			out = append(out, openaiFileJSON(d))
		}
		more = m
	}
	writeList(w, out, more)
}

// writeList writes an OpenAI cursor page; first_id and last_id as the API adds them.
func writeList[T any](w http.ResponseWriter, data []T, more bool) {
	body := map[string]any{"object": "list", "data": data, "has_more": more, "first_id": nil, "last_id": nil}
	if len(data) > 0 {
		body["first_id"], body["last_id"] = listID(data[0]), listID(data[len(data)-1])
	}
	writeJSON(w, http.StatusOK, body)
}

// listID is the id of a list item (every item type of the API has one).
func listID(v any) string {
	switch x := v.(type) {
	case openaiFile:
		return x.ID
	case openaiJob:
		return x.ID
	case openaiJobEvent:
		return x.ID
	case openaiCheckpoint:
		return x.ID
	}
	return ""
}

// openaiLimit reads ?limit= from 1 to most, def when absent.
func openaiLimit(w http.ResponseWriter, r *http.Request, def, most int) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		openaiBadParam(w, "limit", fmt.Sprintf("limit must be a whole number from 1 to %d.", most))
		return 0, false
	}
	return n, true
}

// openaiFileByPath loads the key owner's file named by {file_id}: 404 for anyone else's.
func (a *app) openaiFileByPath(w http.ResponseWriter, r *http.Request) (store.Dataset, bool) {
	raw := r.PathValue("file_id")
	id, ok := parseFileID(raw)
	if !ok {
		openaiFileNotFound(w, raw)
		return store.Dataset{}, false
	}
	d, err := a.store.Dataset(r.Context(), apiUser(r), id)
	if errors.Is(err, store.ErrNotFound) {
		if other, err := a.store.DatasetByID(r.Context(), id); err == nil && other.UserID != apiUser(r) {
			a.recordEvent(r, store.EventAuthzDenied, apiUser(r), fmt.Sprintf("dataset %d (API)", id))
		}
		openaiFileNotFound(w, raw)
		return store.Dataset{}, false
	}
	if err != nil {
		a.openaiServerError(w, r, err)
		return store.Dataset{}, false
	}
	return d, true
}

func (a *app) openaiShowFile(w http.ResponseWriter, r *http.Request) {
	if d, ok := a.openaiFileByPath(w, r); ok {
		writeJSON(w, http.StatusOK, openaiFileJSON(d))
	}
}

// openaiFileContent streams the file's bytes as uploaded, decrypted from the vault.
func (a *app) openaiFileContent(w http.ResponseWriter, r *http.Request) {
	d, ok := a.openaiFileByPath(w, r)
	if !ok {
		return
	}
	f, err := a.vault.Open(d.FileID)
	if err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(d.SizeBytes, 10))
	w.Header().Set(noCompressHeader, "1") // the length is the stored size
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, f); err != nil {
		a.log.WarnContext(r.Context(), "openai file content", "dataset", d.ID, "err", err)
	}
}

// openaiDeleteFile deletes the dataset as the Datasets page does (runs that trained on it
// keep their record; the bytes go with the next purge).
func (a *app) openaiDeleteFile(w http.ResponseWriter, r *http.Request) {
	d, ok := a.openaiFileByPath(w, r)
	if !ok {
		return
	}
	if err := a.store.DeleteDataset(r.Context(), d.UserID, d.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		a.openaiServerError(w, r, err)
		return
	}
	a.recordEvent(r, store.EventDatasetDeleted, d.UserID, fmt.Sprintf("dataset %d", d.ID))
	a.audit(r, store.AuditDatasetDeleted, d.UserID, d.UserID, fmt.Sprintf("dataset %d", d.ID))
	writeJSON(w, http.StatusOK, map[string]any{"id": fileID(d.ID), "object": "file", "deleted": true})
}
