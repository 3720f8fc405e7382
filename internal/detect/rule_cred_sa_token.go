package detect

import (
	"net/netip"
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

type cred001 struct{ baseRule }

func newCRED001(*Settings) Rule {
	return &cred001{baseRule{Meta{
		ID:       "CRED-001",
		Title:    "Service-account token read and API-server contact from an inference container",
		MITRE:    []string{"T1528", "T1552.007"},
		Severity: event.SevMedium,
		Description: "A container process other than the container's main process and GPU owners reads a " +
			"service-account token (…/serviceaccount/…token), or a container process connects to the API server " +
			"(KUBERNETES_SERVICE_HOST from its captured env on 443/6443, or apiserver_endpoints). High when a " +
			"container process passes an 'Authorization: Bearer' header to a client on its command line. Allow " +
			"Kubernetes-aware clients with rules.CRED-001.allow_exe.",
		Knobs: []string{"apiserver_endpoints", "rules.CRED-001.allow_exe"},
		Kinds: kinds(event.KindOpen, event.KindConnect, event.KindExec),
	}}}
}

// isSAToken reports whether p is a service-account token file.
func isSAToken(p string) bool {
	return strings.HasSuffix(p, "token") && strings.Contains(p, "/serviceaccount/")
}

// isMainProcess reports whether p is its container's first process or a
// GPU owner: the credential's own consumer.
func isMainProcess(ctx *Context, ev *event.Event) bool {
	p := ev.Process
	if p.GPUOwner || ctx.State.IsGPUOwner(p.PID) {
		return true
	}
	cs := ctx.State.Container(ev.Container.ID)
	return cs != nil && cs.Entrypoint == p.PID && !isShell(exeBase(p))
}

func (r *cred001) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if !inContainer(ev) || p == nil {
		return
	}
	switch ev.Kind {
	case event.KindOpen:
		f := ev.File
		if f == nil || !f.IsRead() || !(isSAToken(f.Path) || isSAToken(f.RawPath)) || isMainProcess(ctx, ev) {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "token",
			Explanation: who(ev) + " read service-account token " + f.Path + resultNote(int64(f.Result)) + " in " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "token_read", "path": f.Path},
		})
	case event.KindConnect:
		n := ev.Net
		if n == nil || !n.DAddr.IsValid() || n.Class == event.ClassLoopback {
			return
		}
		api := ctx.Settings.IsAPIServer(n.DAddr, n.DPort)
		if !api && (n.DPort == 443 || n.DPort == 6443) {
			if v, ok := envValue(p, "KUBERNETES_SERVICE_HOST"); ok {
				if a, err := netip.ParseAddr(v); err == nil && a == n.DAddr.Unmap() {
					api = true
				}
			}
		}
		if !api {
			return
		}
		dst := n.DAddr.String() + ":" + itoa(uint64(n.DPort))
		ctx.Emit(ev, Report{
			Key:         "api:" + dst,
			Explanation: who(ev) + " connected to the Kubernetes API server " + dst + " from " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "apiserver_connect", "destination": dst},
		})
	case event.KindExec:
		for i := 1; i < len(p.Args); i++ {
			if strings.Contains(p.Args[i], "Bearer ") && strings.Contains(strings.ToLower(p.Args[i]), "authorization") {
				ctx.Emit(ev, Report{
					Key:         "bearer",
					Severity:    event.SevHigh,
					Explanation: who(ev) + " passed a bearer token on its command line in " + where(ev) + ".",
					Attrs:       map[string]string{"condition": "bearer_arg"},
				})
				return
			}
		}
	}
}
