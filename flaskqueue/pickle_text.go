package flaskqueue

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// unquoteString decodes the argument of the protocol 0 STRING opcode (a
// Python 2 str): a quoted repr whose body codecs.escape_decode understands.
// The result must be valid UTF-8.
func unquoteString(p []byte) (string, error) {
	if len(p) < 2 || (p[0] != '\'' && p[0] != '"') || p[len(p)-1] != p[0] {
		return "", errors.New("not a quoted string")
	}
	p = p[1 : len(p)-1]
	out := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i == len(p) {
			return "", errors.New("trailing backslash")
		}
		switch c = p[i]; c {
		case '\n': // line continuation
		case '\\', '\'', '"':
			out = append(out, c)
		case 'a':
			out = append(out, '\a')
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'v':
			out = append(out, '\v')
		case 'x':
			if i+2 >= len(p) {
				return "", errors.New(`truncated \x escape`)
			}
			v, err := strconv.ParseUint(string(p[i+1:i+3]), 16, 8)
			if err != nil {
				return "", errors.New(`invalid \x escape`)
			}
			out = append(out, byte(v))
			i += 2
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(c - '0')
			for n := 1; n < 3 && i+1 < len(p) && p[i+1] >= '0' && p[i+1] <= '7'; n++ {
				i++
				v = v*8 + int(p[i]-'0')
			}
			out = append(out, byte(v)) // Python masks \ooo to a byte as well
		default: // unknown escapes are kept verbatim
			out = append(out, '\\', c)
		}
	}
	if !utf8.Valid(out) {
		return "", errors.New("not valid UTF-8")
	}
	return string(out), nil
}

// rawUnicodeEscape decodes the argument of the protocol 0 UNICODE opcode
// (Python's raw-unicode-escape codec): every byte is a Latin-1 character
// except \uXXXX and \UXXXXXXXX escapes, which are only escapes after an odd
// number of backslashes.
func rawUnicodeEscape(p []byte) (string, error) {
	out := make([]byte, 0, len(p))
	for i := 0; i < len(p); {
		c := p[i]
		if c != '\\' {
			out = utf8.AppendRune(out, rune(c))
			i++
			continue
		}
		run := 0
		for i < len(p) && p[i] == '\\' {
			run++
			i++
		}
		if run%2 == 0 || i == len(p) || (p[i] != 'u' && p[i] != 'U') {
			for ; run > 0; run-- {
				out = append(out, '\\')
			}
			continue
		}
		for ; run > 1; run-- {
			out = append(out, '\\')
		}
		n := 4
		if p[i] == 'U' {
			n = 8
		}
		if i+1+n > len(p) {
			return "", fmt.Errorf(`truncated \%c escape`, p[i])
		}
		v, err := strconv.ParseUint(string(p[i+1:i+1+n]), 16, 32)
		if err != nil {
			return "", fmt.Errorf(`invalid \%c escape`, p[i])
		}
		if v > utf8.MaxRune {
			return "", fmt.Errorf(`\U escape beyond U+10FFFF`)
		}
		// Lone surrogates are legal in Python str; they become U+FFFD
		// (utf8.AppendRune's replacement for invalid runes).
		out = utf8.AppendRune(out, rune(v))
		i += 1 + n
	}
	return string(out), nil
}
