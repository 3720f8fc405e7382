package ocsfschema

import (
	"encoding/json"
	"strings"
	"testing"
)

// valid is a minimal Process Activity event that the schema accepts.
const valid = `{
 "activity_id": 1, "activity_name": "Launch", "category_uid": 1, "category_name": "System Activity",
 "class_uid": 1007, "class_name": "Process Activity", "type_uid": 100701, "type_name": "Process Activity: Launch",
 "severity_id": 1, "severity": "Informational", "time": 1795723200123,
 "metadata": {"version": "1.8.0", "product": {"name": "Kestrel", "vendor_name": "kestrel-sec", "version": "dev"},
   "profiles": ["host", "container"]},
 "device": {"hostname": "node-1", "type_id": 1, "type": "Server", "os": {"name": "Linux", "type_id": 200, "type": "Linux"}},
 "actor": {"process": {"pid": 1}},
 "process": {"pid": 42, "name": "sh", "container": {"uid": "abc"}, "ancestry": [{"pid": 1, "path": "/sbin/init"}]}
}`

func schema(t *testing.T) *Schema {
	t.Helper()
	s, err := OCSF180()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// edit returns valid with the JSON object at path (dots) changed by f.
func edit(t *testing.T, path string, f func(m map[string]any)) []byte {
	t.Helper()
	var ev map[string]any
	d := json.NewDecoder(strings.NewReader(valid))
	d.UseNumber()
	if err := d.Decode(&ev); err != nil {
		t.Fatal(err)
	}
	m := ev
	if path != "" {
		for _, k := range strings.Split(path, ".") {
			m = m[k].(map[string]any)
		}
	}
	f(m)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEmbeddedSchema(t *testing.T) {
	s := schema(t)
	if s.Version != "1.8.0" {
		t.Errorf("version %q", s.Version)
	}
	for _, uid := range []int{1001, 1002, 1003, 1007, 2004, 4001} {
		if s.Class(uid) == nil {
			t.Errorf("class %d missing", uid)
		}
	}
	if r := s.Validate([]byte(valid)); !r.OK() {
		t.Fatalf("the reference event does not validate: %v", r.All())
	}
}

func TestValidateFindsEachProblem(t *testing.T) {
	s := schema(t)
	for _, tc := range []struct {
		name, kind, path string
		deprecated       bool
		warning          bool
		event            []byte
	}{
		{"required missing", "attribute_required_missing", "process", false, false,
			edit(t, "", func(m map[string]any) { delete(m, "process") })},
		{"required in object", "attribute_required_missing", "device.os.name", false, false,
			edit(t, "device.os", func(m map[string]any) { delete(m, "name") })},
		{"unknown attribute", "attribute_unknown", "process.lineage_x", false, false,
			edit(t, "process", func(m map[string]any) { m["lineage_x"] = "y" })},
		{"container at the top is not in the class", "attribute_unknown", "container", false, false,
			edit(t, "", func(m map[string]any) { m["container"] = map[string]any{"uid": "abc"} })},
		{"profile attribute without the profile", "attribute_unknown", "process.container", false, false,
			edit(t, "metadata", func(m map[string]any) { m["profiles"] = []any{"host"} })},
		{"unknown profile", "profile_unknown", "metadata.profiles[1]", false, false,
			edit(t, "metadata", func(m map[string]any) { m["profiles"] = []any{"host", "k8s"} })},
		{"string for a number", "attribute_wrong_type", "time", false, false,
			edit(t, "", func(m map[string]any) { m["time"] = "1795723200123" })},
		{"integer_t overflow", "attribute_wrong_type", "process.pid", false, false,
			edit(t, "process", func(m map[string]any) { m["pid"] = json.Number("4294967296") })},
		{"float for an integer", "attribute_wrong_type", "process.pid", false, false,
			edit(t, "process", func(m map[string]any) { m["pid"] = json.Number("4.5") })},
		{"enum value", "attribute_enum_value_unknown", "activity_id", false, false,
			edit(t, "", func(m map[string]any) { m["activity_id"], m["type_uid"] = json.Number("7"), json.Number("100707") })},
		{"type_uid", "type_uid_incorrect", "type_uid", false, false,
			edit(t, "", func(m map[string]any) { m["type_uid"] = json.Number("100703") })},
		{"object constraint", "constraint_failed", "actor.process", false, false,
			edit(t, "actor.process", func(m map[string]any) { delete(m, "pid"); m["name"] = "x" })},
		{"ip pattern", "attribute_value_regex_not_matched", "device.ip", false, false,
			edit(t, "device", func(m map[string]any) { m["ip"] = "10.0.0.300" })},
		{"version", "version_mismatch", "metadata.version", false, false,
			edit(t, "metadata", func(m map[string]any) { m["version"] = "1.1.0" })},
		{"deprecated attribute", "attribute_deprecated", "process.lineage", true, false,
			edit(t, "process", func(m map[string]any) { m["lineage"] = []any{"/sbin/init"} })},
		{"deprecated tid", "attribute_deprecated", "process.tid", true, false,
			edit(t, "process", func(m map[string]any) { m["tid"] = json.Number("43") })},
		{"sibling text", "attribute_enum_sibling_incorrect", "activity_name", false, true,
			edit(t, "", func(m map[string]any) { m["activity_name"] = "Inject" })},
		{"Other named Other", "attribute_enum_sibling_suspicious_other", "activity_name", false, true,
			edit(t, "", func(m map[string]any) {
				m["activity_id"], m["activity_name"] = json.Number("99"), "Other"
				m["type_uid"], m["type_name"] = json.Number("100799"), "Process Activity: Other"
			})},
		{"duplicate key", "json_invalid", "", false, false,
			[]byte(strings.Replace(valid, `"time": 1795723200123,`, `"time": 1795723200123, "time": 1,`, 1))},
		{"not one object", "json_invalid", "", false, false, []byte(valid + "{}")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Validate(tc.event)
			list := r.Errors
			switch {
			case tc.deprecated:
				list = r.Deprecated
			case tc.warning:
				list = r.Warnings
			}
			for _, i := range list {
				if i.Kind == tc.kind && i.Path == tc.path {
					return
				}
			}
			t.Errorf("got %v; want %s at %q", r.All(), tc.kind, tc.path)
		})
	}
}

func TestSubsetKeepsWhatIsReachable(t *testing.T) {
	compiled := `{"version": "1.8.0", "profiles": {"host": {}},
	 "dictionary": {"types": {"attributes": {"string_t": {}, "integer_t": {}, "port_t": {"type": "integer_t", "range": [0, 65535]}}}},
	 "classes": {"a": {"name": "a", "uid": 1001, "attributes": {"x": {"type": "object_t", "object_type": "o1"}, "n": {"type": "integer_t"}}},
	             "b": {"name": "b", "uid": 1002, "attributes": {"y": {"type": "object_t", "object_type": "o3"}}}},
	 "objects": {"o1": {"name": "o1", "attributes": {"z": {"type": "object_t", "object_type": "o2"}}},
	             "o2": {"name": "o2", "attributes": {"p": {"type": "port_t", "description": "dropped"}}},
	             "o3": {"name": "o3", "attributes": {}}}}`
	b, err := Subset([]byte(compiled), []int{1001}, map[string]string{"compiler": "test"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.Class(1001) == nil || s.Class(1002) != nil {
		t.Errorf("classes %v; want only 1001", s.ClassUIDs())
	}
	if _, ok := s.Objects["o2"]; !ok || len(s.Objects) != 2 {
		t.Errorf("objects %v; want o1 and o2", sortedKeys(s.Objects))
	}
	if _, ok := s.Types["port_t"]; !ok || s.Types["port_t"].Range[1] != 65535 {
		t.Errorf("types %v; want port_t with its range", sortedKeys(s.Types))
	}
	if strings.Contains(string(b), "dropped") {
		t.Error("descriptions are kept")
	}
	if _, err := Subset([]byte(compiled), []int{4001}, nil); err == nil {
		t.Error("a class uid the schema lacks is not an error")
	}
}
