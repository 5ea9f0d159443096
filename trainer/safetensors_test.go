package trainer

import (
	"bytes"
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	in := []Tensor{
		{Name: "b", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, float32(math.Inf(-1))}},
		{Name: "a", Shape: []int{1}, Data: []float32{-0.5}},
		{Name: "scalar", Shape: []int{}, Data: []float32{7}},
	}
	meta := map[string]string{"method": "lora", "rank": "8"}
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, in, meta); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	n := binary.LittleEndian.Uint64(raw)
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	header := string(raw[8 : 8+n])
	if !strings.HasPrefix(header, `{"__metadata__":{"method":"lora","rank":"8"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":`) {
		t.Errorf("header %s", header)
	}
	if trimmed := strings.TrimRight(header, " "); !strings.HasSuffix(trimmed, "}") || len(header)-len(trimmed) >= 8 {
		t.Errorf("header padding wrong: %q", header)
	}
	if got := len(raw) - 8 - int(n); got != 4*8 {
		t.Errorf("data is %d bytes, want 32", got)
	}
	out, gotMeta, err := ReadSafetensors(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []Tensor{in[1], in[0], in[2]}
	if !reflect.DeepEqual(out, want) || !reflect.DeepEqual(gotMeta, meta) {
		t.Errorf("round trip: got %+v %v", out, gotMeta)
	}
}

// handMade builds a file byte by byte, as another writer would.
func handMade(header string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

func f32s(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func TestReadSafetensorsHandMade(t *testing.T) {
	// Data in the opposite order to the names, no metadata, no padding.
	file := handMade(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"v":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, f32s(9, 1.5, -2))
	ts, meta, err := ReadSafetensors(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	want := []Tensor{{Name: "v", Shape: []int{}, Data: []float32{9}}, {Name: "w", Shape: []int{2}, Data: []float32{1.5, -2}}}
	if !reflect.DeepEqual(ts, want) || meta != nil {
		t.Errorf("got %+v, %v", ts, meta)
	}
}

func TestReadSafetensorsRefusesBadFiles(t *testing.T) {
	huge := make([]byte, 8)
	binary.LittleEndian.PutUint64(huge, 1<<40)
	good := handMade(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, f32s(1, 2))
	for _, tc := range []struct {
		name, want string
		file       []byte
	}{
		{"empty", "header length", nil},
		{"oversized header", "over the", huge},
		{"truncated header", "header shorter", good[:20]},
		{"truncated data", "data shorter", good[:len(good)-1]},
		{"extra data", "data longer", append(append([]byte(nil), good...), 0)},
		{"not json", "header", handMade(`{"a":`, nil)},
		{"gap", "do not follow", handMade(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32s(1, 2))},
		{"shape mismatch", "does not match", handMade(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, f32s(1, 2))},
		{"dtype", "only F32", handMade(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, f32s(1))},
		{"bad metadata", "__metadata__", handMade(`{"__metadata__":{"a":1}}`, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ReadSafetensors(bytes.NewReader(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestWriteSafetensorsRefusesBadTensors(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, []Tensor{{Name: "a", Shape: []int{3}, Data: []float32{1}}}, nil); err == nil {
		t.Error("shape/data mismatch accepted")
	}
	if err := WriteSafetensors(&buf, []Tensor{{Name: "a", Shape: []int{1}, Data: []float32{1}}, {Name: "a", Shape: []int{1}, Data: []float32{1}}}, nil); err == nil {
		t.Error("duplicate name accepted")
	}
}
