package export

import (
	"strconv"
	"unicode/utf8"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// jsonWriter appends one JSON document to a byte slice. It is the OCSF
// encoder's writer: no reflection, no maps, no intermediate values, so
// encoding an event costs its bytes and nothing else. Keys are trusted
// constants; string values are escaped.
type jsonWriter struct {
	b []byte
	// comma is set after a value: the next key or element needs a ','.
	comma bool
	// procs, when set, memoizes process objects (writeProcessFields).
	procs *procFrags
}

func (w *jsonWriter) sep() {
	if w.comma {
		w.b = append(w.b, ',')
	}
}

func (w *jsonWriter) key(k string) {
	w.sep()
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
	w.comma = false
}

// object opens the object value of key k; elem opens an object element of
// an array.
func (w *jsonWriter) object(k string) {
	w.key(k)
	w.b = append(w.b, '{')
}

func (w *jsonWriter) elem() {
	w.sep()
	w.b = append(w.b, '{')
	w.comma = false
}

func (w *jsonWriter) end() {
	w.b = append(w.b, '}')
	w.comma = true
}

func (w *jsonWriter) array(k string) {
	w.key(k)
	w.b = append(w.b, '[')
}

func (w *jsonWriter) endArray() {
	w.b = append(w.b, ']')
	w.comma = true
}

func (w *jsonWriter) str(k, v string) {
	w.key(k)
	w.b = appendJSONString(w.b, v)
	w.comma = true
}

// strNE writes k only when v is not empty.
func (w *jsonWriter) strNE(k, v string) {
	if v != "" {
		w.str(k, v)
	}
}

func (w *jsonWriter) strElem(v string) {
	w.sep()
	w.b = appendJSONString(w.b, v)
	w.comma = true
}

func (w *jsonWriter) int(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
	w.comma = true
}

func (w *jsonWriter) uint(k string, v uint64) {
	w.key(k)
	w.b = strconv.AppendUint(w.b, v, 10)
	w.comma = true
}

// long writes an unsigned counter as an OCSF long_t, which is signed.
func (w *jsonWriter) long(k string, v uint64) {
	w.int(k, int64(min(v, 1<<63-1)))
}

func (w *jsonWriter) bool(k string, v bool) {
	w.key(k)
	w.b = strconv.AppendBool(w.b, v)
	w.comma = true
}

// uintString writes v as a JSON string of its decimal digits.
func (w *jsonWriter) uintString(k string, v uint64) {
	w.key(k)
	w.b = append(w.b, '"')
	w.b = strconv.AppendUint(w.b, v, 10)
	w.b = append(w.b, '"')
	w.comma = true
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// does without HTML escaping (command lines and paths hold '<', '>' and '&',
// and SIEMs want them verbatim): quote, backslash and control characters
// are escaped and invalid UTF-8 becomes U+FFFD; and, as
// event.TerminalSafeJSON makes of encoding/json's output, DEL and every
// non-printable rune (C1 controls, bidi overrides, U+2028/U+2029 ...) are
// \u escapes, so that a line read on a terminal cannot drive it.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONEscaped(b, s)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// lit writes a string value the encoder itself chose (a caption, a fixed
// name): it needs no escaping.
func (w *jsonWriter) lit(k, v string) {
	w.key(k)
	w.b = append(w.b, '"')
	w.b = append(w.b, v...)
	w.b = append(w.b, '"')
	w.comma = true
}

func (w *jsonWriter) litElem(v string) {
	w.sep()
	w.b = append(w.b, '"')
	w.b = append(w.b, v...)
	w.b = append(w.b, '"')
	w.comma = true
}

// Eight-byte lanes for the fast path of appendJSONEscaped.
const (
	lanes01 = 0x0101010101010101
	lanes80 = 0x8080808080808080
)

// plain8 reports whether none of the eight bytes of x needs escaping or
// UTF-8 decoding: each is ASCII, not a control character, DEL, quote or
// backslash.
func plain8(x uint64) bool {
	ctl := (x - lanes01*0x20) &^ x // high bit set where a byte < 0x20
	q := x ^ (lanes01 * '"')       // zero byte where a quote is
	bs := x ^ (lanes01 * '\\')     // zero byte where a backslash is
	del := x ^ (lanes01 * 0x7f)    // zero byte where a DEL is
	zero := ((q - lanes01) &^ q) | ((bs - lanes01) &^ bs) | ((del - lanes01) &^ del)
	return (ctl|zero|x)&lanes80 == 0
}

// appendJSONEscaped appends the escaped contents of a JSON string, without
// the quotes.
func appendJSONEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) {
			x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
				uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
			if plain8(x) {
				i += 8
				continue
			}
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if event.JSONEscapes(r) {
			b = append(b, s[start:i]...)
			b = event.AppendJSONRune(b, r)
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
