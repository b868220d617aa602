package flaskqueue

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DecodePickle decodes a pickle of plain Python data (protocols 0 to 5)
// with the default Limits. See Limits.DecodePickle.
func DecodePickle(b []byte) (any, error) {
	return Limits{}.DecodePickle(b)
}

// DecodePickle decodes a pickle of plain Python data, protocols 0 to 5,
// without ever importing, constructing or calling anything: it runs only
// the pickle VM opcodes that build plain data, and refuses the whole input
// with an error wrapping ErrUnsafePickle on the first opcode that could do
// more (see ErrUnsafePickle) or that it does not know.
//
// Python values map to Go values as follows:
//
//	dict                       map[string]any (a non-str key is an error)
//	list, tuple                []any
//	set, frozenset             []any, in pickle order
//	str                        string (lone surrogates become U+FFFD)
//	bytes, bytearray           []byte (a copy, never aliasing b)
//	int                        int64, or *big.Int beyond int64
//	                           (up to 4300 decimal digits, as Python)
//	float                      float64 (NaN and ±Inf included)
//	bool                       bool
//	None                       nil
//
// Python pickles bytes below protocol 3, sets below protocol 4 and
// bytearray below protocol 5 through GLOBAL+REDUCE, so such values are
// refused as unsafe there; in later protocols they have opcodes of their
// own and decode. A container referenced several times
// through the memo decodes to one shared Go value: treat the result as
// read-only. Limits bound the result as if shared references were copied
// (see Limits.MaxElements and Limits.MaxBytes), so walking or encoding it
// is bounded too. A self-referencing container is an error.
//
// The input must hold exactly one pickle: trailing bytes after STOP are
// an error (Python ignores them). Errors wrap ErrUnsafePickle, ErrMalformed
// or ErrLimit; those found while running the VM name the byte offset.
// DecodePickle never panics.
func (l Limits) DecodePickle(b []byte) (any, error) {
	d := newDecoder(b, l)
	v, err := d.run()
	if err != nil {
		return nil, err
	}
	return d.export(v, 1)
}

// decoder is the pickle VM state for one input.
type decoder struct {
	lim   Limits
	in    []byte
	pos   int   // offset of the next unread byte
	op    int   // offset of the opcode being executed
	stack []any // values; marks index into it
	marks []int
	memo  []any // dense memo: indices 0..len-1
	// sparse holds memo indices beyond the dense part.
	sparse map[uint64]any
	// frameEnd is the end offset of the current FRAME, 0 if none.
	frameEnd int
	// built counts the elements the VM added to containers; exported and
	// exportedBytes what export walked (see Limits).
	built, exported, exportedBytes int
	// Initial backing arrays: a typical message needs no other.
	stackBuf [32]any
	markBuf  [8]int
	memoBuf  [32]any
}

func newDecoder(b []byte, l Limits) *decoder {
	d := &decoder{lim: l.withDefaults(), in: b}
	d.stack = d.stackBuf[:0]
	d.marks = d.markBuf[:0]
	d.memo = d.memoBuf[:0]
	return d
}

// Containers built by the VM. They are pointers so that memo references
// and later APPEND/SETITEM opcodes see the same object, as in Python; they
// are turned into plain Go values by export.
type (
	pyList  struct{ node }
	pyTuple struct{ node }
	pySet   struct {
		node
		frozen bool
	}
	pyDict struct {
		node
		m map[string]any // nil until the first item
	}
)

// node is the part of a container export needs: its items (lists, tuples,
// sets) and the bookkeeping that lets shared and cyclic references be
// detected and charged for.
type node struct {
	items  []any
	state  uint8 // stateFresh, stateExporting or stateDone
	height int   // nesting below and including this container
	size   int   // elements in the fully expanded subtree
	bytes  int   // str/bytes length in the fully expanded subtree
	out    any   // exported value, once stateDone
}

const (
	stateFresh uint8 = iota
	stateExporting
	stateDone
)

func (d *decoder) malformed(format string, args ...any) error {
	return fmt.Errorf("%w: pickle: %s at offset %d", ErrMalformed, fmt.Sprintf(format, args...), d.op)
}

func (d *decoder) limit(format string, args ...any) error {
	return fmt.Errorf("%w: pickle: %s at offset %d", ErrLimit, fmt.Sprintf(format, args...), d.op)
}

