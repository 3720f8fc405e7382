package ocsfschema

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// compilerOutput is the part of the OCSF compiler's output that Subset reads.
type compilerOutput struct {
	Version    string                     `json:"version"`
	Profiles   map[string]json.RawMessage `json:"profiles"`
	Dictionary struct {
		Types struct {
			Attributes map[string]*Type `json:"attributes"`
		} `json:"types"`
	} `json:"dictionary"`
	Classes map[string]*Class  `json:"classes"`
	Objects map[string]*Object `json:"objects"`
}

// Subset reads the output of the OCSF schema compiler and returns, as
// indented JSON with sorted keys, the schema restricted to the classes with
// the given uids and the objects reachable from them. source is recorded as
// the provenance of the file.
func Subset(compiled []byte, classUIDs []int, source map[string]string) ([]byte, error) {
	var in compilerOutput
	if err := json.Unmarshal(compiled, &in); err != nil {
		return nil, fmt.Errorf("parse compiled OCSF schema: %w", err)
	}
	if in.Version == "" || len(in.Classes) == 0 || len(in.Dictionary.Types.Attributes) == 0 {
		return nil, fmt.Errorf("parse compiled OCSF schema: no version, classes or types: is this the compiler's output?")
	}
	out := &Schema{
		Version:  in.Version,
		Source:   source,
		Profiles: slices.Sorted(maps.Keys(in.Profiles)),
		Types:    in.Dictionary.Types.Attributes,
		Classes:  map[string]*Class{},
		Objects:  map[string]*Object{},
	}
	var queue []string
	need := func(attrs map[string]*Attr) {
		for _, a := range attrs {
			if a.Type == "object_t" {
				if _, ok := out.Objects[a.ObjectType]; !ok {
					out.Objects[a.ObjectType] = nil
					queue = append(queue, a.ObjectType)
				}
			}
		}
	}
	for _, uid := range classUIDs {
		var found bool
		for name, c := range in.Classes {
			if c.UID == uid {
				out.Classes[name] = c
				need(c.Attributes)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("subset OCSF schema: no class has uid %d", uid)
		}
	}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		o, ok := in.Objects[name]
		if !ok {
			return nil, fmt.Errorf("subset OCSF schema: object %q is referenced but not defined", name)
		}
		if o.Name == "" {
			o.Name = name
		}
		out.Objects[name] = o
		need(o.Attributes)
	}
	// Keep only the data types the subset uses, and the primitives they
	// refine.
	used := map[string]*Type{}
	for _, attrs := range out.attributeSets() {
		for _, a := range attrs {
			for t := a.Type; t != "" && t != "object_t"; {
				def, ok := in.Dictionary.Types.Attributes[t]
				if !ok {
					return nil, fmt.Errorf("subset OCSF schema: type %q is used but not defined", t)
				}
				used[t] = def
				t = def.Type
			}
		}
	}
	out.Types = used
	if err := out.index(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		return nil, fmt.Errorf("marshal OCSF schema subset: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseUIDs parses a comma-separated list of class uids ("1001,1007").
func ParseUIDs(s string) ([]int, error) {
	var uids []int
	for f := range strings.SplitSeq(s, ",") {
		uid, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("class uid %q: %w", f, err)
		}
		uids = append(uids, uid)
	}
	return uids, nil
}
