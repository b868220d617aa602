package event

import (
	"encoding/json"

	"github.com/go-json-experiment/json/jsontext"
)

// The payload checks and the compaction below use jsontext, the
// tokenizer of encoding/json/v2 (the go-json-experiment mirror, as the
// publish and webhook packages do), two to three times faster than
// encoding/json's scanner here, with encoding/json's rules: repeated
// member names and invalid UTF-8 are accepted. FuzzJSONAgreesWithV1 pins
// both to encoding/json's Valid and Compact.

// v1Rules are encoding/json's leniencies.
var v1Rules = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// valid reports whether raw is one JSON value, as json.Valid does.
func valid(raw []byte) bool {
	return jsontext.Value(raw).IsValid(v1Rules...)
}

// appendCompact appends raw without insignificant whitespace to b, as
// json.Compact writes it; it fails when raw is not one JSON value.
func appendCompact(b []byte, raw json.RawMessage) ([]byte, error) {
	start := len(b)
	b = append(b, raw...)
	v := jsontext.Value(b[start:])
	if err := v.Compact(); err != nil {
		return b[:start], err
	}
	return append(b[:start], v...), nil
}
