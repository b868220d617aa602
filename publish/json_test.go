package publish

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzMembers checks members against encoding/json: for every valid JSON
// object in valid UTF-8, the members it finds decode to what json.Unmarshal
// decodes (the last duplicate winning, as there), and every value is the
// raw JSON of its member; it accepts nothing encoding/json refuses, and
// nothing in invalid UTF-8 (which encoding/json lets through).
func FuzzMembers(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { "a" : 1 } `, `{"a":"}\"","b":[1,{"c":"]"}],"d":null,"e":true,"f":-1.5e3}`,
		`{"k\u00e9y":"\\","x":{"y":{"z":[[],[{}]]}}}`, "{\"a\"\t:\n[ 1 , 2 ]\r}", `{"a":1,"a":2}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := []byte(s)
		var want map[string]any
		if !json.Valid(b) || !utf8.Valid(b) || json.Unmarshal(b, &want) != nil || want == nil {
			if _, ok := new(splitter).members(b); ok && (!json.Valid(b) || !utf8.Valid(b)) {
				t.Fatalf("members(%q) accepted invalid JSON or UTF-8", s)
			}
			return
		}
		ms, ok := new(splitter).members(b)
		if !ok {
			t.Fatalf("members(%q) failed on a valid object", s)
		}
		got := map[string]any{}
		for _, m := range ms {
			var v any
			if err := json.Unmarshal(m.value, &v); err != nil {
				t.Fatalf("member %q has invalid value %q", m.key, m.value)
			}
			got[m.key] = v
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("members(%q) = %v, want %v", s, got, want)
		}
	})
}

func TestMembersKeepsOrderAndDuplicates(t *testing.T) {
	ms, ok := new(splitter).members([]byte(`{"z":1, "a" : {"b": [2]}, "z":"x"}`))
	if !ok || len(ms) != 3 || ms[0].key != "z" || ms[1].key != "a" || ms[2].key != "z" || string(ms[1].value) != `{"b": [2]}` {
		t.Fatalf("members = %+v, %v", ms, ok)
	}
	if key, dup := duplicateKey(ms); !dup || key != "z" {
		t.Fatalf("duplicateKey = %q, %v", key, dup)
	}
	for _, bad := range []string{`[]`, `{"a":1} x`, `{"a":1`, `{"a"}`, `1`} {
		if _, ok := new(splitter).members([]byte(bad)); ok {
			t.Errorf("members(%q) accepted", bad)
		}
	}
}

func TestElements(t *testing.T) {
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
		{`[1] [2]`, nil, false},
	} {
		got, ok := new(splitter).elements([]byte(tc.in))
		if ok != tc.ok {
			t.Fatalf("elements(%q) ok = %v", tc.in, ok)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("elements(%q) = %q", tc.in, got)
		}
		for i := range got {
			if string(got[i]) != tc.want[i] {
				t.Fatalf("elements(%q)[%d] = %q, want %q", tc.in, i, got[i], tc.want[i])
			}
		}
	}
}

func TestNumber(t *testing.T) {
	for in, want := range map[string]bool{`1`: true, `-1.5e3`: true, `1e400`: true, `"1"`: false, `null`: false, `{}`: false, ``: false} {
		if _, ok := number(json.RawMessage(in)); ok != want {
			t.Errorf("number(%q) ok = %v, want %v", in, ok, want)
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
