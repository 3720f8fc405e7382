package export

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

// Filter selects events. Every field that is set must match; an unset field
// matches everything. It is the one filter type of the API, the --tail flags
// and the exporters (docs/output.md).
type Filter struct {
	Kinds []event.Kind
	// MinSeverity, when set, matches only findings at or above it.
	MinSeverity event.Severity
	// Rules matches only findings of these rule ids.
	Rules []string
	// ContainerIDs are full ids or prefixes of at least 12 characters.
	ContainerIDs []string
	// Container, Pod, Namespace and Binary are RE2 regexes. Container is
	// matched against the container id and name, Binary against the
	// executable path (or comm when the path is unknown).
	Container, Pod, Namespace, Binary string
	// GPUs matches the event's GPU or one assigned to its container.
	GPUs []string
	// HostOnly matches only host (non-container) processes.
	HostOnly bool
}

// Filters is a subscription's allow and deny lists: an event is delivered
// when it matches some allow filter (or the allow list is empty) and no deny
// filter.
type Filters struct {
	Allow, Deny []Filter
}

// Matcher is a compiled Filters. The zero Matcher and a nil *Matcher match
// everything. It is safe for concurrent use.
type Matcher struct {
	allow, deny []compiledFilter
}

type compiledFilter struct {
	kinds                   uint32 // bit per event.Kind; 0 = any
	minSev                  event.Severity
	rules                   []string
	containerIDs            []string
	container, pod, ns, bin *regexp.Regexp
	gpus                    []string
	hostOnly                bool
}

// minIDPrefix is the shortest container-id prefix accepted (docker's short id).
const minIDPrefix = 12

// maxRegexLen bounds a filter regex, so a client cannot make the sensor
// compile something enormous.
const maxRegexLen = 1024

// Compile validates fs and compiles its regexes once. The error names the
// offending field, e.g. `allow[0].pod_regex: ...`.
func Compile(fs Filters) (*Matcher, error) {
	m := &Matcher{}
	for i, f := range fs.Allow {
		c, err := compileOne(f)
		if err != nil {
			return nil, fmt.Errorf("allow[%d].%w", i, err)
		}
		m.allow = append(m.allow, c)
	}
	for i, f := range fs.Deny {
		c, err := compileOne(f)
		if err != nil {
			return nil, fmt.Errorf("deny[%d].%w", i, err)
		}
		m.deny = append(m.deny, c)
	}
	return m, nil
}

func compileRegex(field, expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	if len(expr) > maxRegexLen {
		return nil, fmt.Errorf("%s: regex is %d bytes, longer than %d", field, len(expr), maxRegexLen)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", field, err)
	}
	return re, nil
}

func compileOne(f Filter) (compiledFilter, error) {
	c := compiledFilter{minSev: f.MinSeverity, hostOnly: f.HostOnly}
	for _, k := range f.Kinds {
		if k == event.KindInvalid || k.String() == "invalid" {
			return c, fmt.Errorf("kinds: invalid event kind %d", k)
		}
		c.kinds |= 1 << k
	}
	if f.MinSeverity != 0 && f.MinSeverity.String() == "invalid" {
		return c, fmt.Errorf("min_severity: invalid severity %d", f.MinSeverity)
	}
	for _, r := range f.Rules {
		if r == "" {
			return c, fmt.Errorf("rule_ids: empty rule id")
		}
	}
	c.rules = slices.Clone(f.Rules)
	for _, id := range f.ContainerIDs {
		if len(id) < minIDPrefix {
			return c, fmt.Errorf("container_ids: %q is shorter than a %d-character id prefix", id, minIDPrefix)
		}
	}
	c.containerIDs = slices.Clone(f.ContainerIDs)
	for _, g := range f.GPUs {
		if g == "" {
			return c, fmt.Errorf("gpu_uuids: empty uuid")
		}
	}
	c.gpus = slices.Clone(f.GPUs)
	var err error
	if c.container, err = compileRegex("container_regex", f.Container); err != nil {
		return c, err
	}
	if c.pod, err = compileRegex("pod_regex", f.Pod); err != nil {
		return c, err
	}
	if c.ns, err = compileRegex("namespace_regex", f.Namespace); err != nil {
		return c, err
	}
	if c.bin, err = compileRegex("binary_regex", f.Binary); err != nil {
		return c, err
	}
	return c, nil
}

