package handlers

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"tunelab/store"
	"tunelab/views"
)

// seqLenChoices are the max sequence lengths the dataset page can measure rows against;
// they match store.LengthBuckets, so the share shown is exact.
var seqLenChoices = []int{256, 512, 1024, 2048, 4096}

const defaultSeqLen = 512

// formatTones give each dataset format its own badge tone, the same on every screen.
var formatTones = map[store.DatasetFormat]string{
	store.FormatChat:       "accent",
	store.FormatCompletion: "success",
	store.FormatPreference: "warn",
}

// formatTone is a dataset format's badge tone (components.BadgeProps.Tone).
func formatTone(f store.DatasetFormat) string {
	if t, ok := formatTones[f]; ok {
		return t
	}
	return "success"
}

// datasetsPerPage is how many datasets one page of the list shows.
const datasetsPerPage = 50

// maxShownProblems is how many validation errors the upload form lists.
const maxShownProblems = 10

func (a *app) uploadForm() views.UploadForm {
	return views.UploadForm{MaxSize: formatBytes(a.cfg.MaxUploadBytes)}
}

func (a *app) listDatasets(w http.ResponseWriter, r *http.Request) {
	a.renderDatasets(w, r, http.StatusOK, a.uploadForm())
}

func (a *app) renderDatasets(w http.ResponseWriter, r *http.Request, status int, form views.UploadForm) {
	u, _ := userFrom(r.Context())
	q := r.URL.Query()
	before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
	after, _ := strconv.ParseInt(q.Get("after"), 10, 64)
	if r.Method != http.MethodGet {
		before, after = 0, 0 // a refused upload shows the newest page under its form
	}
	page, err := a.store.ListDatasets(r.Context(), u.ID, max(before, 0), max(after, 0), datasetsPerPage)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	ds := page.Datasets
	l := views.DatasetList{Upload: form, ChatMethods: methodWords(a.runs.Backend.Offer(), true)}
	if len(ds) > 0 && page.HasOlder {
		l.OlderURL = fmt.Sprintf("/datasets?before=%d", ds[len(ds)-1].ID)
	}
	if len(ds) > 0 && page.HasNewer {
		l.NewerURL = fmt.Sprintf("/datasets?after=%d", ds[0].ID)
	} else if len(ds) == 0 && (before > 0 || after > 0) {
		l.NewerURL = "/datasets"
	}
	for _, d := range ds {
		l.Items = append(l.Items, views.DatasetRow{
			URL: fmt.Sprintf("/datasets/%d", d.ID), Name: d.Name, Format: string(d.Format), FormatTone: formatTone(d.Format),
			Rows: formatCount(int64(d.Rows)), Tokens: formatTokens(d.Tokens), Size: formatBytes(d.SizeBytes), Created: d.CreatedAt.Format("2 Jan 2006"),
		})
	}
	for _, s := range store.Samples {
		l.Samples = append(l.Samples, views.SampleOption{Format: string(s.Format), FormatTone: formatTone(s.Format), Name: s.Name, About: s.About})
	}
	a.renderWith(w, r, status, a.page(r, "Datasets", "datasets"), views.DatasetsPage(l), views.DatasetUploadForm(form))
}

