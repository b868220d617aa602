package flaskqueue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// counted decodes the length-prefixed string and bytes opcodes.
func (d *decoder) counted(code byte) error {
	var width int
	switch code {
	case opShortBinUnicode, opShortBinString, opShortBinBytes:
		width = 1
	case opBinUnicode, opBinString, opBinBytes:
		width = 4
	default: // opBinUnicode8, opBinBytes8, opByteArray8
		width = 8
	}
	p, err := d.read(width)
	if err != nil {
		return err
	}
	var n uint64
	switch width {
	case 1:
		n = uint64(p[0])
	case 4:
		u := binary.LittleEndian.Uint32(p)
		if code == opBinString && int32(u) < 0 {
			return d.malformed("BINSTRING with negative length")
		}
		n = uint64(u)
	default:
		n = binary.LittleEndian.Uint64(p)
	}
	if n > uint64(len(d.in)-d.pos) {
		return d.malformed("%s of %d bytes exceeds the input", opNames[code], n)
	}
	raw, _ := d.read(int(n))
	switch code {
	case opShortBinUnicode, opBinUnicode, opBinUnicode8:
		if v := internString(raw); v != nil {
			d.push(v)
			return nil
		}
		d.push(utf8String(raw))
	case opShortBinString, opBinString:
		// Python 2 str. Python 3 decodes it as ASCII by default; any
		// valid UTF-8 is accepted here.
		if !utf8.Valid(raw) {
			return d.malformed("%s is not valid UTF-8", opNames[code])
		}
		d.push(string(raw))
	default:
		d.push(bytes.Clone(raw))
	}
	return nil
}

// utf8String converts UTF-8 (which Python writes with surrogatepass, so
// lone surrogates may appear) to a Go string, replacing what is not valid
// UTF-8 with U+FFFD, as encoding/json does.
func utf8String(raw []byte) string {
	if utf8.Valid(raw) {
		return string(raw)
	}
	return strings.ToValidUTF8(string(raw), "\uFFFD")
}

// binLong decodes LONG1 and LONG4: a little-endian two's complement
// integer of 1- or 4-byte-counted length.
func (d *decoder) binLong(code byte) error {
	var n int
	if code == opLong1 {
		p, err := d.read(1)
		if err != nil {
			return err
		}
		n = int(p[0])
	} else {
		p, err := d.read(4)
		if err != nil {
			return err
		}
		l := int32(binary.LittleEndian.Uint32(p))
		if l < 0 {
			return d.malformed("LONG4 with negative length")
		}
		if int(l) > maxIntBytes {
			return d.limit("integer of %d bytes (max %d)", l, maxIntBytes)
		}
		n = int(l)
	}
	p, err := d.read(n)
	if err != nil {
		return err
	}
	d.push(decodeLong(p))
	return nil
}

// decodeLong turns little-endian two's complement bytes into an int64 or,
// beyond int64, a *big.Int.
func decodeLong(p []byte) any {
	if len(p) == 0 {
		return int64(0)
	}
	if len(p) <= 8 {
		var u uint64
		for i := len(p) - 1; i >= 0; i-- {
			u = u<<8 | uint64(p[i])
		}
		shift := 64 - 8*uint(len(p))
		return int64(u<<shift) >> shift // sign-extend
	}
	be := make([]byte, len(p))
	for i, c := range p {
		be[len(p)-1-i] = c
	}
	v := new(big.Int).SetBytes(be)
	if p[len(p)-1]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(p))))
	}
	return normInt(v)
}

// normInt returns v as an int64 when it fits.
func normInt(v *big.Int) any {
	if v.IsInt64() {
		return v.Int64()
	}
	return v
}

// line consumes a newline-terminated argument of a text opcode and returns
// it without the newline.
func (d *decoder) line() ([]byte, error) {
	i := bytes.IndexByte(d.in[d.pos:], '\n')
	if i < 0 {
		return nil, d.malformed("unterminated %s argument", opNames[d.in[d.op]])
	}
	p := d.in[d.pos : d.pos+i]
	d.pos += i + 1
	return p, nil
}

// textValue decodes the protocol 0 text opcodes INT, LONG, FLOAT, STRING
// and UNICODE.
func (d *decoder) textValue(code byte) error {
	p, err := d.line()
	if err != nil {
		return err
	}
	switch code {
	case opInt:
		switch string(p) {
		case "00":
			d.push(false)
			return nil
		case "01":
			d.push(true)
			return nil
		}
		return d.decimal(p)
	case opLong:
		if len(p) > 0 && p[len(p)-1] == 'L' {
			p = p[:len(p)-1]
		}
		return d.decimal(p)
	case opFloat:
		f, err := strconv.ParseFloat(string(p), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) { // out of range is ±Inf or 0, as in Python
			return d.malformed("FLOAT %q", truncate(string(p)))
		}
		d.push(f)
		return nil
	case opString:
		s, err := unquoteString(p)
		if err != nil {
			return d.malformed("STRING: %v", err)
		}
		d.push(s)
		return nil
	}
	s, err := rawUnicodeEscape(p)
	if err != nil {
		return d.malformed("UNICODE: %v", err)
	}
	d.push(s)
	return nil
}

// decimal pushes a signed decimal integer literal.
func (d *decoder) decimal(p []byte) error {
	v, err := parseDecimal(p)
	if err != nil {
		if err == errTooManyDigits {
			return d.limit("integer of more than %d digits", maxIntDigits)
		}
		return d.malformed("%s %q", opNames[d.in[d.op]], truncate(string(p)))
	}
	d.push(v)
	return nil
}

type decimalError string

func (e decimalError) Error() string { return string(e) }

const (
	errNotDecimal    = decimalError("not a decimal integer")
	errTooManyDigits = decimalError("too many digits")
)

// parseDecimal parses [+-]digits into an int64, or a *big.Int beyond it.
func parseDecimal(p []byte) (any, error) {
	digits := p
	if len(digits) > 0 && (digits[0] == '-' || digits[0] == '+') {
		digits = digits[1:]
	}
	if len(digits) == 0 {
		return nil, errNotDecimal
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, errNotDecimal
		}
	}
	if len(digits) > maxIntDigits {
		return nil, errTooManyDigits
	}
	if i, err := strconv.ParseInt(string(p), 10, 64); err == nil {
		return i, nil
	}
	v, ok := new(big.Int).SetString(string(p), 10)
	if !ok {
		return nil, errNotDecimal
	}
	return normInt(v), nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
