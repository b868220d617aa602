package gateway

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// frameBody checks that frame is one final, unmasked text frame and
// returns its payload.
func frameBody(t testing.TB, frame []byte) []byte {
	t.Helper()
	if len(frame) < 2 || frame[0] != 0x81 || frame[1]&0x80 != 0 {
		t.Fatalf("not a final unmasked text frame: % x", frame[:min(len(frame), 10)])
	}
	n, rest := int(frame[1]), frame[2:]
	switch n {
	case 126:
		n, rest = int(binary.BigEndian.Uint16(rest)), rest[2:]
	case 127:
		n, rest = int(binary.BigEndian.Uint64(rest)), rest[8:]
	}
	if n != len(rest) {
		t.Fatalf("header says %d bytes, frame carries %d", n, len(rest))
	}
	return rest
}

// libraryEncoding is what the library's encoder writes for p, as the
// engine sends it over WebSocket (Engine.IO MESSAGE '4' first).
func libraryEncoding(t testing.TB, p *parser.Packet) []byte {
	t.Helper()
	encoded := parser.NewEncoder().Encode(p)
	if len(encoded) != 1 {
		t.Fatalf("library encoded %d parts", len(encoded))
	}
	sb, ok := encoded[0].(*types.StringBuffer)
	if !ok {
		t.Fatalf("library encoded %T", encoded[0])
	}
	return append([]byte{'4'}, sb.Bytes()...)
}

func eventPacket(nsp, name string, payload json.RawMessage, offset ...string) *parser.Packet {
	data := []any{name, payload}
	for _, o := range offset {
		data = append(data, o)
	}
	return &parser.Packet{Type: parser.EVENT, Nsp: nsp, Data: data}
}

// TestEventFrameMatchesLibrary: the bus event's frame carries the bytes
// the library's encoder writes, for compact payloads without <, > or &,
// in the three frame-length forms, with and without a namespace and a
// recovery offset.
func TestEventFrameMatchesLibrary(t *testing.T) {
	big := `{"log":"` + strings.Repeat("x", 70_000) + `"}`
	for _, c := range []struct {
		nsp, name, payload string
		offset             []string
	}{
		{"/", "job_completed", `{"project_id":"42","job_id":"j1","result":{"cells":12}}`, nil},
		{"/", "log_line", `{"line":"ünïcödé \"quoted\" \\ tab\t","n":1.5e3}`, []string{"1733000000000-0"}},
		{"/admin", "job_progress", `{"progress":0.5}`, nil},
		{"", "batch_status", `[1,2,null,true]`, nil},
		{"/", "x", `"just a string"`, []string{"17"}},
		{"/", "log_line", `{"line":"` + strings.Repeat("y", 300) + `"}`, nil},
		{"/", "log_line", big, nil},
	} {
		p := eventPacket(c.nsp, c.name, json.RawMessage(c.payload), c.offset...)
		want := libraryEncoding(t, eventPacket(c.nsp, c.name, json.RawMessage(c.payload), c.offset...))
		frame, ok := eventFrame(p)
		if !ok {
			t.Fatalf("%s %.40s: refused", c.name, c.payload)
		}
		if got := frameBody(t, frame); !bytes.Equal(got, want) {
			t.Errorf("%s %.40s:\n got %.120s\nwant %.120s", c.name, c.payload, got, want)
		}
	}
}

// TestEventFrameSameJSONWhereBytesDiffer: where the library's encoder
// escapes <, > and & or drops whitespace, the frame carries the payload as
// published, and a client parses the same value.
func TestEventFrameSameJSONWhereBytesDiffer(t *testing.T) {
	payload := json.RawMessage("{ \"url\" : \"https://s3/k?a=1&b=<2>\",\n \"n\": [1, 2] }")
	frame, ok := eventFrame(eventPacket("/", "job_completed", payload))
	if !ok {
		t.Fatal("refused")
	}
	got := frameBody(t, frame)
	want := libraryEncoding(t, eventPacket("/", "job_completed", payload))
	if bytes.Equal(got, want) {
		t.Fatalf("same bytes %s: this test no longer covers a difference", got)
	}
	if !sameEventJSON(t, got, want) {
		t.Fatalf("different values:\n got %s\nwant %s", got, want)
	}
}