// run executes opcodes until STOP and returns the value on top of the
// stack, still in VM form.
func (d *decoder) run() (any, error) {
	if len(d.in) == 0 {
		return nil, fmt.Errorf("%w: pickle: empty input", ErrMalformed)
	}
	for d.pos < len(d.in) {
		d.op = d.pos
		code := d.in[d.pos]
		d.pos++
		if name := unsafeOps[code]; name != "" {
			return nil, fmt.Errorf("%w: opcode %s at offset %d", ErrUnsafePickle, name, d.op)
		}
		if opNames[code] == "" {
			return nil, fmt.Errorf("%w: unknown opcode 0x%02x at offset %d", ErrUnsafePickle, code, d.op)
		}
		if code == opStop {
			return d.stop()
		}
		if err := d.step(code); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: pickle: truncated, no STOP opcode", ErrMalformed)
}

func (d *decoder) stop() (any, error) {
	if d.pos != len(d.in) {
		return nil, d.malformed("%d trailing bytes after STOP", len(d.in)-d.pos)
	}
	if len(d.marks) != 0 {
		return nil, d.malformed("STOP with an open MARK")
	}
	if len(d.stack) != 1 {
		return nil, d.malformed("STOP with %d values on the stack, want 1", len(d.stack))
	}
	return d.stack[0], nil
}

// step executes one safe opcode.
func (d *decoder) step(code byte) error {
	switch code {
	case opProto:
		p, err := d.read(1)
		if err != nil {
			return err
		}
		if p[0] > highestProtocol {
			return d.malformed("unsupported protocol %d", p[0])
		}
		return nil
	case opFrame:
		p, err := d.read(8)
		if err != nil {
			return err
		}
		n := binary.LittleEndian.Uint64(p)
		if n > uint64(len(d.in)-d.pos) {
			return d.malformed("FRAME of %d bytes exceeds the input", n)
		}
		if d.frameEnd > d.op {
			return d.malformed("FRAME inside a frame")
		}
		d.frameEnd = d.pos + int(n)
		return nil
	case opMark:
		d.marks = append(d.marks, len(d.stack))
		return nil
	case opPop:
		if d.base() < len(d.stack) {
			d.stack = d.stack[:len(d.stack)-1]
			return nil
		}
		_, err := d.popMark()
		return err
	case opPopMark:
		_, err := d.popMark()
		return err
	case opDup:
		v, err := d.top()
		if err != nil {
			return err
		}
		d.push(v)
		return nil
	case opNone:
		d.push(nil)
		return nil
	case opNewTrue:
		d.push(true)
		return nil
	case opNewFalse:
		d.push(false)
		return nil
	case opEmptyDict:
		d.push(&pyDict{}) // the map is made by the first SETITEM(S), sized
		return nil
	case opEmptyList:
		d.push(&pyList{})
		return nil
	case opEmptyTuple:
		d.push(&pyTuple{})
		return nil
	case opEmptySet:
		d.push(&pySet{})
		return nil
	case opBinFloat:
		p, err := d.read(8)
		if err != nil {
			return err
		}
		d.push(math.Float64frombits(binary.BigEndian.Uint64(p)))
		return nil
	case opBinInt:
		p, err := d.read(4)
		if err != nil {
			return err
		}
		d.push(int64(int32(binary.LittleEndian.Uint32(p))))
		return nil
	case opBinInt1:
		p, err := d.read(1)
		if err != nil {
			return err
		}
		d.push(int64(p[0]))
		return nil
	case opBinInt2:
		p, err := d.read(2)
		if err != nil {
			return err
		}
		d.push(int64(binary.LittleEndian.Uint16(p)))
		return nil
	case opLong1, opLong4:
		return d.binLong(code)
	case opInt, opLong, opFloat, opString, opUnicode:
		return d.textValue(code)
	case opShortBinUnicode, opBinUnicode, opBinUnicode8,
		opShortBinString, opBinString,
		opShortBinBytes, opBinBytes, opBinBytes8, opByteArray8:
		return d.counted(code)
	case opMemoize, opPut, opBinPut, opLongBinPut:
		return d.put(code)
	case opGet, opBinGet, opLongBinGet:
		return d.get(code)
	}
	return d.build(code)
}

// build executes the opcodes that make or fill containers.
func (d *decoder) build(code byte) error {
	switch code {
	case opTuple1, opTuple2, opTuple3:
		n := int(code-opTuple1) + 1
		if len(d.stack)-d.base() < n {
			return d.malformed("%s on a stack of %d", opNames[code], len(d.stack)-d.base())
		}
		items := make([]any, n)
		copy(items, d.stack[len(d.stack)-n:])
		d.stack = d.stack[:len(d.stack)-n]
		return d.pushBuilt(&pyTuple{node{items: items}}, n)
	case opTuple, opList, opFrozenSet:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		owned := append([]any(nil), items...)
		var v any
		switch code {
		case opTuple:
			v = &pyTuple{node{items: owned}}
		case opList:
			v = &pyList{node{items: owned}}
		default:
			v = &pySet{node: node{items: owned}, frozen: true}
		}
		return d.pushBuilt(v, len(owned))
	case opDict:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		dict := &pyDict{m: make(map[string]any, len(items)/2)}
		if err := d.setItems(dict, items); err != nil {
			return err
		}
		d.push(dict)
		return nil
	case opAppend:
		v, err := d.pop()
		if err != nil {
			return err
		}
		return d.appendTo(code, []any{v})
	case opAppends, opAddItems:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		return d.appendTo(code, items)
	case opSetItem:
		if len(d.stack)-d.base() < 3 {
			return d.malformed("SETITEM on a stack of %d", len(d.stack)-d.base())
		}
		kv := d.stack[len(d.stack)-2:]
		dict, ok := d.stack[len(d.stack)-3].(*pyDict)
		if !ok {
			return d.malformed("SETITEM on a %s", typeName(d.stack[len(d.stack)-3]))
		}
		if err := d.setItems(dict, kv); err != nil {
			return err
		}
		d.stack = d.stack[:len(d.stack)-2]
		return nil
	case opSetItems:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		top, err := d.top()
		if err != nil {
			return err
		}
		dict, ok := top.(*pyDict)
		if !ok {
			return d.malformed("SETITEMS on a %s", typeName(top))
		}
		return d.setItems(dict, items)
	}
	// Every opcode named in opNames is handled above or in step.
	return d.malformed("opcode %s not implemented", opNames[code])
}

// appendTo adds items to the list (APPEND, APPENDS) or set (ADDITEMS) on
// top of the stack.
func (d *decoder) appendTo(code byte, items []any) error {
	top, err := d.top()
	if err != nil {
		return err
	}
	var n *node
	switch c := top.(type) {
	case *pyList:
		if code != opAddItems {
			n = &c.node
		}
	case *pySet:
		if code == opAddItems && !c.frozen {
			n = &c.node
		}
	}
	if n == nil {
		return d.malformed("%s on a %s", opNames[code], typeName(top))
	}
	if err := d.charge(len(items)); err != nil {
		return err
	}
	n.items = append(n.items, items...)
	return nil
}

// setItems stores key/value pairs into dict.
func (d *decoder) setItems(dict *pyDict, kv []any) error {
	if len(kv)%2 != 0 {
		return d.malformed("odd number of dict items (%d)", len(kv))
	}
	if err := d.charge(len(kv) / 2); err != nil {
		return err
	}
	if dict.m == nil {
		dict.m = make(map[string]any, len(kv)/2+1)
	}
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return d.malformed("dict key of type %s, want str", typeName(kv[i]))
		}
		dict.m[k] = kv[i+1]
	}
	return nil
}

