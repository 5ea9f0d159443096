package handlers

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
)

// A snapshot body is one file in one of two formats (docs/worker-api.md, "Snapshot
// formats"): a raw safetensors file (the built-in worker) or a ZIP of a Hugging Face-style
// folder (the Python worker). The server stores the bytes as sent and tells the two apart
// by their first bytes, so downloads get a truthful type and file name with nothing more
// stored.

var zipMagic = []byte("PK\x03\x04")

type snapshotFormat struct {
	contentType, ext string
}

var (
	formatSafetensors = snapshotFormat{"application/octet-stream", "safetensors"}
	formatZIP         = snapshotFormat{"application/zip", "zip"}
)

// sniffSnapshot reads the start of a stored snapshot and returns a reader of the whole
// file with its format.
func sniffSnapshot(r io.Reader) (io.Reader, snapshotFormat) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(len(zipMagic))
	if bytes.Equal(head, zipMagic) {
		return br, formatZIP
	}
	return br, formatSafetensors
}

// checkSnapshotUpload checks an upload's Content-Type against its first bytes: a worker
// that says application/zip must send a ZIP. It returns the body to store, or a message
// for a 400 answer.
func checkSnapshotUpload(contentType string, body io.Reader) (io.Reader, string) {
	mt := ""
	if contentType != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(contentType); err != nil {
			return nil, "Content-Type does not parse; send application/octet-stream (safetensors) or application/zip."
		}
	}
	switch mt {
	case "", formatSafetensors.contentType:
		return body, ""
	case formatZIP.contentType:
		r, f := sniffSnapshot(body)
		if f != formatZIP {
			return nil, "The body is not a ZIP file, but Content-Type says application/zip."
		}
		return r, ""
	}
	return nil, fmt.Sprintf("Content-Type %s is not a snapshot format; send application/octet-stream (safetensors) or application/zip.", mt)
}
