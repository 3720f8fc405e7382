package ocsfschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Issue is one finding of the validator about one event.
type Issue struct {
	// Path is the attribute path, e.g. "actor.process.lineage" or
	// "evidences[0].file.name"; empty for the event itself.
	Path string
	// Kind names the check, as the OCSF server names it where it has one:
	// attribute_required_missing, attribute_unknown, attribute_wrong_type,
	// attribute_enum_value_unknown, attribute_deprecated, ...
	Kind string
	Msg  string
}

func (i Issue) String() string {
	if i.Path == "" {
		return i.Kind + ": " + i.Msg
	}
	return i.Path + ": " + i.Kind + ": " + i.Msg
}

// Result is what the validator found in one event.
type Result struct {
	// ClassUID is the event's class_uid, or 0 when it has none.
	ClassUID int
	// Errors make the event invalid.
	Errors []Issue
	// Deprecated lists deprecated classes, objects, attributes and enum
	// values in use.
	Deprecated []Issue
	// Warnings are what the OCSF server warns about besides deprecation:
	// an enum sibling whose text is not the enum value's caption.
	Warnings []Issue
}

// OK reports whether the event has no errors, deprecations or warnings.
func (r *Result) OK() bool {
	return len(r.Errors) == 0 && len(r.Deprecated) == 0 && len(r.Warnings) == 0
}

// All returns every issue: errors, then deprecations, then warnings.
func (r *Result) All() []Issue {
	return slices.Concat(r.Errors, r.Deprecated, r.Warnings)
}

