package detect

import (
	"strings"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// fakeSockets is a RuntimeSockets over a fixed set of socket files.
type fakeSockets map[[2]uint64]string

func (f fakeSockets) RuntimeSocket(dev, ino uint64) (string, bool) {
	return f[[2]uint64{dev, ino}], len(f) > 0
}

// TestESC006SocketIdentity: ESC-006 decides on the socket file the kernel
// says the caller reached, not on the name it passed.
func TestESC006SocketIdentity(t *testing.T) {
	const dev = 0x801
	runtime := fakeSockets{{dev, 77}: "/run/containerd/containerd.sock"}
	peer := func(path, bound string, ino uint64) *event.Event {
		ev := unixEv(proc(60, "/usr/bin/curl"), ctr("simctr-infer-x"), path)
		ev.Net.PeerPath, ev.Net.PeerIno = bound, ino
		if ino != 0 {
			ev.Net.PeerDev = dev
		}
		return ev
	}
	tests := []struct {
		name    string
		sockets RuntimeSockets
		ev      *event.Event
		fire    bool
		sev     event.Severity
		explain string
	}{
		{"symlink or bind mount under an innocuous name", runtime,
			peer("/tmp/api", "/run/containerd/containerd.sock", 77), true, event.SevCritical, "through /tmp/api"},
		{"hard link, the server bound another name", runtime,
			peer("/var/tmp/x", "/run/containerd/containerd.sock", 77), true, event.SevCritical, "device 8:1 inode 77"},
		{"runtime socket file, server's bound name unknown", runtime,
			peer("/data/sock", "", 77), true, event.SevCritical, "/run/containerd/containerd.sock"},
		{"the container's own docker.sock is low", runtime,
			peer("/tmp/docker.sock", "/tmp/docker.sock", 90), true, event.SevLow, "none of the node's runtime sockets"},
		{"an innocuous name for an innocuous socket", runtime,
			peer("/tmp/app.sock", "/tmp/app.sock", 91), false, 0, ""},
		{"refused connect to a docker.sock: the name decides", runtime,
			func() *event.Event { e := peer("/run/docker.sock", "", 0); e.Net.Result = -13; return e }(), true, event.SevCritical, ""},
		{"abstract containerd-shim socket has no file", runtime,
			peer("@/containerd-shim/abc.sock", "@/containerd-shim/abc.sock", 0), true, event.SevCritical, ""},
		{"no runtime socket known on the node: the server's name decides", fakeSockets{},
			peer("/tmp/api", "/run/docker.sock", 90), true, event.SevCritical, "/run/docker.sock"},
		{"no socket view: the caller's name decides", nil,
			peer("/run/simrt/docker.sock", "", 0), true, event.SevCritical, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New(harnessConfig(), &Options{HostNS: hostNS, Self: testSelf, Sockets: tt.sockets})
			if err != nil {
				t.Fatal(err)
			}
			f, fired := rulesFired(run(e, tt.ev))["ESC-006"]
			if fired != tt.fire {
				t.Fatalf("fired %v; want %v", fired, tt.fire)
			}
			if !fired {
				return
			}
			if f.Severity != tt.sev || !strings.Contains(f.Explanation, tt.explain) {
				t.Errorf("%s %q; want %s containing %q", f.Severity, f.Explanation, tt.sev, tt.explain)
			}
			if f.Attrs["socket"] != tt.ev.Net.UnixPath {
				t.Errorf("socket attr %q; want the caller's path %q as evidence", f.Attrs["socket"], tt.ev.Net.UnixPath)
			}
		})
	}
}
