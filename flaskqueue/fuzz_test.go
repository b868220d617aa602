package flaskqueue

import (
	"encoding/json"
	"errors"
	"math/big"
	"testing"
	"time"
)

// fuzzLimits keeps each fuzz execution cheap; the limit code paths are
// the same as with the defaults.
var fuzzLimits = Limits{MaxDepth: 64, MaxElements: 1 << 14, MaxMemo: 1 << 12, MaxBytes: 1 << 20}

// fuzzSlow is how long one execution may take before it counts as a
// failure (a hang or blow-up the limits should have stopped).
const fuzzSlow = 5 * time.Second

// addFixtureSeeds seeds f with the testdata fixtures and a few edge cases.
// The ~80 KB emit_large fixtures are left out: the fuzzer's minimisation
// of inputs that size takes minutes and stalls the run.
func addFixtureSeeds(f *testing.F) {
	for _, name := range fixtureNames(f, "") {
		if b := fixture(f, name); len(b) <= 4096 {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add(laughs(30))
	f.Add(nestedLists(150))
	f.Add(proto4(opEmptyList, opMemoize, opBinGet, 0, opAppend))
	f.Add([]byte(`{"method":"emit","event":"e","binary":true,"data":[[{"_placeholder":true,"num":0}],"AAE="]}`))
}

// sentinelCount reports how many of the package's sentinels err wraps.
func sentinelCount(err error) int {
	n := 0
	for _, s := range []error{ErrUnsafePickle, ErrMalformed, ErrUnsupportedMethod, ErrLimit, ErrNotJSON} {
		if errors.Is(err, s) {
			n++
		}
	}
	return n
}

// walked counts what checkDecoded has seen.
type walked struct{ elements, bytes int }

// checkDecoded walks a decoded value the way a consumer would (shared
// references expanded) and fails on a type the decoders must not return
// or on a result beyond fuzzLimits.
func checkDecoded(t *testing.T, v any, depth int, w *walked) {
	switch x := v.(type) {
	case nil, bool, int64, float64:
	case string:
		w.bytes += len(x)
	case []byte:
		w.bytes += len(x)
	case *big.Int:
		if x.IsInt64() {
			t.Fatalf("*big.Int %v fits in int64", x)
		}
	case []any:
		if x == nil {
			t.Fatalf("nil []any (would encode as null)")
		}
		w.elements += len(x)
		for _, e := range x {
			checkDecoded(t, e, depth+1, w)
		}
	case map[string]any:
		w.elements += len(x)
		for k, e := range x {
			w.bytes += len(k)
			checkDecoded(t, e, depth+1, w)
		}
	default:
		t.Fatalf("decoded a %T", v)
	}
	if depth > fuzzLimits.MaxDepth {
		t.Fatalf("nesting %d beyond MaxDepth", depth)
	}
	if w.elements > fuzzLimits.MaxElements || w.bytes > fuzzLimits.MaxBytes {
		t.Fatalf("walked %d elements and %d bytes, beyond the limits", w.elements, w.bytes)
	}
}

func FuzzDecodePickle(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > fuzzSlow {
				t.Fatalf("took %v", d)
			}
		}()
		v, err := fuzzLimits.DecodePickle(in)
		if err != nil {
			if v != nil {
				t.Fatalf("value %v returned with error %v", v, err)
			}
			if n := sentinelCount(err); n != 1 || errors.Is(err, ErrNotJSON) || errors.Is(err, ErrUnsupportedMethod) {
				t.Fatalf("error %q wraps %d sentinels", err, n)
			}
			return
		}
		checkDecoded(t, v, 1, &walked{})
	})
}

func FuzzDecode(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > fuzzSlow {
				t.Fatalf("took %v", d)
			}
		}()
		m, err := fuzzLimits.Decode(in)
		if err != nil {
			if m.Method != "" || m.Data != nil || m.Rooms != nil {
				t.Fatalf("message %+v returned with error %v", m, err)
			}
			if n := sentinelCount(err); n != 1 || errors.Is(err, ErrNotJSON) {
				t.Fatalf("error %q wraps %d sentinels", err, n)
			}
			return
		}
		if m.Namespace == "" || (m.Format != FormatJSON && m.Format != FormatPickle) {
			t.Fatalf("bad Namespace or Format: %+v", m)
		}
		switch m.Method {
		case MethodEmit:
			if m.Event == "" || m.Data == nil || m.AllRooms == (len(m.Rooms) > 0) {
				t.Fatalf("bad emit: %+v", m)
			}
			if m.Ack != nil && (m.Ack.SID == "" || m.Ack.Namespace == "") {
				t.Fatalf("bad ack: %+v", m.Ack)
			}
		case MethodEnterRoom, MethodLeaveRoom:
			if m.SID == "" || len(m.Rooms) != 1 {
				t.Fatalf("bad %s: %+v", m.Method, m)
			}
		case MethodCloseRoom:
			if len(m.Rooms) != 1 {
				t.Fatalf("bad close_room: %+v", m)
			}
		case MethodDisconnect:
			if m.SID == "" {
				t.Fatalf("bad disconnect: %+v", m)
			}
		case MethodCallback:
			if m.SID == "" || m.Data == nil {
				t.Fatalf("bad callback: %+v", m)
			}
		default:
			t.Fatalf("unknown method accepted: %+v", m)
		}
		if m.Data != nil {
			checkDecoded(t, m.Data, 1, &walked{})
		}
		payload, err := m.PayloadJSON()
		if err != nil {
			if !errors.Is(err, ErrNotJSON) {
				t.Fatalf("PayloadJSON error %v does not wrap ErrNotJSON", err)
			}
			return
		}
		if len(payload) != len(m.Data) {
			t.Fatalf("PayloadJSON gave %d arguments for %d", len(payload), len(m.Data))
		}
		for i, p := range payload {
			if !json.Valid(p) {
				t.Fatalf("argument %d is not valid JSON: %q", i, p)
			}
		}
	})
}
