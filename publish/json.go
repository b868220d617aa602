package publish

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
)

// The request body is checked once with json.Valid (and utf8.Valid);
// members and elements then split it with encoding/json's tokenizer,
// keeping every value's raw bytes and the members of an object in the order
// sent, duplicates included (encoding/json's own decoding keeps the last
// duplicate silently; the API refuses them).

// member is one member of a JSON object: its decoded key and raw value.
type member struct {
	key   string
	value json.RawMessage
}

// members returns the members of the JSON object raw, in order. ok is
// false when raw is not one well-formed object.
func members(raw []byte) (out []member, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if !delim(dec, '{') {
		return nil, false
	}
	for dec.More() {
		tok, err := dec.Token()
		key, isKey := tok.(string)
		if err != nil || !isKey {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		out = append(out, member{key, v})
	}
	if !delim(dec, '}') || !end(dec) {
		return nil, false
	}
	return out, true
}

// elements returns the raw elements of the JSON list raw. ok is false when
// raw is not one well-formed list.
func elements(raw []byte) (out []json.RawMessage, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if !delim(dec, '[') {
		return nil, false
	}
	for dec.More() {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		out = append(out, v)
	}
	if !delim(dec, ']') || !end(dec) {
		return nil, false
	}
	return out, true
}

// delim reads the next token and reports whether it is d.
func delim(dec *json.Decoder, d json.Delim) bool {
	tok, err := dec.Token()
	return err == nil && tok == d
}

// end reports whether nothing but whitespace follows.
func end(dec *json.Decoder) bool {
	_, err := dec.Token()
	return errors.Is(err, io.EOF)
}

// lookup returns the raw value of key in ms.
func lookup(ms []member, key string) (json.RawMessage, bool) {
	for _, m := range ms {
		if m.key == key {
			return m.value, true
		}
	}
	return nil, false
}

// duplicateKey returns a key that appears twice in ms.
func duplicateKey(ms []member) (string, bool) {
	seen := make(map[string]struct{}, len(ms))
	for _, m := range ms {
		if _, dup := seen[m.key]; dup {
			return m.key, true
		}
		seen[m.key] = struct{}{}
	}
	return "", false
}

// isNull reports whether raw is absent or the JSON null.
func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

func isObject(raw json.RawMessage) bool { return len(raw) > 0 && raw[0] == '{' }

// str decodes raw when it is a JSON string.
func str(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// number decodes raw when it is a JSON number: a number too large for a
// float64 is ±Inf.
func number(raw json.RawMessage) (float64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return 0, false
	}
	f, err := n.Float64()
	if err != nil && !math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// value decodes raw as encoding/json decodes into an interface value, a
// number too large for a float64 being ±Inf, for rooms.ParseID.
func value(raw json.RawMessage) any {
	if f, ok := number(raw); ok {
		return f
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	return v
}
