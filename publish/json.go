package publish

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

// members and elements split the request body with jsontext, the tokenizer of
// encoding/json/v2 (stable in Go 1.27, in the standard library behind
// GOEXPERIMENT=jsonv2 in 1.26; github.com/go-json-experiment/json is its
// mirror). Every value keeps its raw bytes, sliced from the body without a
// copy, and the members of an object keep the order sent, duplicates
// included (the API refuses duplicates by name). Reading the top-level
// object reads every value in it, so it also refuses a body that is not
// valid JSON or not valid UTF-8 anywhere. encoding/json's own
// Decoder.Token was measured 4.5 times slower here, 7.7 times the
// allocations (BenchmarkServe_100LogLines): it builds an error value at the
// end of every value it reads from a token stream.

// member is one member of a JSON object: its decoded key and raw value.
type member struct {
	key   string
	value json.RawMessage
}

// splitter splits JSON objects and lists, reusing one decoder.
type splitter struct{ dec *jsontext.Decoder }

// reset points the decoder at raw: a bytes.Buffer, which jsontext parses
// in place instead of copying.
func (s *splitter) reset(raw []byte) *jsontext.Decoder {
	if s.dec == nil {
		s.dec = jsontext.NewDecoder(bytes.NewBuffer(raw), jsontext.AllowDuplicateNames(true))
	} else {
		s.dec.Reset(bytes.NewBuffer(raw), jsontext.AllowDuplicateNames(true))
	}
	return s.dec
}

// members returns the members of the JSON object raw, in order. ok is
// false when raw is not one well-formed object.
func (s *splitter) members(raw []byte) (out []member, ok bool) {
	dec := s.reset(raw)
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, false
	}
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil || tok.Kind() != '"' {
			return nil, false
		}
		key := tok.String() // before the next read voids tok
		v, ok := next(dec, raw)
		if !ok {
			return nil, false
		}
		out = append(out, member{key, v})
	}
	if !closes(dec, '}') {
		return nil, false
	}
	return out, true
}

// elements returns the raw elements of the JSON list raw. ok is false when
// raw is not one well-formed list.
func (s *splitter) elements(raw []byte) (out []json.RawMessage, ok bool) {
	dec := s.reset(raw)
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
		return nil, false
	}
	for dec.PeekKind() != ']' {
		v, ok := next(dec, raw)
		if !ok {
			return nil, false
		}
		out = append(out, v)
	}
	if !closes(dec, ']') {
		return nil, false
	}
	return out, true
}

// next reads the next value and returns it as a slice of raw.
func next(dec *jsontext.Decoder, raw []byte) (json.RawMessage, bool) {
	v, err := dec.ReadValue()
	if err != nil {
		return nil, false
	}
	end := dec.InputOffset()
	return raw[end-int64(len(v)) : end : end], true
}

// closes reads the closing delimiter d and reports whether nothing but
// whitespace follows.
func closes(dec *jsontext.Decoder, d jsontext.Kind) bool {
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != d {
		return false
	}
	_, err := dec.ReadToken()
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

// The helpers below take values the splitter returned, so valid JSON.

// str decodes raw when it is a JSON string.
func str(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	b, err := jsontext.AppendUnquote(nil, raw)
	return string(b), err == nil
}

// number decodes raw when it is a JSON number: a number too large for a
// float64 is ±Inf.
func number(raw json.RawMessage) (float64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return f, true
}

// value returns what rooms.ParseID needs of raw: the string, the number (a
// number too large for a float64 is ±Inf), the boolean, nil for null, and
// typed nil values for an object or a list.
func value(raw json.RawMessage) any {
	switch {
	case len(raw) == 0 || raw[0] == 'n':
		return nil
	case raw[0] == 't' || raw[0] == 'f':
		return raw[0] == 't'
	case raw[0] == '{':
		return map[string]any(nil)
	case raw[0] == '[':
		return []any(nil)
	case raw[0] == '"':
		s, _ := str(raw)
		return s
	}
	f, _ := number(raw)
	return f
}
