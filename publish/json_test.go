package publish

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzSplitObject checks the splitter against encoding/json: for every
// valid JSON object, the members it finds decode to what json.Unmarshal
// decodes, and appendCompact gives json.Compact's bytes.
func FuzzSplitObject(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { "a" : 1 } `, `{"a":"}\"","b":[1,{"c":"]"}],"d":null,"e":true,"f":-1.5e3}`,
		`{"k\u00e9y":"\\","x":{"y":{"z":[[],[{}]]}}}`, "{\"a\"\t:\n[ 1 , 2 ]\r}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := []byte(s)
		var want map[string]json.RawMessage
		if !json.Valid(b) || json.Unmarshal(b, &want) != nil || want == nil {
			return
		}
		members, ok := splitObject(b)
		if !ok {
			t.Fatalf("splitObject(%q) failed on a valid object", s)
		}
		got := map[string]any{}
		for _, m := range members {
			var v any
			if err := json.Unmarshal(m.value, &v); err != nil {
				t.Fatalf("member %q has invalid value %q", m.key, m.value)
			}
			got[m.key] = v // the last one wins, as in encoding/json
			if k, ok := decodeString(m.rawKey); !ok || k != m.key {
				t.Fatalf("raw key %q does not decode to %q", m.rawKey, m.key)
			}
		}
		wantValues := map[string]any{}
		for k, raw := range want {
			var v any
			_ = json.Unmarshal(raw, &v)
			wantValues[k] = v
		}
		if !reflect.DeepEqual(got, wantValues) {
			t.Fatalf("splitObject(%q) = %v, want %v", s, got, wantValues)
		}
		var compact bytes.Buffer
		_ = json.Compact(&compact, trimSpace(b))
		if c := appendCompact(nil, trimSpace(b)); !bytes.Equal(c, compact.Bytes()) {
			t.Fatalf("appendCompact(%q) = %q, want %q", s, c, compact.Bytes())
		}
	})
}

func TestSplitArray(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{`[]`, nil, true},
		{` [ 1 , "a]" , {"b":[2]} , null ] `, []string{`1`, `"a]"`, `{"b":[2]}`, `null`}, true},
		{`[1,]`, nil, false},
		{`{}`, nil, false},
		{`[1`, nil, false},
	} {
		got, ok := splitArray([]byte(tc.in))
		if ok != tc.ok {
			t.Fatalf("splitArray(%q) ok = %v", tc.in, ok)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("splitArray(%q) = %q", tc.in, got)
		}
		for i := range got {
			if string(got[i]) != tc.want[i] {
				t.Fatalf("splitArray(%q)[%d] = %q, want %q", tc.in, i, got[i], tc.want[i])
			}
		}
	}
}

func TestIsTimestamp(t *testing.T) {
	for s, want := range map[string]bool{
		"2024-05-01T12:00:00.000Z":         true,
		"2024-05-01T12:00:00Z":             true,
		"2024-05-01T12:00:00+02:00":        true,
		"2024-05-01T12:00:00.123456":       true,
		"2024-05-01T12:00:00.123456+00:00": true,
		"2024-05-01 12:00:00":              true,
		"2024-05-01T12:00:00+0200":         true,
		"2024-05-01T12:00Z":                true,
		"2024-05-01":                       false,
		"2024-02-30T12:00:00Z":             false,
		"12:00:00":                         false,
		"yesterday":                        false,
		"1714557600":                       false,
		"2024-05-01T12:00:00ZZ":            false,
	} {
		if got := isTimestamp(s); got != want {
			t.Errorf("isTimestamp(%q) = %v, want %v", s, got, want)
		}
	}
}