// uploadDataset streams a multipart upload (fields "name", then "file") through the
// validator into the encrypted vault; nothing is kept unless the whole file is valid.
func (a *app) uploadDataset(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	form := a.uploadForm()
	fail := func(status int) { a.renderDatasets(w, r, status, form) }

	r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxUploadBytes+1<<20) // room for the form around the file
	mr, err := r.MultipartReader()
	if err != nil {
		form.FileError = "Choose a JSONL file to upload."
		fail(http.StatusUnprocessableEntity)
		return
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			form.FileError = "Choose a JSONL file to upload."
			fail(http.StatusUnprocessableEntity)
			return
		}
		if err != nil {
			a.uploadFailed(w, r, &form, err, fail)
			return
		}
		switch part.FormName() {
		case "name":
			b, _ := io.ReadAll(io.LimitReader(part, 1024))
			form.Name = strings.TrimSpace(string(b))
		case "file":
			if part.FileName() == "" {
				form.FileError = "Choose a JSONL file to upload."
				fail(http.StatusUnprocessableEntity)
				return
			}
			name := datasetUploadName(form.Name, part.FileName())
			d, err := a.store.CreateDataset(r.Context(), a.vault, store.NewDataset{
				UserID: u.ID, Name: name, Content: part, MaxSize: a.cfg.MaxUploadBytes, QuotaBytes: a.cfg.DatasetQuotaBytes})
			if err != nil {
				a.uploadFailed(w, r, &form, err, fail)
				return
			}
			redirect(w, r, fmt.Sprintf("/datasets/%d", d.ID))
			return
		}
	}
}

// uploadFailed turns an upload error into the form's messages.
func (a *app) uploadFailed(w http.ResponseWriter, r *http.Request, form *views.UploadForm, err error, fail func(int)) {
	var invalid *store.DatasetInvalidError
	var tooBig *http.MaxBytesError
	var quota *store.QuotaError
	switch {
	case errors.As(err, &quota):
		form.FileError = datasetQuotaMessage(quota)
		fail(http.StatusUnprocessableEntity)
	case errors.As(err, &invalid):
		for i, p := range invalid.Report.Errors {
			if i == maxShownProblems {
				form.More = true
				break
			}
			form.Problems = append(form.Problems, p.String())
		}
		fail(http.StatusUnprocessableEntity)
	case errors.Is(err, store.ErrDatasetTooLarge) || errors.As(err, &tooBig):
		form.FileError = fmt.Sprintf("The file is larger than the %s limit. Split it, or ask the operator to raise TUNELAB_MAX_UPLOAD_MB.", form.MaxSize)
		fail(http.StatusRequestEntityTooLarge)
	default:
		a.serverError(w, r, err)
	}
}

// datasetQuotaMessage says how much of the dataset quota is used and what to do.
func datasetQuotaMessage(q *store.QuotaError) string {
	return fmt.Sprintf("This file would take your datasets past your %s quota: %s of %s used. Delete datasets you no longer need, or ask the operator to raise TUNELAB_QUOTA_DATASET_BYTES.",
		formatBytes(q.Limit), formatBytes(q.Used), formatBytes(q.Limit))
}

// useSample copies a shipped sample dataset into the person's datasets.
func (a *app) useSample(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	format := store.DatasetFormat(r.PostFormValue("format"))
	i := slices.IndexFunc(store.Samples, func(s store.Sample) bool { return s.Format == format })
	if i < 0 {
		a.badRequest(w, r, "There is no sample dataset in that format. Pick one of the samples on the Datasets page.")
		return
	}
	s := store.Samples[i]
	f, err := s.Open()
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	defer f.Close()
	d, err := a.store.CreateDataset(r.Context(), a.vault, store.NewDataset{UserID: u.ID, Name: s.Name, Content: f, MaxSize: a.cfg.MaxUploadBytes,
		QuotaBytes: a.cfg.DatasetQuotaBytes})
	var quota *store.QuotaError
	if errors.As(err, &quota) {
		form := a.uploadForm()
		form.FileError = datasetQuotaMessage(quota)
		a.renderDatasets(w, r, http.StatusUnprocessableEntity, form)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	redirect(w, r, fmt.Sprintf("/datasets/%d", d.ID))
}

// datasetFromPath loads the person's dataset named by {id}; anything else is a 404.
func (a *app) datasetFromPath(w http.ResponseWriter, r *http.Request) (store.Dataset, bool) {
	u, _ := userFrom(r.Context())
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		a.notFound(w, r)
		return store.Dataset{}, false
	}
	d, err := a.store.Dataset(r.Context(), u.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		if other, err := a.store.DatasetByID(r.Context(), id); err == nil && other.UserID != u.ID {
			a.recordEvent(r, store.EventAuthzDenied, u.ID, fmt.Sprintf("dataset %d", id))
		}
		a.notFound(w, r)
		return store.Dataset{}, false
	}
	if err != nil {
		a.serverError(w, r, err)
		return store.Dataset{}, false
	}
	return d, true
}

