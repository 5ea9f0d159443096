package store

import "testing"

func TestSamplesAreValidInTheirFormat(t *testing.T) {
	if len(Samples) != 3 {
		t.Fatalf("%d samples, want one per format", len(Samples))
	}
	for _, s := range Samples {
		f, err := s.Open()
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		rep, err := ValidateDataset(f, DatasetLimits{})
		f.Close()
		if err != nil || !rep.Valid() {
			t.Fatalf("%s: invalid: %v %v", s.Name, err, rep.Errors)
		}
		if rep.Format != s.Format || rep.Rows < 40 {
			t.Fatalf("%s: format %s with %d rows", s.Name, rep.Format, rep.Rows)
		}
	}
}
