package detect

import "github.com/kestrel-sec/kestrel/internal/event"

// catalog lists every rule constructor, in catalog order. Registering a new
// rule is one line here.
//
// Note for issue 6 (helper F): add the EXF-* and GPU-* constructors from
// rule_exf*.go and rule_gpu*.go at the marked place. Shared state for them
// (model registry, taint, per-destination egress bytes) goes in State
// (state.go); config knobs are already in Settings.Config (model_roots,
// model_min_bytes, model_updaters, loader_allowlist, egress_allowlist via
// Settings.EgressAllowed, exfil_window, promote_grace, exfil_bytes_threshold,
// gpu_child_allowlist via Settings.IsGPUChildAllowed, gpu_agent_allowlist via
// Settings.IsGPUAgent, gpu_workload_allowlist).
var catalog = []func(*Settings) Rule{
	newESC001, newESC002, newESC003, newESC004, newESC005,
	newESC006, newESC007, newESC008, newESC009, newESC010, newESC011,
	newNVT001, newNVT002, newNVT003, newNVT004,
	newEXE001, newEXE002, newEXE003, newEXE004,
	newCRED001, newCRED002, newCRED003,
	newC2001,
	newGPU001, newGPU002, newGPU003, newGPU004, newGPU005, newGPU006, newGPU007, newGPU008,
	newEXF001, newEXF002, newEXF003, newEXF004, newEXF005, newEXF006,
	newSELF001, newSELF002, newSELF003, newSELF004,
}

// baseRule carries a rule's metadata; rules embed it.
type baseRule struct {
	meta Meta
}

// Meta returns the rule's metadata.
func (b *baseRule) Meta() Meta { return b.meta }

// kinds is shorthand for Meta.Kinds.
func kinds(k ...event.Kind) []event.Kind { return k }

// inContainer is the catalog's in_container(p).
func inContainer(ev *event.Event) bool { return ev.Container != nil }
