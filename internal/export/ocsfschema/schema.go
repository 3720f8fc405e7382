// Package ocsfschema validates OCSF events against the official OCSF schema.
//
// The schema is a subset of the OCSF project's compiled schema (the output
// of github.com/ocsf/ocsf-schema-compiler over the ocsf-schema release),
// embedded from ocsf-1.8.0/schema.json: the classes the Kestrel encoder
// emits, every object reachable from them, and the dictionary's data types.
// Descriptions are dropped; names, types, requirements, profiles, enums,
// siblings, constraints and deprecations are kept as compiled. The
// ocsf-1.8.0/README.md says how to regenerate it.
//
// [Schema.Validate] follows the checks of the OCSF server's event validator
// (ocsf-server lib/schema/validator2.ex): class and profiles, required
// attributes, unknown attributes (profile attributes count only when the
// event declares the profile), JSON types and the data types' ranges,
// lengths and patterns, enum values and their siblings, type_uid, object
// constraints, and deprecated classes, objects, attributes and enum values.
// It adds a check the server cannot make after decoding: no object repeats a
// key.
//
// Nothing in the sensor imports this package; tests do.
package ocsfschema

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sync"
)

//go:embed ocsf-1.8.0/schema.json
var ocsf180 []byte

// Schema is a compiled OCSF schema (or a subset of one).
type Schema struct {
	Version string `json:"version"`
	// Source says which schema release and compiler produced the file.
	Source   map[string]string  `json:"source,omitempty"`
	Profiles []string           `json:"profiles"`
	Types    map[string]*Type   `json:"types"`
	Classes  map[string]*Class  `json:"classes"`
	Objects  map[string]*Object `json:"objects"`

	byUID map[int]*Class
}

// Type is a data type of the dictionary: a primitive (boolean_t, integer_t,
// long_t, float_t, string_t, json_t) or a subtype of one with constraints.
type Type struct {
	// Type is the primitive a subtype refines; empty for primitives.
	Type   string    `json:"type,omitempty"`
	Regex  string    `json:"regex,omitempty"`
	MaxLen int       `json:"max_len,omitempty"`
	Range  []float64 `json:"range,omitempty"`
	Values []any     `json:"values,omitempty"`

	re *regexp.Regexp
}

// Class is an event class with its attributes after inheritance, includes
// and profiles have been applied.
type Class struct {
	Name        string              `json:"name"`
	UID         int                 `json:"uid"`
	CategoryUID int                 `json:"category_uid"`
	Deprecated  *Deprecated         `json:"@deprecated,omitempty"`
	Constraints map[string][]string `json:"constraints,omitempty"`
	Attributes  map[string]*Attr    `json:"attributes"`
}

// Object is an object type with its attributes.
type Object struct {
	Name        string              `json:"name"`
	Deprecated  *Deprecated         `json:"@deprecated,omitempty"`
	Constraints map[string][]string `json:"constraints,omitempty"`
	Attributes  map[string]*Attr    `json:"attributes"`
}

// Attr is an attribute of a class or an object.
type Attr struct {
	// Type is a data type name, or "object_t" with ObjectType naming the
	// object.
	Type        string `json:"type"`
	ObjectType  string `json:"object_type,omitempty"`
	IsArray     bool   `json:"is_array,omitempty"`
	Requirement string `json:"requirement,omitempty"`
	// Profiles lists the profiles that add the attribute; empty means the
	// attribute belongs to the class or object itself.
	Profiles   []string              `json:"profiles,omitempty"`
	Enum       map[string]*EnumValue `json:"enum,omitempty"`
	Sibling    string                `json:"sibling,omitempty"`
	Deprecated *Deprecated           `json:"@deprecated,omitempty"`
}

// EnumValue is one value of an enum attribute.
type EnumValue struct {
	Caption    string      `json:"caption"`
	Deprecated *Deprecated `json:"@deprecated,omitempty"`
}

// Deprecated marks a class, object, attribute or enum value as deprecated.
type Deprecated struct {
	Message string `json:"message"`
	Since   string `json:"since"`
}

var (
	loadOnce sync.Once
	loaded   *Schema
	loadErr  error
)

// OCSF180 returns the embedded OCSF 1.8.0 subset. The result is shared and
// must not be modified; it is safe for concurrent use.
func OCSF180() (*Schema, error) {
	loadOnce.Do(func() { loaded, loadErr = Parse(ocsf180) })
	return loaded, loadErr
}

// Parse reads a schema in the form this package writes (see Subset) or in
// the OCSF compiler's own output form.
func Parse(b []byte) (*Schema, error) {
	var s Schema
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse OCSF schema: %w", err)
	}
	if err := s.index(); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *Schema) index() error {
	if s.Version == "" {
		return fmt.Errorf("parse OCSF schema: no version")
	}
	s.byUID = make(map[int]*Class, len(s.Classes))
	for name, c := range s.Classes {
		if c.UID == 0 && name != "base_event" {
			return fmt.Errorf("parse OCSF schema: class %s has no uid", name)
		}
		s.byUID[c.UID] = c
	}
	for name, t := range s.Types {
		if t.Regex == "" {
			continue
		}
		re, err := regexp.Compile(t.Regex)
		if err != nil {
			return fmt.Errorf("parse OCSF schema: type %s: compile regex: %w", name, err)
		}
		t.re = re
	}
	for _, attrs := range s.attributeSets() {
		for name, a := range attrs {
			if a.Type == "object_t" {
				if _, ok := s.Objects[a.ObjectType]; !ok {
					return fmt.Errorf("parse OCSF schema: attribute %s refers to object %q, which the schema lacks", name, a.ObjectType)
				}
			} else if _, ok := s.Types[a.Type]; !ok {
				return fmt.Errorf("parse OCSF schema: attribute %s has type %q, which the schema lacks", name, a.Type)
			}
		}
	}
	return nil
}

func (s *Schema) attributeSets() []map[string]*Attr {
	var sets []map[string]*Attr
	for _, c := range s.Classes {
		sets = append(sets, c.Attributes)
	}
	for _, o := range s.Objects {
		sets = append(sets, o.Attributes)
	}
	return sets
}

// Class returns the class with the given uid, or nil.
func (s *Schema) Class(uid int) *Class { return s.byUID[uid] }

// ClassUIDs returns the uids of the schema's classes in ascending order.
func (s *Schema) ClassUIDs() []int {
	uids := make([]int, 0, len(s.byUID))
	for uid := range s.byUID {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	return uids
}