func (r *Result) errorf(path, kind, format string, args ...any) {
	r.Errors = append(r.Errors, Issue{Path: path, Kind: kind, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks one OCSF event, given as its JSON text, against the schema.
func (s *Schema) Validate(event []byte) *Result {
	r := &Result{}
	if !utf8.Valid(event) {
		r.errorf("", "json_invalid", "the event is not valid UTF-8")
		return r
	}
	if err := checkDuplicateKeys(event); err != nil {
		r.errorf("", "json_invalid", "%v", err)
		return r
	}
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber()
	var ev map[string]any
	if err := dec.Decode(&ev); err != nil {
		r.errorf("", "json_invalid", "decode the event as a JSON object: %v", err)
		return r
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		r.errorf("", "json_invalid", "text follows the event object")
		return r
	}

	v, ok := ev["class_uid"]
	if !ok {
		r.errorf("class_uid", "attribute_required_missing", "required attribute class_uid is missing")
		return r
	}
	uid, ok := integer(v, math.MinInt32, math.MaxInt32)
	if !ok {
		r.errorf("class_uid", "attribute_wrong_type", "class_uid is %s; want integer_t", jsonType(v))
		return r
	}
	r.ClassUID = int(uid)
	class := s.Class(int(uid))
	if class == nil {
		r.errorf("class_uid", "class_uid_unknown", "no class has uid %d", uid)
		return r
	}
	if class.Deprecated != nil {
		r.Deprecated = append(r.Deprecated, Issue{Kind: "class_deprecated",
			Msg: fmt.Sprintf("class %s is deprecated since %s: %s", class.Name, class.Deprecated.Since, class.Deprecated.Message)})
	}
	profiles := s.profiles(r, ev)
	s.attributes(r, ev, "", class.Name, class.Attributes, profiles)
	s.version(r, ev)
	typeUID(r, ev)
	constraints(r, ev, "", "class "+class.Name, class.Constraints)
	return r
}

// profiles returns the event's metadata.profiles and reports unknown ones.
func (s *Schema) profiles(r *Result, ev map[string]any) map[string]bool {
	set := map[string]bool{}
	md, _ := ev["metadata"].(map[string]any)
	list, _ := md["profiles"].([]any)
	for i, p := range list {
		name, ok := p.(string)
		if !ok {
			continue // the type check reports it
		}
		if !slices.Contains(s.Profiles, name) {
			r.errorf(fmt.Sprintf("metadata.profiles[%d]", i), "profile_unknown", "no profile is named %q", name)
		}
		set[name] = true
	}
	return set
}

func (s *Schema) version(r *Result, ev map[string]any) {
	md, _ := ev["metadata"].(map[string]any)
	if v, ok := md["version"].(string); ok && v != s.Version {
		r.errorf("metadata.version", "version_mismatch", "the event claims OCSF %s; the schema is %s", v, s.Version)
	}
}

func typeUID(r *Result, ev map[string]any) {
	cls, ok1 := integer(ev["class_uid"], math.MinInt64, math.MaxInt64)
	act, ok2 := integer(ev["activity_id"], math.MinInt64, math.MaxInt64)
	typ, ok3 := integer(ev["type_uid"], math.MinInt64, math.MaxInt64)
	if ok1 && ok2 && ok3 && typ != cls*100+act {
		r.errorf("type_uid", "type_uid_incorrect", "type_uid %d; want class_uid %d * 100 + activity_id %d = %d", typ, cls, act, cls*100+act)
	}
}

// applies reports whether an attribute is part of the item for an event
// with the given profiles.
func applies(a *Attr, profiles map[string]bool) bool {
	if len(a.Profiles) == 0 {
		return true
	}
	for _, p := range a.Profiles {
		if profiles[p] {
			return true
		}
	}
	return false
}

// attributes validates an event or object against the attributes of its
// class or object.
func (s *Schema) attributes(r *Result, item map[string]any, path, owner string, attrs map[string]*Attr, profiles map[string]bool) {
	n := 0
	for _, name := range sortedKeys(attrs) {
		a := attrs[name]
		if !applies(a, profiles) {
			continue
		}
		n++
		p := join(path, name)
		v, ok := item[name]
		if !ok || v == nil {
			if a.Requirement == "required" {
				r.errorf(p, "attribute_required_missing", "required attribute %s of %s is missing", name, owner)
			}
			continue
		}
		if a.Deprecated != nil {
			r.Deprecated = append(r.Deprecated, Issue{Path: p, Kind: "attribute_deprecated",
				Msg: fmt.Sprintf("deprecated since %s: %s", a.Deprecated.Since, a.Deprecated.Message)})
		}
		if a.IsArray {
			list, ok := v.([]any)
			if !ok {
				r.errorf(p, "attribute_wrong_type", "%s is %s; want an array of %s", name, jsonType(v), typeName(a))
				continue
			}
			for i, e := range list {
				s.value(r, e, fmt.Sprintf("%s[%d]", p, i), a, profiles)
			}
		} else {
			s.value(r, v, p, a, profiles)
		}
		if a.Enum != nil {
			s.enum(r, item, path, name, a)
		}
	}
	// An object without attributes ("object", under unmapped) takes any.
	if n == 0 {
		return
	}
	for _, key := range sortedKeys(item) {
		if a, ok := attrs[key]; ok && applies(a, profiles) {
			continue
		}
		msg := fmt.Sprintf("%s has no attribute %s", owner, key)
		if a, ok := attrs[key]; ok {
			msg += fmt.Sprintf(" unless the event declares profile %s in metadata.profiles", strings.Join(a.Profiles, " or "))
		}
		r.errorf(join(path, key), "attribute_unknown", "%s", msg)
	}
}

func (s *Schema) enum(r *Result, item map[string]any, path, name string, a *Attr) {
	check := func(v any, p string) {
		key := enumKey(v)
		ev, ok := a.Enum[key]
		if !ok {
			r.errorf(p, "attribute_enum_value_unknown", "%s is not a value of enum %s", key, name)
			return
		}
		if ev.Deprecated != nil {
			r.Deprecated = append(r.Deprecated, Issue{Path: p, Kind: "attribute_enum_value_deprecated",
				Msg: fmt.Sprintf("value %s (%s) is deprecated since %s: %s", key, ev.Caption, ev.Deprecated.Since, ev.Deprecated.Message)})
		}
	}
	v := item[name]
	if a.IsArray {
		list, _ := v.([]any)
		for i, e := range list {
			check(e, fmt.Sprintf("%s[%d]", join(path, name), i))
		}
		return
	}
	check(v, join(path, name))
	ev, ok := a.Enum[enumKey(v)]
	if !ok || a.Sibling == "" {
		return
	}
	sib, present := item[a.Sibling]
	if !present {
		return
	}
	if enumKey(v) == "99" {
		// Other: the sibling carries the source's own value, not "Other".
		if sib == ev.Caption {
			r.Warnings = append(r.Warnings, Issue{Path: join(path, a.Sibling), Kind: "attribute_enum_sibling_suspicious_other",
				Msg: fmt.Sprintf("%s is %q, the caption of %s 99; for Other it should name the source's value", a.Sibling, sib, name)})
		}
		return
	}
	if sib != ev.Caption {
		r.Warnings = append(r.Warnings, Issue{Path: join(path, a.Sibling), Kind: "attribute_enum_sibling_incorrect",
			Msg: fmt.Sprintf("%s is %v; %s %s is %q", a.Sibling, sib, name, enumKey(v), ev.Caption)})
	}
}

// value checks one value (or one array element) against the attribute's
// type.
func (s *Schema) value(r *Result, v any, path string, a *Attr, profiles map[string]bool) {
	if a.Type == "object_t" {
		m, ok := v.(map[string]any)
		if !ok {
			r.errorf(path, "attribute_wrong_type", "%s is %s; want object %s", path, jsonType(v), a.ObjectType)
			return
		}
		o := s.Objects[a.ObjectType]
		if o.Deprecated != nil {
			r.Deprecated = append(r.Deprecated, Issue{Path: path, Kind: "object_deprecated",
				Msg: fmt.Sprintf("object %s is deprecated since %s: %s", o.Name, o.Deprecated.Since, o.Deprecated.Message)})
		}
		s.attributes(r, m, path, "object "+o.Name, o.Attributes, profiles)
		constraints(r, m, path, "object "+o.Name, o.Constraints)
		return
	}
	s.dataType(r, v, path, a.Type)
}

// dataType checks a value against a data type and, for a subtype, against
// the primitive it refines.
func (s *Schema) dataType(r *Result, v any, path, typ string) {
	t := s.Types[typ]
	prim := typ
	if t.Type != "" {
		prim = t.Type
	}
	want := typ
	if prim != typ {
		want += " (" + prim + ")"
	}
	switch prim {
	case "json_t":
		return
	case "boolean_t":
		if _, ok := v.(bool); !ok {
			r.errorf(path, "attribute_wrong_type", "%s; want %s", jsonType(v), want)
			return
		}
	case "string_t":
		str, ok := v.(string)
		if !ok {
			r.errorf(path, "attribute_wrong_type", "%s; want %s", jsonType(v), want)
			return
		}
		for _, tt := range []*Type{t, s.Types[prim]} {
			if tt.MaxLen > 0 && len(str) > tt.MaxLen {
				r.errorf(path, "attribute_value_exceeds_max_len", "%d bytes; %s allows %d", len(str), typ, tt.MaxLen)
			}
			if tt.re != nil && !tt.re.MatchString(str) {
				r.errorf(path, "attribute_value_regex_not_matched", "%q is not a %s", str, typ)
			}
		}
	case "integer_t", "long_t", "float_t":
		var f float64
		switch prim {
		case "integer_t", "long_t":
			lo, hi := int64(math.MinInt32), int64(math.MaxInt32)
			if prim == "long_t" {
				lo, hi = math.MinInt64, math.MaxInt64
			}
			n, ok := integer(v, lo, hi)
			if !ok {
				r.errorf(path, "attribute_wrong_type", "%s; want %s", describeNumber(v), want)
				return
			}
			f = float64(n)
		default:
			num, ok := v.(json.Number)
			if !ok || !strings.ContainsAny(num.String(), ".eE") {
				// As the OCSF server decodes JSON, 3 is an integer and
				// 3.0 a float.
				r.errorf(path, "attribute_wrong_type", "%s; want %s", describeNumber(v), want)
				return
			}
			f, _ = num.Float64()
		}
		for _, tt := range []*Type{t, s.Types[prim]} {
			if len(tt.Range) == 2 && (f < tt.Range[0] || f > tt.Range[1]) {
				r.errorf(path, "attribute_value_exceeds_range", "%v is outside %s's range [%v, %v]", f, typ, tt.Range[0], tt.Range[1])
			}
		}
	default:
		r.errorf(path, "schema_bug_primitive_type_unknown", "type %s refines unknown primitive %s", typ, prim)
		return
	}
	for _, tt := range []*Type{t, s.Types[prim]} {
		if len(tt.Values) > 0 && !slices.ContainsFunc(tt.Values, func(x any) bool { return fmt.Sprint(x) == fmt.Sprint(v) }) {
			r.errorf(path, "attribute_value_not_in_type_values", "%v is not one of %v", v, tt.Values)
		}
	}
}

func constraints(r *Result, item map[string]any, path, owner string, cs map[string][]string) {
	for _, kind := range sortedKeys(cs) {
		keys := cs[kind]
		n := 0
		for _, k := range keys {
			if _, ok := item[k]; ok {
				n++
			}
		}
		switch kind {
		case "at_least_one":
			if n == 0 {
				r.errorf(path, "constraint_failed", "%s needs at least one of %s", owner, strings.Join(keys, ", "))
			}
		case "just_one":
			if n != 1 {
				r.errorf(path, "constraint_failed", "%s needs exactly one of %s; has %d", owner, strings.Join(keys, ", "), n)
			}
		default:
			r.errorf(path, "constraint_unknown", "%s has constraint %s, which the validator does not know", owner, kind)
		}
	}
}

// integer returns v as an integer if it is a JSON integer within [lo, hi].
func integer(v any, lo, hi int64) (int64, bool) {
	num, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(num.String(), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

func describeNumber(v any) string {
	if num, ok := v.(json.Number); ok {
		return "number " + num.String()
	}
	return jsonType(v)
}

func enumKey(v any) string {
	switch x := v.(type) {
	case json.Number:
		return x.String()
	case string:
		return x
	}
	return fmt.Sprint(v)
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func typeName(a *Attr) string {
	if a.Type == "object_t" {
		return a.ObjectType
	}
	return a.Type
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkDuplicateKeys fails on an object that repeats a key: decoders differ
// on which copy wins, and strict ones reject the event.
func checkDuplicateKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		keys   map[string]bool
		object bool
		key    bool // the next string token is a key
	}
	var stack []*frame
	path := func() string { return fmt.Sprintf("depth %d", len(stack)) }
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("decode the event: %w", err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if k, ok := tok.(string); ok && top != nil && top.object && top.key {
			if top.keys[k] {
				return fmt.Errorf("key %q appears twice in one object (%s)", k, path())
			}
			top.keys[k] = true
			top.key = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, object: true, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: the parent object expects a key next.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true
		}
	}
}
