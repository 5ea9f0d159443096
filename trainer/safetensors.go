package trainer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// Tensor is one named float32 tensor of a safetensors file.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// maxHeaderSize matches the reference implementation's limit, so a corrupt
// length cannot make us allocate gigabytes.
const maxHeaderSize = 100_000_000

type tensorHeader struct {
	Dtype       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// WriteSafetensors writes the safetensors format: an 8-byte little-endian
// header length, a JSON header ("__metadata__" first, then tensors sorted by
// name, as the reference implementation orders them) padded with spaces to
// 8-byte alignment, then each tensor's little-endian F32 data in that order.
func WriteSafetensors(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	sorted := slices.Clone(tensors)
	slices.SortFunc(sorted, func(a, b Tensor) int { return strings.Compare(a.Name, b.Name) })
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	if len(metadata) > 0 {
		meta, err := json.Marshal(metadata) // map keys come out sorted
		if err != nil {
			return fmt.Errorf("safetensors: metadata: %w", err)
		}
		hdr.WriteString(`"__metadata__":`)
		hdr.Write(meta)
	}
	var offset int64
	for i, t := range sorted {
		if t.Name == "" || t.Name == "__metadata__" {
			return fmt.Errorf("safetensors: invalid tensor name %q", t.Name)
		}
		if i > 0 && sorted[i-1].Name == t.Name {
			return fmt.Errorf("safetensors: duplicate tensor %q", t.Name)
		}
		if n := elements(t.Shape); n != len(t.Data) {
			return fmt.Errorf("safetensors: tensor %q: shape %v holds %d values, data has %d", t.Name, t.Shape, n, len(t.Data))
		}
		name, _ := json.Marshal(t.Name)
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		entry, err := json.Marshal(tensorHeader{Dtype: "F32", Shape: shape, DataOffsets: [2]int64{offset, offset + 4*int64(len(t.Data))}})
		if err != nil {
			return fmt.Errorf("safetensors: %w", err)
		}
		if hdr.Len() > 1 {
			hdr.WriteByte(',')
		}
		hdr.Write(name)
		hdr.WriteByte(':')
		hdr.Write(entry)
		offset += 4 * int64(len(t.Data))
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	var size [8]byte
	binary.LittleEndian.PutUint64(size[:], uint64(hdr.Len()))
	if _, err := w.Write(size[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return err
	}
	buf := make([]byte, 0, 64*1024)
	for _, t := range sorted {
		for _, v := range t.Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err := w.Write(buf)
	return err
}

func elements(shape []int) int {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		n *= d
	}
	return n
}

// ReadSafetensors reads a file WriteSafetensors (or any safetensors writer)
// produced, with F32 tensors only. Tensors come back sorted by name. It
// checks what the reference implementation checks: the header size, that
// offsets tile the data exactly, and that shapes match the byte counts.
func ReadSafetensors(r io.Reader) ([]Tensor, map[string]string, error) {
	var size [8]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, nil, fmt.Errorf("safetensors: reading header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(size[:])
	if n > maxHeaderSize {
		return nil, nil, fmt.Errorf("safetensors: header length %d is over the %d limit", n, maxHeaderSize)
	}
	if n < 2 {
		return nil, nil, fmt.Errorf("safetensors: header length %d is too small", n)
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, nil, fmt.Errorf("safetensors: header shorter than its %d-byte length: %w", n, err)
	}
	if hdr[0] != '{' {
		return nil, nil, errors.New("safetensors: header is not a JSON object")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, nil, fmt.Errorf("safetensors: header: %w", err)
	}
	var meta map[string]string
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, nil, fmt.Errorf("safetensors: __metadata__ must map strings to strings: %w", err)
		}
		delete(raw, "__metadata__")
	}
	type entry struct {
		name string
		h    tensorHeader
	}
	entries := make([]entry, 0, len(raw))
	for name, msg := range raw {
		var h tensorHeader
		if err := json.Unmarshal(msg, &h); err != nil {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: %w", name, err)
		}
		if h.Dtype != "F32" {
			return nil, nil, fmt.Errorf("safetensors: tensor %q has dtype %q; only F32 is supported", name, h.Dtype)
		}
		entries = append(entries, entry{name, h})
	}
	// Offsets must tile the data from 0 with no gap or overlap.
	slices.SortFunc(entries, func(a, b entry) int { return int(a.h.DataOffsets[0] - b.h.DataOffsets[0]) })
	var end int64
	for _, e := range entries {
		b, f := e.h.DataOffsets[0], e.h.DataOffsets[1]
		if b != end || f < b {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: data offsets [%d, %d] do not follow the previous tensor ending at %d", e.name, b, f, end)
		}
		if n := elements(e.h.Shape); n < 0 || int64(n)*4 != f-b {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: shape %v does not match %d bytes of F32", e.name, e.h.Shape, f-b)
		}
		end = f
	}
	data := make([]byte, end)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, nil, fmt.Errorf("safetensors: data shorter than the %d bytes the header declares: %w", end, err)
	}
	if extra, _ := r.Read(make([]byte, 1)); extra > 0 {
		return nil, nil, errors.New("safetensors: data longer than the header declares")
	}
	tensors := make([]Tensor, 0, len(entries))
	for _, e := range entries {
		raw := data[e.h.DataOffsets[0]:e.h.DataOffsets[1]]
		vals := make([]float32, len(raw)/4)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		tensors = append(tensors, Tensor{Name: e.name, Shape: e.h.Shape, Data: vals})
	}
	slices.SortFunc(tensors, func(a, b Tensor) int { return strings.Compare(a.Name, b.Name) })
	return tensors, meta, nil
}
