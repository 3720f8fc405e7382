package event

import (
	"encoding/binary"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Names from the observed system (paths, argv, exe, comm, container and pod
// names, NVML strings) can hold anything a terminal acts on: a newline that
// forges a line, an ANSI or C1 sequence that clears the screen or sets the
// window title, a bidi override that shows "evil\u202egpj.sh" as
// "evilhs.jpg". Every output an operator may read on a terminal escapes
// them: text through EscapeText, JSON through AppendJSONRune and
// TerminalSafeJSON (the same JSON value, with the characters as \u escapes).

// EscapeText makes s safe to print on one terminal line. Every character
// that is not printable (strconv.IsPrint: C0, DEL, C1, bidi overrides and
// isolates, line and paragraph separators, zero-width and other format
// characters, non-ASCII spaces) is written as a Go escape (\n, \x1b, \u202e),
// a byte that is not valid UTF-8 as \xNN (not U+FFFD: the evidence keeps the
// real byte), and a backslash as \\, so the text reads back unambiguously.
// It returns s itself, without allocating, when nothing needs escaping.
func EscapeText(s string) string {
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\' {
		i++
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, 0, len(s)+16)
	b = append(b, s[:i]...)
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, `\x`...)
			b = append(b, hexDigits[s[i]>>4], hexDigits[s[i]&0xf])
		case r == '\\':
			b = append(b, `\\`...)
		case strconv.IsPrint(r):
			b = append(b, s[i:i+n]...)
		default:
			q := strconv.AppendQuoteRune(nil, r) // '\n', '\x1b', '\u202e'
			b = append(b, q[1:len(q)-1]...)
		}
		i += n
	}
	return string(b)
}

const hexDigits = "0123456789abcdef"

// Eight-byte lanes for the fast path of TerminalSafeJSON.
const (
	lanes01 = 0x0101010101010101
	lanes80 = 0x8080808080808080
)

// belowDEL8 reports whether each of the eight bytes of x is below 0x7f: a
// byte of 0x7f or more has its lane's high bit set in x or in x+1 (a carry
// out of a 0xff lane only makes the next lane look bad too).
func belowDEL8(x uint64) bool {
	return ((x+lanes01)|x)&lanes80 == 0
}

// JSONEscapes reports whether a JSON encoder must write r as a \u escape
// although JSON allows it raw in a string: DEL, and every rune above ASCII
// that is not printable (see EscapeText). A JSON line read on a terminal
// would hand them to it. (The C0 controls JSON escapes anyway; U+2028 and
// U+2029 are among the runes here, as encoding/json escapes them too.)
func JSONEscapes(r rune) bool {
	return r == 0x7f || r >= utf8.RuneSelf && !strconv.IsPrint(r)
}

// AppendJSONRune appends r as a JSON \u escape (\u202e), as a UTF-16
// surrogate pair above U+FFFF.
func AppendJSONRune(b []byte, r rune) []byte {
	if r > 0xffff {
		hi, lo := utf16.EncodeRune(r)
		return appendU4(appendU4(b, hi), lo)
	}
	return appendU4(b, r)
}

func appendU4(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// TerminalSafeJSON rewrites JSON text (encoding/json's output) so that every
// rune JSONEscapes is a \u escape: the same JSON value, and nothing a
// terminal acts on (encoding/json escapes only C0 controls and U+2028/9).
// Outside strings JSON text is printable ASCII, so every such rune is in a
// string. A byte that is not valid UTF-8 becomes \ufffd, as encoding/json
// writes it. It returns b itself, without allocating, when b is all ASCII or
// needs no change.
func TerminalSafeJSON(b []byte) []byte {
	i := 0
	for i < len(b) {
		if i+8 <= len(b) && belowDEL8(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
			continue
		}
		if b[i] < 0x7f {
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if (r == utf8.RuneError && n == 1) || JSONEscapes(r) {
			break
		}
		i += n
	}
	if i == len(b) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	out = append(out, b[:i]...)
	for i < len(b) {
		if b[i] < 0x7f {
			out = append(out, b[i])
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			out = append(out, `\ufffd`...)
		case JSONEscapes(r):
			out = AppendJSONRune(out, r)
		default:
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}