// charge counts n container elements against MaxElements.
func (d *decoder) charge(n int) error {
	d.built += n
	if d.built > d.lim.MaxElements {
		return d.limit("more than %d container elements", d.lim.MaxElements)
	}
	return nil
}

func (d *decoder) pushBuilt(v any, n int) error {
	if err := d.charge(n); err != nil {
		return err
	}
	d.push(v)
	return nil
}

// read consumes n bytes of opcode argument.
func (d *decoder) read(n int) ([]byte, error) {
	if n < 0 || n > len(d.in)-d.pos {
		return nil, d.malformed("truncated %s argument", opNames[d.in[d.op]])
	}
	p := d.in[d.pos : d.pos+n]
	d.pos += n
	return p, nil
}

// base is the stack index of the innermost open MARK (0 if none): values
// below it belong to an enclosing MARK and are out of reach, as in
// Python's metastack.
func (d *decoder) base() int {
	if len(d.marks) == 0 {
		return 0
	}
	return d.marks[len(d.marks)-1]
}

func (d *decoder) push(v any) { d.stack = append(d.stack, v) }

func (d *decoder) pop() (any, error) {
	if len(d.stack) <= d.base() {
		return nil, d.malformed("%s on an empty stack", opNames[d.in[d.op]])
	}
	v := d.stack[len(d.stack)-1]
	d.stack = d.stack[:len(d.stack)-1]
	return v, nil
}

func (d *decoder) top() (any, error) {
	if len(d.stack) <= d.base() {
		return nil, d.malformed("%s on an empty stack", opNames[d.in[d.op]])
	}
	return d.stack[len(d.stack)-1], nil
}

// popMark removes and returns the values above the innermost MARK. The
// returned slice aliases the stack and is only valid until the next push.
func (d *decoder) popMark() ([]any, error) {
	if len(d.marks) == 0 {
		return nil, d.malformed("%s without MARK", opNames[d.in[d.op]])
	}
	m := d.marks[len(d.marks)-1]
	d.marks = d.marks[:len(d.marks)-1]
	items := d.stack[m:]
	d.stack = d.stack[:m]
	return items, nil
}
