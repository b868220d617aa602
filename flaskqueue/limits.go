package flaskqueue

// Default bounds used for every zero field of Limits.
const (
	// DefaultMaxDepth is the default maximum container nesting depth.
	DefaultMaxDepth = 100
	// DefaultMaxElements is the default maximum number of container
	// elements (list, tuple and set items plus dict entries).
	DefaultMaxElements = 1 << 20
	// DefaultMaxMemo is the default maximum number of pickle memo entries.
	DefaultMaxMemo = 1 << 20
	// DefaultMaxBytes is the default maximum total length of text and
	// binary values.
	DefaultMaxBytes = 32 << 20
)

// Python's default sys.int_max_str_digits: the longest decimal integer
// literal accepted (INT, LONG opcodes and JSON numbers), and the matching
// byte length for LONG1/LONG4 (8*1785 bits < 10^4300).
const (
	maxIntDigits = 4300
	maxIntBytes  = 1785
)

// Limits bounds the resources one decode may use. Input size is the
// caller's business (cap what is read from Redis); within an input of n
// bytes the decoder's memory is O(n) and its run time O(n + MaxElements),
// and walking or encoding the result costs O(MaxElements + MaxBytes).
//
// A zero field takes its Default* value, so Limits{} is the default.
type Limits struct {
	// MaxDepth caps container nesting (a top-level dict is depth 1).
	// Values above 10000 count as 10000: the decoders recurse once per
	// level.
	MaxDepth int
	// MaxElements caps the number of container elements, counted twice:
	// once while the pickle VM builds containers and once over the
	// decoded tree as a caller (or json.Marshal) would walk it, where a
	// container referenced n times through the memo counts n times. This
	// is what stops "billion laughs" inputs whose shared references would
	// expand exponentially when encoded.
	MaxElements int
	// MaxMemo caps the number of pickle memo entries.
	MaxMemo int
	// MaxBytes caps the total length of the str and bytes values and dict
	// keys (and the digits of big integers) of the decoded tree, counted
	// like MaxElements once per reference: one long string referenced
	// through the memo a million times would otherwise encode to
	// gigabytes of JSON.
	MaxBytes int
}

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	l.MaxDepth = min(l.MaxDepth, maxPayloadDepth)
	if l.MaxElements <= 0 {
		l.MaxElements = DefaultMaxElements
	}
	if l.MaxMemo <= 0 {
		l.MaxMemo = DefaultMaxMemo
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	return l
}
