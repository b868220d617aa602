package event

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestValidUTF8(t *testing.T) {
	valid := json.RawMessage(`{"log":"ünïcödé 😀"}`)
	if got := ValidUTF8(valid); &got[0] != &valid[0] {
		t.Fatal("a valid payload was copied")
	}
	bad := json.RawMessage("{\"log\":\"bad \xff\xfe \xe2\x82 end\",\"n\":1}")
	got := ValidUTF8(bad)
	want := `{"log":"bad ` + "\uFFFD\uFFFD \uFFFD\uFFFD" + ` end","n":1}`
	if string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// What encoding/json reads from the original, byte for byte.
	var v1 map[string]any
	if err := json.Unmarshal(bad, &v1); err != nil {
		t.Fatal(err)
	}
	if v1["log"] != "bad \uFFFD\uFFFD \uFFFD\uFFFD end" {
		t.Fatalf("encoding/json reads %q: the replacement differs", v1["log"])
	}
}

// FuzzValidUTF8: the result is valid UTF-8, unchanged when the input was,
// still valid JSON when the input was, and read by encoding/json as the
// input is.
func FuzzValidUTF8(f *testing.F) {
	f.Add([]byte(`{"a":"b"}`))
	f.Add([]byte("{\"a\":\"\xff\xc0\x80\xed\xa0\x80\"}"))
	f.Add([]byte("\xf4\x90\x80\x80"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := ValidUTF8(in)
		if !utf8.Valid(out) {
			t.Fatalf("%q -> %q: not valid UTF-8", in, out)
		}
		if utf8.Valid(in) && !bytes.Equal(in, out) {
			t.Fatalf("valid %q changed to %q", in, out)
		}
		if !json.Valid(in) {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("%q -> %q: no longer JSON", in, out)
		}
		a, errA := decodeNumbers(in)
		b, errB := decodeNumbers(out)
		if errA != nil || errB != nil {
			t.Fatalf("%q or %q does not decode: %v, %v", in, out, errA, errB)
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("%q reads as %s, %q as %s", in, ja, out, jb)
		}
	})
}

// decodeNumbers decodes raw with numbers kept as written (a valid number
// may not fit a float64).
func decodeNumbers(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}