// Match reports whether ev passes the filters. Lost events always pass:
// they tell the reader what its view is missing, whatever it selected (the
// pipeline's kernel_ringbuf and queue losses included, as the API promises
// losses in-band).
func (m *Matcher) Match(ev *event.Event) bool {
	if m == nil || ev == nil || ev.Kind == event.KindLost {
		return ev != nil
	}
	if len(m.allow) > 0 {
		ok := false
		for i := range m.allow {
			if m.allow[i].match(ev) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for i := range m.deny {
		if m.deny[i].match(ev) {
			return false
		}
	}
	return true
}

func (c *compiledFilter) match(ev *event.Event) bool {
	if c.kinds != 0 && c.kinds&(1<<ev.Kind) == 0 {
		return false
	}
	if c.minSev != 0 && (ev.Finding == nil || ev.Finding.Severity < c.minSev) {
		return false
	}
	if len(c.rules) > 0 && (ev.Finding == nil || !slices.Contains(c.rules, ev.Finding.Rule)) {
		return false
	}
	ctr := ev.Container
	if c.hostOnly && ctr != nil {
		return false
	}
	if len(c.containerIDs) > 0 {
		if ctr == nil || !slices.ContainsFunc(c.containerIDs, func(id string) bool { return strings.HasPrefix(ctr.ID, id) }) {
			return false
		}
	}
	if c.container != nil && (ctr == nil || !(c.container.MatchString(ctr.ID) || (ctr.Name != "" && c.container.MatchString(ctr.Name)))) {
		return false
	}
	if c.pod != nil && (ctr == nil || !c.pod.MatchString(ctr.Pod)) {
		return false
	}
	if c.ns != nil && (ctr == nil || !c.ns.MatchString(ctr.Namespace)) {
		return false
	}
	if c.bin != nil {
		p := ev.Process
		if p == nil {
			return false
		}
		b := p.Exe
		if b == "" {
			b = p.Comm
		}
		if !c.bin.MatchString(b) {
			return false
		}
	}
	if len(c.gpus) > 0 && !c.matchGPU(ev) {
		return false
	}
	return true
}

func (c *compiledFilter) matchGPU(ev *event.Event) bool {
	if ev.GPU != nil && (slices.Contains(c.gpus, ev.GPU.UUID) || (ev.GPU.MIG != "" && slices.Contains(c.gpus, ev.GPU.MIG))) {
		return true
	}
	if ev.Container != nil {
		for _, g := range ev.Container.GPUs {
			if slices.Contains(c.gpus, g) {
				return true
			}
		}
	}
	return false
}

// FiltersFromProto converts the wire filters of a SubscribeRequest.
func FiltersFromProto(allow, deny []*sensorv1.Filter) (Filters, error) {
	var fs Filters
	for i, f := range allow {
		g, err := filterFromProto(f)
		if err != nil {
			return fs, fmt.Errorf("allow[%d].%w", i, err)
		}
		fs.Allow = append(fs.Allow, g)
	}
	for i, f := range deny {
		g, err := filterFromProto(f)
		if err != nil {
			return fs, fmt.Errorf("deny[%d].%w", i, err)
		}
		fs.Deny = append(fs.Deny, g)
	}
	return fs, nil
}

func filterFromProto(p *sensorv1.Filter) (Filter, error) {
	f := Filter{}
	if p == nil {
		return f, nil
	}
	for _, k := range p.GetKinds() {
		ek, ok := kindFromProto(k)
		if !ok {
			return f, fmt.Errorf("kinds: unknown event kind %d", int32(k))
		}
		f.Kinds = append(f.Kinds, ek)
	}
	if s := p.GetMinSeverity(); s != sensorv1.Severity_SEVERITY_UNSPECIFIED {
		if s < sensorv1.Severity_SEVERITY_INFO || s > sensorv1.Severity_SEVERITY_CRITICAL {
			return f, fmt.Errorf("min_severity: unknown severity %d", int32(s))
		}
		f.MinSeverity = event.Severity(s)
	}
	f.Rules = p.GetRuleIds()
	f.ContainerIDs = p.GetContainerIds()
	f.Container, f.Pod, f.Namespace, f.Binary = p.GetContainerRegex(), p.GetPodRegex(), p.GetNamespaceRegex(), p.GetBinaryRegex()
	f.GPUs = p.GetGpuUuids()
	f.HostOnly = p.GetHostOnly()
	return f, nil
}

// ToProto converts fs to the wire filters of a SubscribeRequest.
func (fs Filters) ToProto() (allow, deny []*sensorv1.Filter) {
	for _, f := range fs.Allow {
		allow = append(allow, f.toProto())
	}
	for _, f := range fs.Deny {
		deny = append(deny, f.toProto())
	}
	return allow, deny
}

func (f Filter) toProto() *sensorv1.Filter {
	p := &sensorv1.Filter{
		MinSeverity:    sensorv1.Severity(f.MinSeverity),
		RuleIds:        f.Rules,
		ContainerIds:   f.ContainerIDs,
		ContainerRegex: f.Container,
		PodRegex:       f.Pod,
		NamespaceRegex: f.Namespace,
		BinaryRegex:    f.Binary,
		GpuUuids:       f.GPUs,
		HostOnly:       f.HostOnly,
	}
	for _, k := range f.Kinds {
		p.Kinds = append(p.Kinds, kindToProto(k))
	}
	return p
}
