package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"tunelab/trainer/protocol"
)

// JSON in and out of the APIs (worker, metrics ingest): one error body, one strict decoder
// with a size cap, one writer.

// maxWorkerJSON caps a JSON request body unless the endpoint names its own cap.
const maxWorkerJSON = 1 << 20

// apiError writes {"error":{"code","message"}}.
func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, protocol.ErrorBody{Error: protocol.Error{Code: code, Message: msg}})
}

// writeJSON answers v as JSON with the status; API answers are never cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// decodeStrict reads exactly one JSON object with no unknown fields into v, within the
// default cap.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeStrictMax(w, r, v, maxWorkerJSON)
}

// decodeStrictMax reads exactly one JSON object with no unknown fields into v; a body over
// limit answers 413, anything else wrong 400. It reports whether v may be used.
func decodeStrictMax(w http.ResponseWriter, r *http.Request, v any, limit int64) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value in the body")
	}
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("unexpected data after the JSON object")
		}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			apiError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("The body is over %d bytes.", limit))
			return false
		}
		apiError(w, http.StatusBadRequest, "invalid_json", "The body is not valid JSON for this endpoint: "+err.Error())
		return false
	}
	return true
}
