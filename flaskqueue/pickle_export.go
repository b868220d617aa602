package flaskqueue

import (
	"fmt"
	"math/big"
)

// export turns a VM value into plain Go values (see DecodePickle), in
// place: list, tuple and set items become the []any, dict maps are reused.
// depth is the nesting depth v would have (1 for the top-level value).
//
// A container reached a second time through a shared memo reference is
// not walked again, but its expanded size (elements and bytes) is charged
// against MaxElements and MaxBytes and its height against MaxDepth, so the
// budget bounds what any later walk of the result (json.Marshal, a caller)
// can cost. Reaching a container while it is being exported means it
// contains itself.
func (d *decoder) export(v any, depth int) (any, error) {
	n := nodeOf(v)
	m, _ := v.(*pyDict)
	if n == nil {
		if err := d.chargeBytes(scalarBytes(v)); err != nil {
			return nil, err
		}
		return v, nil
	}
	switch n.state {
	case stateExporting:
		return nil, fmt.Errorf("%w: pickle: container contains itself", ErrMalformed)
	case stateDone:
		if err := d.chargeElements(n.size); err != nil {
			return nil, err
		}
		if err := d.chargeBytes(n.bytes); err != nil {
			return nil, err
		}
		if depth-1+n.height > d.lim.MaxDepth {
			return nil, d.depthError()
		}
		return n.out, nil
	}
	if depth > d.lim.MaxDepth {
		return nil, d.depthError()
	}
	n.state = stateExporting
	elementsBefore, bytesBefore := d.exported, d.exportedBytes
	height := 0
	if m != nil {
		if m.m == nil {
			m.m = map[string]any{}
		}
		if err := d.chargeElements(len(m.m)); err != nil {
			return nil, err
		}
		for k, child := range m.m {
			if err := d.chargeBytes(len(k)); err != nil {
				return nil, err
			}
			out, h, err := d.exportChild(child, depth)
			if err != nil {
				return nil, err
			}
			if h > 0 {
				m.m[k] = out
				height = max(height, h)
			}
		}
		n.out = m.m
	} else {
		if err := d.chargeElements(len(n.items)); err != nil {
			return nil, err
		}
		for i, child := range n.items {
			out, h, err := d.exportChild(child, depth)
			if err != nil {
				return nil, err
			}
			if h > 0 {
				n.items[i] = out
				height = max(height, h)
			}
		}
		if n.items == nil {
			n.items = []any{}
		}
		n.out = n.items
	}
	n.height = height + 1
	n.size = d.exported - elementsBefore
	n.bytes = d.exportedBytes - bytesBefore
	n.state = stateDone
	return n.out, nil
}

// exportChild exports a container's element and reports its height (0 for
// a scalar, which needs no rewriting).
func (d *decoder) exportChild(child any, depth int) (any, int, error) {
	n := nodeOf(child)
	if n == nil {
		return child, 0, d.chargeBytes(scalarBytes(child))
	}
	out, err := d.export(child, depth+1)
	if err != nil {
		return nil, 0, err
	}
	return out, n.height, nil
}

// scalarBytes is what a scalar counts against MaxBytes: the length of a
// str or bytes value, an upper bound of the decimal digits of a big int.
func scalarBytes(v any) int {
	switch x := v.(type) {
	case string:
		return len(x)
	case []byte:
		return len(x)
	case *big.Int:
		return x.BitLen()/3 + 1
	}
	return 0
}

func (d *decoder) chargeElements(n int) error {
	d.exported += n
	if d.exported > d.lim.MaxElements {
		return fmt.Errorf("%w: more than %d container elements once shared references are expanded", ErrLimit, d.lim.MaxElements)
	}
	return nil
}

func (d *decoder) chargeBytes(n int) error {
	d.exportedBytes += n
	if d.exportedBytes > d.lim.MaxBytes {
		return fmt.Errorf("%w: more than %d bytes of text and binary values once shared references are expanded", ErrLimit, d.lim.MaxBytes)
	}
	return nil
}

func (d *decoder) depthError() error {
	return fmt.Errorf("%w: nesting deeper than %d", ErrLimit, d.lim.MaxDepth)
}

// nodeOf returns the container node of a VM list, tuple, set or dict, and
// nil for a scalar.
func nodeOf(v any) *node {
	switch c := v.(type) {
	case *pyList:
		return &c.node
	case *pyTuple:
		return &c.node
	case *pySet:
		return &c.node
	case *pyDict:
		return &c.node
	}
	return nil
}
