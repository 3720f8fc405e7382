package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// maxLineage bounds how many ancestors lineage walks look at.
const maxLineage = 16

// hookLineage finds an NVIDIA hook run by the container runtime in the
// lineage of p: p itself when self is set, else the nearest ancestor that is
// a hook, provided that a runtime binary (runc, crun, containerd-shim ...)
// is further up. It returns the hook's exe and pid.
func hookLineage(s *Settings, p *event.Process, self bool) (string, uint32, bool) {
	idx := -1
	var hook string
	var pid uint32
	if self && IsNVHook(p.Exe) {
		hook, pid = p.Exe, p.PID
	} else {
		for i, a := range p.Ancestors {
			if i >= maxLineage || s.IsRuntime(a.Exe) {
				return "", 0, false
			}
			if IsNVHook(a.Exe) {
				hook, pid, idx = a.Exe, a.PID, i
				break
			}
		}
		if hook == "" {
			return "", 0, false
		}
	}
	for j := idx + 1; j < len(p.Ancestors) && j < maxLineage; j++ {
		if s.IsRuntime(p.Ancestors[j].Exe) {
			return hook, pid, true
		}
	}
	return "", 0, false
}

type nvt002 struct{ baseRule }

func newNVT002(*Settings) Rule {
	return &nvt002{baseRule{Meta{
		ID:       "NVT-002",
		Title:    "NVIDIA hook/CLI spawns an unexpected child or maps a library from the container rootfs",
		MITRE:    []string{"T1611"},
		Severity: event.SevCritical,
		Description: "(1) A process whose fork-time ancestor is an NVIDIA hook run by the container runtime " +
			"executes something outside nv_hook_child_allowlist (nvidia-container-cli, ldconfig, the toolkit's " +
			"memfd ldconfig, nvidia-modprobe, modprobe nvidia*); a shell is certain. (2) A hook binary opens a " +
			"shared object through /proc/self/cwd/, /proc/self/root/ or a relative path, or from a container " +
			"rootfs outside the host library dirs: the loader honoured an image-controlled preload.",
		Knobs: []string{"nv_hook_child_allowlist", "runtime_binaries_extra"},
		Kinds: kinds(event.KindExec, event.KindOpen),
	}}}
}

func (r *nvt002) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if p == nil {
		return
	}
	s := ctx.Settings
	switch ev.Kind {
	case event.KindExec:
		if len(p.Ancestors) == 0 {
			return
		}
		hook, hookPID, ok := hookLineage(s, p, false)
		if !ok {
			return
		}
		if strings.HasPrefix(p.Exe, "memfd:runc_cloned:") && strings.Contains(p.Exe, "ldconfig") {
			return
		}
		if (p.ExeMemfd || strings.HasPrefix(p.Exe, "/proc/self/fd/")) && strings.Contains(cmdline(p), "ldconfig") {
			return
		}
		if s.IsNVHookChildAllowed(p) {
			return
		}
		conf := "likely"
		if isShell(exeBase(p)) || isShell(argv0Base(p)) {
			conf = "certain"
		}
		ctx.Emit(ev, Report{
			Key: "child:" + itoa(uint64(hookPID)),
			Explanation: "NVIDIA hook " + baseName(hook) + " (pid " + itoa(uint64(hookPID)) + ") started unexpected child " +
				cmdline(p) + " in " + where(ev) + ".",
			Attrs: map[string]string{"condition": "hook_child", "hook": hook, "confidence": conf},
		})
	case event.KindOpen:
		f := ev.File
		if f == nil || !IsNVHook(p.Exe) {
			return
		}
		if !isSharedObject(baseName(f.RawPath)) && !isSharedObject(baseName(f.Path)) {
			return
		}
		raw := f.RawPath
		viaCwd := strings.HasPrefix(raw, "/proc/self/cwd/") || strings.HasPrefix(raw, "/proc/self/root/") ||
			strings.HasPrefix(raw, "./") || (raw != "" && !strings.HasPrefix(raw, "/"))
		fromRootfs := s.InContainerRootfs(f.Path) && !s.InHostLibDir(f.Path)
		if !viaCwd && !fromRootfs {
			return
		}
		ctx.Emit(ev, Report{
			Key: "so:" + itoa(uint64(p.PID)),
			Explanation: "NVIDIA hook " + baseName(p.Exe) + " (pid " + itoa(uint64(p.PID)) + ") loaded shared object " +
				raw + " from the container's filesystem in " + where(ev) + ".",
			Attrs: map[string]string{"condition": "rootfs_library", "raw_path": raw, "path": f.Path},
		})
	}
}