// TestEventFrameRefusesOtherPackets: anything but a bus event's packet is
// left to the library's encoder.
func TestEventFrameRefusesOtherPackets(t *testing.T) {
	id := uint64(3)
	attachments := uint64(1)
	for name, p := range map[string]*parser.Packet{
		"ack id":          {Type: parser.EVENT, Nsp: "/", Id: &id, Data: []any{"e", json.RawMessage(`1`)}},
		"binary":          {Type: parser.BINARY_EVENT, Nsp: "/", Attachments: &attachments, Data: []any{"e", json.RawMessage(`1`)}},
		"connect":         {Type: parser.CONNECT, Nsp: "/", Data: map[string]any{"sid": "x"}},
		"decoded payload": {Type: parser.EVENT, Nsp: "/", Data: []any{"e", map[string]any{"a": 1}}},
		"two payloads":    {Type: parser.EVENT, Nsp: "/", Data: []any{"e", json.RawMessage(`1`), json.RawMessage(`2`), "o"}},
		"empty payload":   {Type: parser.EVENT, Nsp: "/", Data: []any{"e", json.RawMessage(nil)}},
		"numeric offset":  {Type: parser.EVENT, Nsp: "/", Data: []any{"e", json.RawMessage(`1`), 5}},
		"bad UTF-8 name":  {Type: parser.EVENT, Nsp: "/", Data: []any{"e\xff", json.RawMessage(`1`)}},
	} {
		if _, ok := eventFrame(p); ok {
			t.Errorf("%s: framed, want the library's encoder", name)
		}
	}
}

// sameEventJSON reports whether two encodings ('4', '2', namespace, JSON
// array) carry the same prefix and the same JSON values.
func sameEventJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	ia, ib := bytes.IndexByte(a, '['), bytes.IndexByte(b, '[')
	if ia < 0 || ib < 0 || !bytes.Equal(a[:ia], b[:ib]) {
		return false
	}
	var va, vb any
	da := json.NewDecoder(bytes.NewReader(a[ia:]))
	db := json.NewDecoder(bytes.NewReader(b[ib:]))
	da.UseNumber()
	db.UseNumber()
	if err := da.Decode(&va); err != nil {
		t.Fatalf("frame's JSON: %v: %q", err, a[ia:])
	}
	if err := db.Decode(&vb); err != nil {
		t.Fatalf("library's JSON: %v: %q", err, b[ib:])
	}
	return reflect.DeepEqual(va, vb)
}

// FuzzEventFrameAgreesWithLibrary: for any valid JSON payload and any
// name and offset, the frame is one well-formed text frame whose packet a
// client parses to what the library's encoding gives; it is refused only
// for a name or offset that is not valid UTF-8.
func FuzzEventFrameAgreesWithLibrary(f *testing.F) {
	f.Add("job_completed", []byte(`{"project_id":"42","job_id":"j1"}`), "", false)
	f.Add("log_line", []byte(` {"line" : "a&b<c>\u2028"} `), "1733000000000-7", true)
	f.Add("e\xff", []byte(`[]`), "o", true)
	f.Fuzz(func(t *testing.T, name string, payload []byte, offset string, withOffset bool) {
		if !json.Valid(payload) {
			return // refused before the bus (event.Validate)
		}
		var offsets []string
		if withOffset {
			offsets = []string{offset}
		}
		frame, ok := eventFrame(eventPacket("/", name, json.RawMessage(payload), offsets...))
		if !ok {
			if utf8.ValidString(name) && (!withOffset || utf8.ValidString(offset)) {
				t.Fatalf("refused %q %q %q", name, payload, offset)
			}
			return
		}
		got := frameBody(t, frame)
		want := libraryEncoding(t, eventPacket("/", name, json.RawMessage(payload), offsets...))
		if !sameEventJSON(t, got, want) {
			t.Fatalf("different values:\n got %q\nwant %q", got, want)
		}
	})
}
