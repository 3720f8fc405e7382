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
			"kernel/modprobe, uevent_helper, binfmt_misc/register, sysrq, sysrq-trigger or core_pipe_limit " +
			"(raw or resolved path, any mount point; failed attempts count). The kernel runs the program named " +
			"there as root in the host's namespaces. Core: open events; ESC-003 catches the helper running.",
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
	path := f.Path
	k := umhKnob(path)
	if k == "" {
		path = f.RawPath
		if k = umhKnob(path); k == "" {
			return
		}
	}
	ctx.Emit(ev, Report{
		Key:         k,
		Explanation: who(ev) + " wrote " + path + resultNote(int64(f.Result)) + " from " + where(ev) + ".",
		Attrs:       map[string]string{"path": path, "knob": strings.TrimPrefix(k, "/")},
	})
}
