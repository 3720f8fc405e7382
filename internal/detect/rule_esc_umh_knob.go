package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// umhKnobs are the kernel knobs whose value the kernel executes or acts on
// as root on the host (suffix match: they may be reached through another
// proc or sys mount).
var umhKnobs = []string{
	"/proc/sys/kernel/core_pattern",
	"/proc/sys/kernel/modprobe",
	"/proc/sys/kernel/hotplug",
	"/proc/sys/kernel/poweroff_cmd",
	"/sys/kernel/uevent_helper",
	"binfmt_misc/register",
	"/proc/sys/kernel/sysrq",
	"/proc/sysrq-trigger",
	"/proc/sys/kernel/core_pipe_limit",
}

type esc002 struct{ baseRule }

func newESC002(*Settings) Rule {
	return &esc002{baseRule{Meta{
		ID:       "ESC-002",
		Title:    "Kernel usermode-helper knob written from a container",
		MITRE:    []string{"T1611"},
		Severity: event.SevCritical,
		Description: "A container process opened a kernel usermode-helper knob for writing: core_pattern, " +
			"kernel/modprobe, hotplug, poweroff_cmd, uevent_helper, binfmt_misc/register, sysrq, sysrq-trigger or " +
			"core_pipe_limit. A successful open is recognised by the file the kernel opened (its filesystem and " +
			"name), whatever path reached it: a symlink, a bind mount, another proc or sys mount; a failed " +
			"attempt by its raw or resolved path. The kernel runs the program named there as root in the host's " +
			"namespaces. Core: open events; ESC-003 catches the helper running.",
		Knobs: []string{"container_image_allowlist"},
		Kinds: kinds(event.KindOpen),
	}}}
}

func umhKnob(p string) string {
	for _, k := range umhKnobs {
		if strings.HasSuffix(p, k) {
			return k
		}
	}
	return ""
}

func (r *esc002) Eval(ctx *Context, ev *event.Event) {
	f := ev.File
	if !inContainer(ev) || f == nil || !f.IsWrite() {
		return
	}
	path, k := f.Path, ""
	if f.Match.Has(event.MatchKnob) {
		// The kernel named the knob it opened: no path needed.
		if !event.IsUMHKnob(f.Knob) {
			return
		}
		k = f.Knob
	} else {
		// A failed attempt (or a capture without identity): the names.
		if k = umhKnob(path); k == "" {
			path = f.RawPath
			if k = umhKnob(path); k == "" {
				return
			}
		}
		k = knobOfPath(k)
	}
	attrs := map[string]string{"path": path, "knob": k}
	if f.RawPath != "" && f.RawPath != path {
		attrs["raw_path"] = f.RawPath
	}
	ctx.Emit(ev, Report{
		Key:         k,
		Explanation: who(ev) + " wrote " + path + resultNote(int64(f.Result)) + " from " + where(ev) + ".",
		Attrs:       attrs,
	})
}

// knobOfPath names the knob (event.Knob*) of a umhKnobs entry.
func knobOfPath(k string) string {
	if k == "binfmt_misc/register" {
		return event.KnobBinfmtRegister
	}
	return baseName(k)
}
