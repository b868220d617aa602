package flaskqueue

import (
	"errors"
	"math"
	"math/big"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func bigInt(s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return v
}

func TestDecodePickleValues(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want any
	}{
		{"none", pk(opNone, opStop), nil},
		{"newtrue", proto4(opNewTrue), true},
		{"newfalse", proto4(opNewFalse), false},
		{"int true", pk("I01\n.", ""), true},
		{"int false", pk("I00\n."), false},
		{"int", pk("I-42\n."), int64(-42)},
		{"int plus", pk("I+7\n."), int64(7)},
		{"int big", pk("I123456789012345678901234567890\n."), bigInt("123456789012345678901234567890")},
		{"long suffix", pk("L1180591620717411303424L\n."), bigInt("1180591620717411303424")},
		{"long no suffix", pk("L-5\n."), int64(-5)},
		{"binint negative", pk(opBinInt, u32(0xfffffffe), opStop), int64(-2)},
		{"binint1", pk(opBinInt1, 0xff, opStop), int64(255)},
		{"binint2", pk(opBinInt2, 0xff, 0xff, opStop), int64(65535)},
		{"long1 empty", proto4(opLong1, 0), int64(0)},
		{"long1 minus one", proto4(opLong1, 1, 0xff), int64(-1)},
		{"long1 int64 min", proto4(opLong1, 8, []byte{0, 0, 0, 0, 0, 0, 0, 0x80}), int64(math.MinInt64)},
		{"long1 2^63", proto4(opLong1, 9, []byte{0, 0, 0, 0, 0, 0, 0, 0x80, 0}), bigInt("9223372036854775808")},
		{"long1 -2^63-1", proto4(opLong1, 9, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff}), bigInt("-9223372036854775809")},
		{"long1 9 bytes fitting", proto4(opLong1, 9, []byte{5, 0, 0, 0, 0, 0, 0, 0, 0}), int64(5)},
		{"long4", proto4(opLong4, u32(2), 0x00, 0x01), int64(256)},
		{"binfloat", proto4(opBinFloat, []byte{0x3f, 0xf8, 0, 0, 0, 0, 0, 0}), 1.5},
		{"float", pk("F-2.5e-3\n."), -2.5e-3},
		{"float overflow", pk("F1e400\n."), math.Inf(1)},
		{"float underflow", pk("F1e-400\n."), 0.0},
		{"short_binunicode", proto4(su("héllo")), "héllo"},
		{"binunicode", pk(opBinUnicode, u32(2), "ab", opStop), "ab"},
		{"binunicode8", proto4(opBinUnicode8, u64(3), "abc"), "abc"},
		{"lone surrogate", proto4(opShortBinUnicode, 5, "a\xed\xa0\x80b"), "a\uFFFDb"},
		{"unicode escapes", pk("Va\\u005cb\\u20ac\\U0001f680\\u000a\xe9\n."), "a\\b€🚀\né"},
		{"unicode even backslashes", pk("V\\\\u0041\n."), "\\\\u0041"},
		{"unicode odd backslashes", pk("V\\\\\\u0041\n."), "\\\\A"},
		{"unicode other escape", pk("Va\\q\\\n."), "a\\q\\"},
		{"unicode surrogate escape", pk("V\\ud800\n."), "\uFFFD"},
		{"string escapes", pk(`S'a\'b\\c\x41\101\n\t"q'`, "\n."), "a'b\\cAA\n\t\"q"},
		{"string double quoted", pk(`S"it's"`, "\n."), "it's"},
		{"string unknown escape", pk(`S'\q'`, "\n."), `\q`},
		{"string octal", pk(`S'\0\7\77\101'`, "\n."), "\x00\x07?A"},
		{"short_binstring", pk(opShortBinString, 2, "hi", opStop), "hi"},
		{"binstring", pk(opBinString, u32(2), "hi", opStop), "hi"},
		{"short_binbytes", proto4(opShortBinBytes, 2, []byte{0, 0xff}), []byte{0, 0xff}},
		{"binbytes", proto4(opBinBytes, u32(1), "x"), []byte("x")},
		{"binbytes8", proto4(opBinBytes8, u64(1), "x"), []byte("x")},
		{"bytearray8", pk(opProto, 5, opByteArray8, u64(2), "ab", opStop), []byte("ab")},
		{"empty list", proto4(opEmptyList), []any{}},
		{"empty tuple", proto4(opEmptyTuple), []any{}},
		{"empty dict", proto4(opEmptyDict), map[string]any{}},
		{"empty set", proto4(opEmptySet), []any{}},
		{"tuple1", proto4(opNone, opTuple1), []any{nil}},
		{"tuple2", proto4(opNone, opNewTrue, opTuple2), []any{nil, true}},
		{"tuple3", proto4(opBinInt1, 1, opBinInt1, 2, opBinInt1, 3, opTuple3), []any{int64(1), int64(2), int64(3)}},
		{"tuple", pk(opMark, "I1\nI2\n", opTuple, opStop), []any{int64(1), int64(2)}},
		{"list", pk(opMark, "I1\n", opList, opStop), []any{int64(1)}},
		{"append", proto4(opEmptyList, opNone, opAppend), []any{nil}},
		{"appends", proto4(opEmptyList, opMark, opNone, opNewTrue, opAppends), []any{nil, true}},
		{"dict", pk(opMark, su("a"), "I1\n", opDict, opStop), map[string]any{"a": int64(1)}},
		{"setitem", proto4(opEmptyDict, su("k"), su("v"), opSetItem), map[string]any{"k": "v"}},
		{"setitems duplicate key", proto4(opEmptyDict, opMark, su("k"), opNone, su("k"), opNewTrue, opSetItems), map[string]any{"k": true}},
		{"additems", proto4(opEmptySet, opMark, opBinInt1, 1, opBinInt1, 2, opAddItems), []any{int64(1), int64(2)}},
		{"frozenset", proto4(opMark, opBinInt1, 1, opFrozenSet), []any{int64(1)}},
		{"dup", proto4(opEmptyList, opDup, opNone, opAppend, opTuple2), []any{[]any{nil}, []any{nil}}},
		{"pop", proto4(opNone, opNewTrue, opPop), nil},
		{"pop above mark", proto4(opNone, opMark, opNewTrue, opPop, opPopMark), nil},
		{"pop_mark", proto4(opNone, opMark, opNewTrue, opNewFalse, opPopMark), nil},
		{"pop mark only", proto4(opNone, opMark, opPop), nil},
		{"memo shared list", proto4(opEmptyList, opMemoize, opNone, opAppend, opPop, opBinGet, 0, opBinGet, 0, opTuple2), []any{[]any{nil}, []any{nil}}},
		{"put get text", pk(opNewTrue, "p7\n", opPop, "g7\n", opStop), true},
		{"long_binput sparse", proto4(opNone, opLongBinPut, u32(0xfffffff0), opPop, opLongBinGet, u32(0xfffffff0)), nil},
		{"binput overwrite", proto4(opNewTrue, opBinPut, 0, opNewFalse, opBinPut, 0, opPop, opPop, opBinGet, 0), false},
		{"sparse then dense", proto4(opNewTrue, opBinPut, 1, opNewFalse, opBinPut, 0, opNone, opBinPut, 1, opPop, opPop, opPop, opBinGet, 1), nil},
		{"frame", proto4(opFrame, u64(2), opNone, opPop, opNewTrue), true},
		{"protocol 5", pk(opProto, 5, opNone, opStop), nil},
		{"protocol 0 dict", pk("(dp0\nVk\np1\nI1\ns."), map[string]any{"k": int64(1)}},
		{"protocol 1 dict", pk(opEmptyDict, "q\x00", opMark, opShortBinString, 1, "k", opBinInt1, 1, opSetItems, opStop), map[string]any{"k": int64(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodePickle(tt.in)
			if err != nil {
				t.Fatalf("DecodePickle(%q): %v", tt.in, err)
			}
			if f, ok := tt.want.(float64); ok && f == 0 {
				if g, ok := got.(float64); !ok || g != 0 {
					t.Fatalf("got %#v, want 0.0", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodePickle(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

// TestDecodePickleRefusesUnsafe feeds each unsafe opcode in the shape an
// attacker would use and checks the refusal names it and its offset.
func TestDecodePickleRefusesUnsafe(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"GLOBAL", pk(opProto, 2, "cos\nsystem\n", su("id"), opTuple1, opReduce, opStop), "opcode GLOBAL at offset 2"},
		{"STACK_GLOBAL", proto4(su("os"), su("system"), opStackGlobal, su("id"), opTuple1, opReduce), "opcode STACK_GLOBAL at offset 14"},
		{"REDUCE", proto4(opNone, opEmptyTuple, opReduce), "opcode REDUCE at offset 4"},
		{"BUILD", proto4(opEmptyDict, opEmptyDict, opBuild), "opcode BUILD at offset 4"},
		{"INST", pk(opMark, "ios\nsystem\n", opStop), "opcode INST at offset 1"},
		{"OBJ", pk(opMark, opNone, opObj, opStop), "opcode OBJ at offset 2"},
		{"NEWOBJ", proto4(opNone, opEmptyTuple, opNewObj), "opcode NEWOBJ at offset 4"},
		{"NEWOBJ_EX", proto4(opNone, opEmptyTuple, opEmptyDict, opNewObjEx), "opcode NEWOBJ_EX at offset 5"},
		{"EXT1", proto4(opExt1, 1), "opcode EXT1 at offset 2"},
		{"EXT2", proto4(opExt2, 1, 0), "opcode EXT2 at offset 2"},
		{"EXT4", proto4(opExt4, u32(1)), "opcode EXT4 at offset 2"},
		{"PERSID", pk("Pid\n."), "opcode PERSID at offset 0"},
		{"BINPERSID", proto4(su("id"), opBinPersID), "opcode BINPERSID at offset 6"},
		{"NEXT_BUFFER", pk(opProto, 5, opNextBuffer, opStop), "opcode NEXT_BUFFER at offset 2"},
		{"READONLY_BUFFER", pk(opProto, 5, opEmptyList, opReadonlyBuffer, opStop), "opcode READONLY_BUFFER at offset 3"},
		{"unknown opcode", proto4(0xff), "unknown opcode 0xff at offset 2"},
		{"unsafe after valid data", proto4(opEmptyDict, su("k"), su("v"), opSetItem, opGlobal), "opcode GLOBAL at offset 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := DecodePickle(tt.in)
			if !errors.Is(err, ErrUnsafePickle) {
				t.Fatalf("DecodePickle = %v, %v; want ErrUnsafePickle", v, err)
			}
			if want := "flaskqueue: unsafe pickle: " + tt.want; err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
		})
	}
}

// TestDecodePickleEveryOpcode checks that each of the 256 byte values is
// either executed or refused as unsafe: nothing falls through.
func TestDecodePickleEveryOpcode(t *testing.T) {
	for c := 0; c < 256; c++ {
		_, err := DecodePickle([]byte{byte(c)})
		known, unsafe := opNames[c] != "", unsafeOps[c] != ""
		switch {
		case known && unsafe:
			t.Errorf("opcode 0x%02x is both executed and unsafe", c)
		case !known:
			if !errors.Is(err, ErrUnsafePickle) {
				t.Errorf("opcode 0x%02x: err = %v, want ErrUnsafePickle", c, err)
			}
		case err == nil:
			t.Errorf("opcode 0x%02x alone decoded without error", c)
		case errors.Is(err, ErrUnsafePickle):
			t.Errorf("executed opcode %s refused as unsafe: %v", opNames[c], err)
		}
	}
	if n := countNonEmpty(opNames[:]); n != 53 {
		t.Errorf("%d executed opcodes, want 53", n)
	}
	if n := countNonEmpty(unsafeOps[:]); n != 15 {
		t.Errorf("%d unsafe opcodes, want 15", n)
	}
}

func countNonEmpty(names []string) int {
	n := 0
	for _, s := range names {
		if s != "" {
			n++
		}
	}
	return n
}

func TestDecodePickleMalformed(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string // substring of the error
	}{
		{"empty", nil, "empty input"},
		{"no stop", pk(opProto, 4, opNone), "no STOP"},
		{"trailing bytes", pk(opNone, opStop, "x"), "1 trailing bytes after STOP"},
		{"two values", proto4(opNone, opNone), "2 values on the stack"},
		{"no value", pk(opStop), "0 values on the stack"},
		{"open mark", proto4(opNone, opMark), "open MARK"},
		{"protocol 6", pk(opProto, 6, opNone, opStop), "unsupported protocol 6"},
		{"truncated proto", pk(opProto), "truncated PROTO argument"},
		{"truncated binint", pk(opBinInt, 1, 2), "truncated BININT argument"},
		{"truncated short_binunicode", pk(opProto, 4, opShortBinUnicode, 5, "ab"), "SHORT_BINUNICODE of 5 bytes exceeds the input"},
		{"huge binunicode", pk(opBinUnicode, u32(0xffffffff), "ab."), "BINUNICODE of 4294967295 bytes exceeds the input"},
		{"huge binunicode8", pk(opBinUnicode8, u64(math.MaxUint64), "."), "exceeds the input"},
		{"huge bytearray8", pk(opByteArray8, u64(1<<62), "."), "exceeds the input"},
		{"negative binstring", pk(opBinString, u32(0xffffffff), "."), "negative length"},
		{"negative long4", pk(opLong4, u32(0xffffffff), "."), "negative length"},
		{"huge frame", pk(opProto, 4, opFrame, u64(100), opNone, opStop), "FRAME of 100 bytes exceeds the input"},
		{"nested frame", pk(opProto, 4, opFrame, u64(10), opFrame, u64(1), opNone, opStop), "FRAME inside a frame"},
		{"unterminated int", pk("I12"), "unterminated INT argument"},
		{"bad int", pk("Iabc\n."), `INT "abc"`},
		{"hex int", pk("I0x10\n."), `INT "0x10"`},
		{"bad long", pk("L\n."), `LONG ""`},
		{"bad float", pk("Fpi\n."), `FLOAT "pi"`},
		{"unquoted string", pk("Sabc\n."), "STRING: not a quoted string"},
		{"mismatched quotes", pk(`S'abc"`, "\n."), "STRING: not a quoted string"},
		{"bad string hex", pk(`S'\xZZ'`, "\n."), `invalid \x escape`},
		{"truncated string hex", pk(`S'\x4'`, "\n."), `truncated \x escape`},
		{"string not utf8", pk(`S'\xff'`, "\n."), "not valid UTF-8"},
		{"binstring not utf8", pk(opShortBinString, 1, 0xff, opStop), "SHORT_BINSTRING is not valid UTF-8"},
		{"unicode truncated escape", pk("V\\u12\n."), `truncated \u escape`},
		{"unicode bad escape", pk("V\\uZZZZ\n."), `invalid \u escape`},
		{"unicode beyond max rune", pk("V\\U00110000\n."), "beyond U+10FFFF"},
		{"pop empty", pk(opPop, opStop), "POP without MARK"},
		{"pop_mark without mark", pk(opNone, opPopMark, opStop), "POP_MARK without MARK"},
		{"dup empty", pk(opDup, opStop), "DUP on an empty stack"},
		{"append empty", pk(opAppend, opStop), "APPEND on an empty stack"},
		{"append across mark", proto4(opEmptyList, opMark, opNone, opAppend), "APPEND on an empty stack"},
		{"append to None", proto4(opNone, opNone, opAppend), "APPEND on a None"},
		{"append to dict", proto4(opEmptyDict, opNone, opAppend), "APPEND on a dict"},
		{"appends to set", proto4(opEmptySet, opMark, opNone, opAppends), "APPENDS on a set"},
		{"additems to list", proto4(opEmptyList, opMark, opNone, opAddItems), "ADDITEMS on a list"},
		{"additems to frozenset", proto4(opMark, opFrozenSet, opMark, opNone, opAddItems), "ADDITEMS on a set"},
		{"appends without mark", proto4(opEmptyList, opAppends), "APPENDS without MARK"},
		{"setitem short stack", proto4(opEmptyDict, opNone, opSetItem), "SETITEM on a stack of 2"},
		{"setitem on list", proto4(opEmptyList, su("k"), opNone, opSetItem), "SETITEM on a list"},
		{"setitems on tuple", proto4(opEmptyTuple, opMark, su("k"), opNone, opSetItems), "SETITEMS on a tuple"},
		{"setitems odd", proto4(opEmptyDict, opMark, su("k"), opSetItems), "odd number of dict items (1)"},
		{"dict odd", pk(opMark, opNone, opDict, opStop), "odd number of dict items"},
		{"int key", proto4(opEmptyDict, opBinInt1, 1, opNone, opSetItem), "dict key of type int, want str"},
		{"tuple key", proto4(opEmptyDict, opEmptyTuple, opNone, opSetItem), "dict key of type tuple, want str"},
		{"tuple2 short", proto4(opNone, opTuple2), "TUPLE2 on a stack of 1"},
		{"tuple3 across mark", proto4(opNone, opMark, opNone, opNone, opTuple3), "TUPLE3 on a stack of 2"},
		{"get undefined", proto4(opBinGet, 3), "memo entry 3 not defined"},
		{"long_binget undefined", proto4(opLongBinGet, u32(1<<31)), "memo entry 2147483648 not defined"},
		{"put empty stack", proto4(opMemoize), "MEMOIZE on an empty stack"},
		{"put bad index", pk(opNone, "p-1\n."), `PUT index "-1"`},
		{"get bad index", pk("gx\n."), `GET index "x"`},
		{"self-referencing list", proto4(opEmptyList, opMemoize, opBinGet, 0, opAppend), "container contains itself"},
		{"self-referencing dict", proto4(opEmptyDict, opMemoize, su("me"), opBinGet, 0, opSetItem), "container contains itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := DecodePickle(tt.in)
			if !errors.Is(err, ErrMalformed) || v != nil {
				t.Fatalf("DecodePickle(%q) = %#v, %v; want ErrMalformed", tt.in, v, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "flaskqueue: malformed message: pickle: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// nestedLists is depth lists, each inside the previous one.
func nestedLists(depth int) []byte {
	body := []any{opProto, 4}
	for range depth {
		body = append(body, opEmptyList)
	}
	for range depth - 1 {
		body = append(body, opAppend)
	}
	return pk(append(body, opStop)...)
}

// laughs is a "billion laughs" pickle: level i is a list holding level
// i-1 twice, through the memo, so n levels expand to 2^n elements.
func laughs(levels int) []byte {
	body := []any{opProto, 4, su("lol"), opMemoize, opPop} // memo 0
	for i := range levels {
		body = append(body, opBinGet, byte(i), opBinGet, byte(i), opTuple2, opMemoize)
		if i < levels-1 {
			body = append(body, opPop)
		}
	}
	return pk(append(body, opStop)...)
}

// stringLaughs shares one size-byte string 2^levels times.
func stringLaughs(size, levels int) []byte {
	body := []any{opProto, 4, opBinUnicode, u32(uint32(size)), strings.Repeat("x", size), opMemoize, opPop}
	for i := range levels {
		body = append(body, opBinGet, byte(i), opBinGet, byte(i), opTuple2, opMemoize)
		if i < levels-1 {
			body = append(body, opPop)
		}
	}
	return pk(append(body, opStop)...)
}

func TestDecodePickleLimits(t *testing.T) {
	manyMemo := []any{opProto, 4, opNone}
	for range 11 {
		manyMemo = append(manyMemo, opMemoize)
	}
	manyMemo = append(manyMemo, opStop)
	manyItems := []any{opProto, 4, opEmptyList, opMark}
	for range 11 {
		manyItems = append(manyItems, opNone)
	}
	manyItems = append(manyItems, opAppends, opStop)

	tests := []struct {
		name   string
		limits Limits
		in     []byte
		want   string // "" means success
	}{
		{"depth at default", Limits{}, nestedLists(DefaultMaxDepth), ""},
		{"depth beyond default", Limits{}, nestedLists(DefaultMaxDepth + 1), "nesting deeper than 100"},
		{"depth custom", Limits{MaxDepth: 3}, nestedLists(4), "nesting deeper than 3"},
		{"deep shared subtree", Limits{MaxDepth: 4}, pk(opProto, 4, opEmptyList, opEmptyList, opAppend, opMemoize, opEmptyList, opEmptyList, opBinGet, 0, opAppend, opAppend, opTuple2, opStop), "nesting deeper than 4"},
		{"memo", Limits{MaxMemo: 10}, pk(manyMemo...), "more than 10 memo entries"},
		{"memo sparse", Limits{MaxMemo: 1}, proto4(opNone, opBinPut, 5, opBinPut, 6), "more than 1 memo entries"},
		{"elements built", Limits{MaxElements: 10}, pk(manyItems...), "more than 10 container elements"},
		{"laughs small", Limits{}, laughs(10), ""},
		{"laughs", Limits{}, laughs(40), "once shared references are expanded"},
		{"laughs custom", Limits{MaxElements: 1000}, laughs(10), "once shared references are expanded"},
		{"string laughs small", Limits{}, stringLaughs(1000, 10), ""},
		{"string laughs", Limits{}, stringLaughs(60000, 18), "more than 33554432 bytes of text and binary values"},
		{"string laughs custom", Limits{MaxBytes: 1000*1024 - 1}, stringLaughs(1000, 10), "bytes of text and binary values"},
		{"dict key bytes", Limits{MaxBytes: 5}, proto4(opEmptyDict, su("abcdef"), opNone, opSetItem), "more than 5 bytes"},
		{"bytes value", Limits{MaxBytes: 2}, proto4(opShortBinBytes, 3, "abc"), "more than 2 bytes"},
		{"big int laughs", Limits{MaxBytes: 1 << 16}, pk(append([]any{opProto, 4, opLong4, u32(1000), strings.Repeat("\x01", 1000), opMemoize, opPop,
			opBinGet, 0, opBinGet, 0, opTuple2, opMemoize, opPop}, append(func() []any {
			var b []any
			for i := 1; i < 10; i++ {
				b = append(b, opBinGet, byte(i), opBinGet, byte(i), opTuple2, opMemoize)
				if i < 9 {
					b = append(b, opPop)
				}
			}
			return b
		}(), opStop)...)...), "bytes of text and binary values"},
		{"long4 too long", Limits{}, pk(opLong4, u32(maxIntBytes+1), "."), "integer of 1786 bytes"},
		{"int too many digits", Limits{}, pk("I", strings.Repeat("9", maxIntDigits+1), "\n."), "more than 4300 digits"},
		{"int max digits", Limits{}, pk("I", strings.Repeat("9", maxIntDigits), "\n."), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			v, err := tt.limits.DecodePickle(tt.in)
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("took %v", elapsed)
			}
			if tt.want == "" {
				if err != nil {
					t.Fatalf("DecodePickle: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrLimit) || v != nil {
				t.Fatalf("DecodePickle = %v, %v; want ErrLimit", v, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestDecodePickleDoesNotAlias checks that bytes are copied out of the
// input, so the caller may reuse its buffer.
func TestDecodePickleDoesNotAlias(t *testing.T) {
	in := proto4(opShortBinBytes, 3, "abc")
	v, err := DecodePickle(in)
	if err != nil {
		t.Fatal(err)
	}
	copy(in, strings.Repeat("z", len(in)))
	if got := string(v.([]byte)); got != "abc" {
		t.Errorf("decoded bytes changed with the input: %q", got)
	}
}

// TestDecodePickleRefusesHugeIntegerBeforeParsing is what og-rek cannot
// do (see "Why not og-rek" in doc.go): it turns an INT or LONG line into
// a *big.Int before returning, which costs time and memory quadratic in
// the digits (2.2 GB allocated and over 2 s for these 1 MB inputs), so a
// walker over its result comes too late to apply the 4300-digit limit.
// Here the digits are counted first and nothing proportional to them is
// allocated.
func TestDecodePickleRefusesHugeIntegerBeforeParsing(t *testing.T) {
	digits := strings.Repeat("9", 1_000_000)
	for _, in := range [][]byte{
		pk("I", digits, "\n."),
		pk("L", digits, "L\n."),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		v, err := DecodePickle(in)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrLimit) || v != nil {
			t.Fatalf("DecodePickle(%.8q...) = %v, %v; want ErrLimit", in, v, err)
		}
		// The decoder itself needs about 2 KB; the input is 1 MB.
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(len(in)) {
			t.Errorf("%.8q...: %d bytes allocated for a %d-byte input", in, alloc, len(in))
		}
	}
}
