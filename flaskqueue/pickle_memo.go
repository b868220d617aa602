package flaskqueue

import (
	"encoding/binary"
	"strconv"
)

// put executes MEMOIZE, PUT, BINPUT and LONG_BINPUT: it stores the top of
// the stack in the memo.
func (d *decoder) put(code byte) error {
	idx := uint64(len(d.memo) + len(d.sparse)) // MEMOIZE: the next index
	if code != opMemoize {
		width, name := 4, "LONG_BINPUT"
		switch code {
		case opPut:
			width, name = 0, "PUT"
		case opBinPut:
			width, name = 1, "BINPUT"
		}
		var err error
		if idx, err = d.memoIndex(name, width); err != nil {
			return err
		}
	}
	v, err := d.top()
	if err != nil {
		return err
	}
	switch {
	case idx < uint64(len(d.memo)):
		d.memo[idx] = v
		return nil
	case idx == uint64(len(d.memo)):
		if len(d.memo)+len(d.sparse) >= d.lim.MaxMemo {
			return d.limit("more than %d memo entries", d.lim.MaxMemo)
		}
		d.memo = append(d.memo, v)
		delete(d.sparse, idx) // the dense part now owns idx
		return nil
	}
	// Python's pickler numbers memo entries densely; other writers may
	// not. Keep such entries aside instead of growing the dense slice to
	// an attacker-chosen index.
	if _, ok := d.sparse[idx]; !ok {
		if len(d.memo)+len(d.sparse) >= d.lim.MaxMemo {
			return d.limit("more than %d memo entries", d.lim.MaxMemo)
		}
		if d.sparse == nil {
			d.sparse = make(map[uint64]any)
		}
	}
	d.sparse[idx] = v
	return nil
}

// get executes GET, BINGET and LONG_BINGET: it pushes a memo entry.
func (d *decoder) get(code byte) error {
	width, name := 4, "LONG_BINGET"
	switch code {
	case opGet:
		width, name = 0, "GET"
	case opBinGet:
		width, name = 1, "BINGET"
	}
	idx, err := d.memoIndex(name, width)
	if err != nil {
		return err
	}
	if idx < uint64(len(d.memo)) {
		d.push(d.memo[idx])
		return nil
	}
	v, ok := d.sparse[idx]
	if !ok {
		return d.malformed("memo entry %d not defined", idx)
	}
	d.push(v)
	return nil
}

// memoIndex reads the memo index operand of PUT/GET (width 0: a decimal
// line), BINPUT/BINGET (width 1: one byte) or LONG_BINPUT/LONG_BINGET
// (width 4: four little-endian bytes).
func (d *decoder) memoIndex(op string, width int) (uint64, error) {
	switch width {
	case 0:
		p, err := d.line()
		if err != nil {
			return 0, err
		}
		i, err := strconv.ParseUint(string(p), 10, 32)
		if err != nil {
			return 0, d.malformed("%s index %q", op, truncate(string(p)))
		}
		return i, nil
	case 1:
		p, err := d.read(1)
		if err != nil {
			return 0, err
		}
		return uint64(p[0]), nil
	default:
		p, err := d.read(4)
		if err != nil {
			return 0, err
		}
		return uint64(binary.LittleEndian.Uint32(p)), nil
	}
}
