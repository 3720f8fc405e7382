package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// loaderEnv are the dynamic-loader variables that load attacker code.
var loaderEnv = []string{"LD_PRELOAD", "LD_AUDIT", "GCONV_PATH", "GLIBC_TUNABLES"}

type nvt001 struct{ baseRule }

func newNVT001(*Settings) Rule {
	return &nvt001{baseRule{Meta{
		ID:       "NVT-001",
		Title:    "NVIDIA OCI hook executed with loader-hijack environment (NVIDIAScape, CVE-2025-23266)",
		MITRE:    []string{"T1611", "T1574.006", "T1204.003"},
		Severity: event.SevCritical,
		Description: "An NVIDIA Container Toolkit hook or CLI (nvidia-container-runtime-hook, nvidia-container-toolkit, " +
			"nvidia-container-cli, nvidia-ctk, nvidia-cdi-hook, nvidia-container-runtime) was executed with " +
			"LD_PRELOAD, LD_AUDIT, GCONV_PATH or GLIBC_TUNABLES set, or LD_LIBRARY_PATH naming a directory outside " +
			"the host library dirs. Hooks run as root on the host and never need a preload; a value under " +
			"/proc/self/cwd/ or relative points into the container rootfs (certain). Posture (info): a hook whose " +
			"environment carries image variables (NVIDIA_VISIBLE_DEVICES, NVIDIA_DRIVER_CAPABILITIES) marks a " +
			"toolkit older than 1.17.8. Needs env capture at exec; without it NVT-002 condition 2 (the hook opening " +
			"the preloaded object) is the fallback.",
		Kinds: kinds(event.KindExec),
	}}}
}

// hijackValue reports whether an env value points the loader at code
// outside the host library directories, and whether that is certain.
func (s *Settings) hijackLibraryPath(v string) (bool, bool) {
	for _, d := range strings.Split(v, ":") {
		if d == "" || !strings.HasPrefix(d, "/") || strings.HasPrefix(d, "/proc/") {
			return true, true
		}
		if !s.InHostLibDir(d) {
			return true, false
		}
	}
	return false, false
}

func certainHijack(v string) bool {
	return strings.HasPrefix(v, "/proc/self/cwd/") || strings.HasPrefix(v, "/proc/self/root/") ||
		strings.HasPrefix(v, "./") || !strings.HasPrefix(v, "/") || strings.Contains(v, " ./")
}

func (r *nvt001) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if p == nil || len(p.Env) == 0 || !IsNVHook(p.Exe) {
		return
	}
	var posture []string
	for _, e := range p.Env {
		if e.Value == "" && e.Name != "LD_LIBRARY_PATH" {
			continue
		}
		var hijack, certain bool
		switch {
		case in(e.Name, loaderEnv...):
			hijack, certain = true, certainHijack(e.Value)
		case e.Name == "LD_LIBRARY_PATH":
			hijack, certain = ctx.Settings.hijackLibraryPath(e.Value)
		case e.Name == "NVIDIA_VISIBLE_DEVICES" || e.Name == "NVIDIA_DRIVER_CAPABILITIES":
			posture = append(posture, e.Name)
		}
		if !hijack {
			continue
		}
		conf := "likely"
		if certain {
			conf = "certain"
		}
		ctx.Emit(ev, Report{
			Key: "hijack:" + itoa(uint64(p.PID)),
			Explanation: "NVIDIA hook " + baseName(p.Exe) + " (pid " + itoa(uint64(p.PID)) + ") was executed with " +
				e.Name + "=" + e.Value + " in " + where(ev) + ".",
			Attrs: map[string]string{"variable": e.Name, "value": e.Value, "confidence": conf, "cmdline": cmdline(p)},
		})
		return
	}
	if len(posture) > 0 {
		ctx.Emit(ev, Report{
			Key:      "posture:" + p.Exe,
			Severity: event.SevInfo,
			Explanation: "NVIDIA hook " + baseName(p.Exe) + " ran with image variables " + strings.Join(posture, ", ") +
				" in its environment, the mark of a toolkit older than 1.17.8.",
			Attrs: map[string]string{"posture": "toolkit_pre_1.17.8"},
		})
	}
}