func (a *app) showDataset(w http.ResponseWriter, r *http.Request) {
	d, ok := a.datasetFromPath(w, r)
	if !ok {
		return
	}
	seqLen := defaultSeqLen
	if q := r.URL.Query().Get("max_seq_len"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || !slices.Contains(seqLenChoices, n) {
			a.badRequest(w, r, fmt.Sprintf("max_seq_len must be one of %s.", joinInts(seqLenChoices)))
			return
		}
		seqLen = n
	}
	preview, err := store.DatasetPreview(a.vault, d, 5)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	base := fmt.Sprintf("/datasets/%d", d.ID)
	v := views.DatasetDetail{
		Name: d.Name, Format: string(d.Format), FormatTone: formatTone(d.Format), Rows: formatCount(int64(d.Rows)), Tokens: formatTokens(d.Tokens),
		Size: formatBytes(d.SizeBytes), Created: d.CreatedAt.Format("2 Jan 2006, 15:04 UTC"),
		TokensNote: "Estimated as one token per 4 bytes of text, plus 4 per chat message for role markers.",
		Histogram:  histogramBars(d, seqLen), MaxSeqLen: seqLen, SeqLens: seqLenChoices,
		ShareOver: fmt.Sprintf("%.1f %% of rows are longer than %d tokens and would be cut at that length.", 100*d.ShareLongerThan(seqLen), seqLen),
		Preview:   preview, DeleteURL: base + "/delete", BaseURL: base,
		NewRunURL: fmt.Sprintf("/runs/new?dataset=%d", d.ID),
	}
	a.render(w, r, http.StatusOK, a.page(r, d.Name, "datasets"), views.DatasetPage(v))
}

func (a *app) deleteDataset(w http.ResponseWriter, r *http.Request) {
	d, ok := a.datasetFromPath(w, r)
	if !ok {
		return
	}
	u, _ := userFrom(r.Context())
	if err := a.store.DeleteDataset(r.Context(), u.ID, d.ID); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.recordEvent(r, store.EventDatasetDeleted, u.ID, fmt.Sprintf("dataset %d", d.ID))
	a.audit(r, store.AuditDatasetDeleted, u.ID, u.ID, fmt.Sprintf("dataset %d", d.ID))
	redirect(w, r, "/datasets")
}

func histogramBars(d store.Dataset, seqLen int) []views.HistogramBar {
	tallest := slices.Max(append([]int{1}, d.Histogram...))
	bars := make([]views.HistogramBar, len(d.Histogram))
	lower := 0
	for i, n := range d.Histogram {
		label := ""
		if i < len(store.LengthBuckets) {
			label = fmt.Sprintf("≤ %d", store.LengthBuckets[i])
		} else {
			label = fmt.Sprintf("> %d", lower)
		}
		bars[i] = views.HistogramBar{Label: label, Count: n, Height: (n*20 + tallest - 1) / tallest, Over: lower >= seqLen}
		if i < len(store.LengthBuckets) {
			lower = store.LengthBuckets[i]
		}
	}
	return bars
}

// datasetUploadName is the name typed in the form or else the uploaded file's base name without
// its extension. The file name is only ever a label, never part of a path: no directory
// of it is kept. The store cleans the result (store.CleanDatasetName).
func datasetUploadName(formName, fileName string) string {
	if formName != "" {
		return formName
	}
	base := strings.Trim(filepath.Base(strings.ReplaceAll(fileName, "\\", "/")), "/")
	return strings.TrimSuffix(base, filepath.Ext(base))
}
