package flaskqueue

import (
	"encoding/binary"
	"strconv"
)

// put executes MEMOIZE, PUT, BINPUT and LONG_BINPUT: it stores the top of
// the stack in the memo.
func (d *decoder) put(code byte) error {
	var idx uint64
	switch code {
	case opMemoize:
		idx = uint64(len(d.memo) + len(d.sparse))
	case opPut:
		p, err := d.line()
		if err != nil {
			return err
		}
		i, err := strconv.ParseUint(string(p), 10, 32)
		if err != nil {
			return d.malformed("PUT index %q", truncate(string(p)))
		}
		idx = i
	case opBinPut:
		p, err := d.read(1)
		if err != nil {
			return err
		}
		idx = uint64(p[0])
	default:
		p, err := d.read(4)
		if err != nil {
			return err
		}
		idx = uint64(binary.LittleEndian.Uint32(p))
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
	var idx uint64
	switch code {
	case opGet:
		p, err := d.line()
		if err != nil {
			return err
		}
		i, err := strconv.ParseUint(string(p), 10, 32)
		if err != nil {
			return d.malformed("GET index %q", truncate(string(p)))
		}
		idx = i
	case opBinGet:
		p, err := d.read(1)
		if err != nil {
			return err
		}
		idx = uint64(p[0])
	default:
		p, err := d.read(4)
		if err != nil {
			return err
		}
		idx = uint64(binary.LittleEndian.Uint32(p))
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
