package detect

import (
	"net/netip"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// metadataAddrs are cloud instance-metadata endpoints.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("169.254.170.2"), netip.MustParseAddr("100.100.100.200"),
}

type cred002 struct{ baseRule }

func newCRED002(*Settings) Rule {
	return &cred002{baseRule{Meta{
		ID:       "CRED-002",
		Title:    "Cloud metadata service (IMDS) contacted from an inference container",
		MITRE:    []string{"T1552.005"},
		Severity: event.SevHigh,
		Description: "A container process connects to an instance-metadata address (169.254.169.254, " +
			"fd00:ec2::254, 169.254.170.2, 100.100.100.200, or class metadata from enrichment) and is not on " +
			"imds_allowlist. Cloud SDKs probing for a region are allowed during startup_grace for the container's " +
			"main process (not shells or tools). Model buckets and registries open to node or workload credentials.",
		Knobs: []string{"imds_allowlist", "startup_grace"},
		Kinds: kinds(event.KindConnect),
	}}}
}

func isMetadataAddr(a netip.Addr) bool {
	a = a.Unmap()
	for _, m := range metadataAddrs {
		if a == m {
			return true
		}
	}
	return false
}

func (r *cred002) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	n := ev.Net
	if !inContainer(ev) || p == nil || n == nil || !n.DAddr.IsValid() {
		return
	}
	if n.Class != event.ClassMetadata && !isMetadataAddr(n.DAddr) {
		return
	}
	s := ctx.Settings
	if s.IsIMDSAllowed(ev.Container, p.Exe) {
		return
	}
	b := exeBase(p)
	if ctx.State.InStartupGrace(ev.Container, ctx.Now, s.Config.StartupGrace.D()) && isMainProcess(ctx, ev) &&
		!isShell(b) && !in(b, "curl", "wget", "nc", "ncat") {
		return
	}
	dst := n.DAddr.String() + ":" + itoa(uint64(n.DPort))
	ctx.Emit(ev, Report{
		Key:         "imds:" + itoa(uint64(p.PID)),
		Explanation: who(ev) + " contacted the cloud metadata service " + dst + " from " + where(ev) + ".",
		Attrs:       map[string]string{"destination": dst},
	})
}
