package flaskqueue

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// pk concatenates pickle fragments: a string or byte is an opcode or raw
// bytes, a []byte is copied verbatim.
func pk(parts ...any) []byte {
	var out []byte
	for _, p := range parts {
		switch x := p.(type) {
		case byte:
			out = append(out, x)
		case int:
			out = append(out, byte(x))
		case rune:
			out = append(out, byte(x))
		case string:
			out = append(out, x...)
		case []byte:
			out = append(out, x...)
		default:
			panic("pk: unsupported part")
		}
	}
	return out
}

// su is SHORT_BINUNICODE s.
func su(s string) []byte { return pk(opShortBinUnicode, byte(len(s)), s) }

// u32 and u64 are little-endian lengths.
func u32(n uint32) []byte { return binary.LittleEndian.AppendUint32(nil, n) }
func u64(n uint64) []byte { return binary.LittleEndian.AppendUint64(nil, n) }

// proto4 wraps a body in PROTO 4 ... STOP.
func proto4(body ...any) []byte {
	return pk(append(append([]any{opProto, 4}, body...), opStop)...)
}

// fixture reads one file of testdata.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtureNames lists the testdata fixtures whose names start with prefix
// and end with one of the fixture extensions.
func fixtureNames(t testing.TB, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, prefix) && (strings.HasSuffix(n, ".pickle") || strings.HasSuffix(n, ".json")) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}
