package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// credSuffixes are credential files matched at the end of a path.
var credSuffixes = []string{
	"/.cache/huggingface/token", "/.huggingface/token", "/.aws/credentials", "/.aws/config",
	"/.docker/config.json", "/.netrc", "/.git-credentials", "/.kube/config",
	"/var/lib/kubelet/kubeconfig", "/etc/kubernetes/kubelet.conf", "/etc/kubernetes/admin.conf",
}

// credDirs are credential directories matched anywhere in a path.
var credDirs = []string{"/etc/kubernetes/pki/", "/var/lib/kubelet/pki/", "/.azure/"}

// credentialFile names the credential p is, or "".
func credentialFile(p string) string {
	// Every credential path holds a dot-directory or "kube": most paths
	// are rejected with two scans.
	if !strings.Contains(p, "/.") && !strings.Contains(p, "kube") {
		return ""
	}
	for _, s := range credSuffixes {
		if strings.HasSuffix(p, s) {
			return s[1:]
		}
	}
	for _, d := range credDirs {
		if strings.Contains(p, d) {
			return strings.Trim(d, "/")
		}
	}
	if i := strings.Index(p, "/.config/gcloud/"); i >= 0 && strings.Contains(baseName(p), "credentials") {
		return ".config/gcloud"
	}
	return ""
}

type cred003 struct{ baseRule }

func newCRED003(*Settings) Rule {
	return &cred003{baseRule{Meta{
		ID:       "CRED-003",
		Title:    "Model-hub / cloud / kubelet credentials or /proc/*/environ read",
		MITRE:    []string{"T1552.001", "T1003.007", "AML.T0055"},
		Severity: event.SevHigh,
		Description: "A container process other than the credential's consumer (the container's main process or " +
			"a GPU owner) reads a Hugging Face token, AWS/GCP/Azure credentials, docker config, .netrc, " +
			".git-credentials, a kubeconfig or Kubernetes/kubelet PKI (raw or resolved path, so /proc/1/root/... " +
			"and /host/... count); or any process reads /proc/<pid>/environ of a GPU owner, or a container process " +
			"reads it for a process outside its container (tokens such as HF_TOKEN live in the server env). The " +
			"pid is the reader's: one in a container's PID namespace is mapped to the host pid; a successful read is " +
			"recognised by the process the kernel opened the entry of, whatever path reached it.",
		Knobs: []string{"rules.CRED-003.allow_exe"},
		Kinds: kinds(event.KindOpen),
	}}}
}

func (r *cred003) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	f := ev.File
	if p == nil || f == nil || !f.IsRead() {
		return
	}
	var t uint32
	switch pid, rest, ok := procPath(f.RawPath); {
	case f.Knob == event.KnobProcEnviron && f.TargetPID != 0:
		// The kernel named the process by its host pid, whatever path (a
		// symlink, another procfs mount) or pid namespace reached it.
		t = f.TargetPID
	case ok && rest == "environ" && pid != "self" && pid != "thread-self":
		var known bool
		if t, known = ctx.State.HostPID(p, atoiPID(pid), ctx.Now); !known {
			return
		}
	}
	if t != 0 {
		if t == p.PID {
			return
		}
		why := ""
		if ctx.State.IsGPUOwner(t) {
			why = "GPU owner"
		} else if inContainer(ev) {
			if out, other, decided := ctx.State.Outside(p, ev.Container, t, ctx.Now); decided && out {
				why = "process in " + other
			}
		}
		if why == "" {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "environ:" + itoa(uint64(t)),
			Explanation: who(ev) + " read the environment of " + why + " pid " + itoa(uint64(t)) + " (" + f.RawPath + ")" + resultNote(int64(f.Result)) + " from " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "proc_environ", "target_pid": itoa(uint64(t))},
		})
		return
	}
	if !inContainer(ev) {
		return
	}
	cred := credentialFile(f.Path)
	path := f.Path
	if cred == "" {
		if cred = credentialFile(f.RawPath); cred == "" {
			return
		}
		path = f.RawPath
	}
	if isMainProcess(ctx, ev) {
		return
	}
	ctx.Emit(ev, Report{
		Key:         "cred:" + cred,
		Explanation: who(ev) + " read credential file " + path + resultNote(int64(f.Result)) + " in " + where(ev) + ".",
		Attrs:       map[string]string{"condition": "credential_file", "path": path, "credential": cred},
	})
}
