package status

import (
	"bytes"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// jobFields returns the top-level "job_id" (a string, or a number as
// written) and "status" (a string) of a JSON object payload; "" for a
// member that is missing, of another type, or a payload that is not an
// object. It runs once per consumed event, so it tokenizes the object's
// top level with jsontext and skips every other member's value without
// decoding it (encoding/json's Unmarshal into a struct was 5% of a node's
// CPU at 25k deliveries/s). A repeated member keeps its first value.
func jobFields(payload []byte) (jobID, status string) {
	if len(payload) == 0 {
		return "", ""
	}
	dec := scanners.Get().(*jsontext.Decoder)
	defer func() {
		dec.Reset(noInput, scanOptions...) // let go of payload
		scanners.Put(dec)
	}()
	dec.Reset(bytes.NewBuffer(payload), scanOptions...)
	if dec.PeekKind() != '{' {
		return "", ""
	}
	if _, err := dec.ReadToken(); err != nil {
		return "", ""
	}
	var haveID, haveStatus bool
	for dec.PeekKind() == '"' && !(haveID && haveStatus) {
		name, err := dec.ReadValue()
		if err != nil {
			return jobID, status
		}
		value, err := dec.ReadValue()
		if err != nil {
			return jobID, status
		}
		switch {
		case !haveID && isMember(name, "job_id"):
			haveID = true
			switch value.Kind() {
			case '"':
				jobID = unquote(value)
			case '0':
				jobID = string(value)
			}
		case !haveStatus && isMember(name, "status"):
			haveStatus = true
			if value.Kind() == '"' {
				status = unquote(value)
			}
		}
	}
	return jobID, status
}

// scanOptions are encoding/json's leniencies (repeated names, invalid
// UTF-8), as the producers validated the payload with.
var scanOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

var scanners = sync.Pool{New: func() any { return jsontext.NewDecoder(bytes.NewBuffer(nil), scanOptions...) }}

// noInput is what a decoder back in the pool points at: it is never
// read (Reset does not read).
var noInput = strings.NewReader("")

// isMember reports whether the quoted member name raw is name; a name
// without escapes is compared in place.
func isMember(raw jsontext.Value, name string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return len(raw) == len(name)+2 && string(raw[1:len(raw)-1]) == name
	}
	return unquote(raw) == name
}

// unquote is the text of a JSON string literal the decoder already read.
// The only error left is invalid UTF-8, whose bytes AppendUnquote
// replaces with U+FFFD, as encoding/json does.
func unquote(raw jsontext.Value) string {
	if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner) // nothing to decode: one copy
	}
	b, _ := jsontext.AppendUnquote(nil, raw)
	return string(b)
}
