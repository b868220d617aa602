package event

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var jsonSeeds = []string{
	`{"a":1}`, ` { "a" : [ 1 , 2.5e-3 , "x y" ] , "a" : null } `, `"a\ud800b"`, "\"a\xffb\"", `"\u00e9\n\t"`,
	`{"a":}`, `[1,]`, `01`, `-`, `1.`, `tru`, `nul`, `{"a":1}{}`, `{"a":1} x`, "\t\r\n 7 \n", ``, ` `,
	"\"a\u2028<&>\"", `{"a":"\/"}`, "\"\x01\"", `[[[[]]]]`, `{"":{"":[{}]}}`, `1e999`, `-0.0E+00`,
}

func TestJSONAgreesWithV1(t *testing.T) {
	for _, s := range jsonSeeds {
		assertJSONAgrees(t, []byte(s))
	}
	for _, depth := range []int{9999, 10000, 10001} {
		assertJSONAgrees(t, []byte(strings.Repeat("[", depth)+strings.Repeat("]", depth)))
	}
}

// FuzzJSONAgreesWithV1: valid is json.Valid and appendCompact is
// json.Compact, on any input.
func FuzzJSONAgreesWithV1(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		assertJSONAgrees(t, raw)
	})
}

func assertJSONAgrees(t *testing.T, raw []byte) {
	t.Helper()
	if got, want := valid(raw), json.Valid(raw); got != want {
		t.Fatalf("valid(%q) = %v, json.Valid %v", raw, got, want)
	}
	prefix := []byte(`{"k":`)
	in := bytes.Clone(raw)
	got, err := appendCompact(bytes.Clone(prefix), in)
	var want bytes.Buffer
	want.Write(prefix)
	wantErr := json.Compact(&want, raw)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("appendCompact(%q): error %v, json.Compact %v", raw, err, wantErr)
	}
	if err == nil && !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("appendCompact(%q) = %q, json.Compact %q", raw, got, want.Bytes())
	}
	if err != nil && !bytes.Equal(got, prefix) {
		t.Fatalf("appendCompact(%q) failed leaving %q", raw, got)
	}
	if !bytes.Equal(in, raw) {
		t.Fatalf("appendCompact changed its input %q to %q", raw, in)
	}
}
