package detect

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Egress beyond connect(): accepted sockets (a remote peer connects in and
// pulls), datagrams whose destination comes with each send (UDP sendto, raw
// and ICMP sockets), and sends whose destination the kernel did not see.

// netEgress is an egress report with an origin.
func netEgress(b pb, c *event.Container, proto, addr string, port uint16, origin string, cookie, bytes uint64, closed bool) *event.Event {
	n := &event.Net{Protocol: proto, DPort: port, Class: event.ClassExternal, Cookie: cookie, BytesSent: bytes,
		Closed: closed, Fd: -1, Origin: origin}
	if addr != "" {
		n.DAddr = netip.MustParseAddr(addr)
	} else {
		n.Class = event.Unknown
	}
	return &event.Event{Kind: event.KindEgress, Process: b.p, Container: c, Net: n}
}

// acceptEv is an accept of a connection from addr:port on fd.
func acceptEv(b pb, c *event.Container, addr string, port uint16, fd int32, cookie uint64) *event.Event {
	return &event.Event{Kind: event.KindAccept, Process: b.p, Container: c, Net: &event.Net{Protocol: "tcp",
		SAddr: netip.MustParseAddr("10.200.1.2"), SPort: 8090, DAddr: netip.MustParseAddr(addr), DPort: port,
		Class: event.ClassExternal, Cookie: cookie, Fd: fd, Origin: event.OriginAccept}}
}

func TestEXF001AcceptedSocket(t *testing.T) {
	e := newAIEngine(t, nil, nil)
	c := ctr("simctr-infer-v44")
	srv := proc(400, "/usr/bin/python3.11", "python3", "-m", "http.server", "8090")
	fs := run(e,
		at(0, execEv(srv, c)),
		at(10*time.Millisecond, mopen(srv, c, llamaFile, "", rd, 8*mib, 11)),
		at(time.Second, acceptEv(srv, c, "203.0.113.9", 51000, 4, 91)),
		at(2*time.Second, netEgress(srv, c, "tcp", "203.0.113.9", 51000, event.OriginAccept, 91, 8*mib, true)),
		at(3*time.Second, exitEv(srv, c)),
	)
	exf := findingsOf(fs, "EXF-001")
	n, f := maxBytes(t, exf)
	if f == nil || n != 8*mib || f.Attrs["origin"] != event.OriginAccept || f.Attrs["destination"] != "203.0.113.9:51000" ||
		!strings.Contains(f.Explanation, "which connected in") {
		t.Fatalf("EXF-001 on an accepted socket: %+v\nfired:\n%s", f, firedList(fs))
	}
}

// TestEXF001DatagramsPerDestination: one unconnected socket sends to two
// destinations; each finding names its own destination and bytes.
func TestEXF001DatagramsPerDestination(t *testing.T) {
	e := newAIEngine(t, nil, nil)
	c := ctr("simctr-infer-v33")
	py := proc(410, "/usr/bin/python3.11", "python3", "-c", "udp")
	fs := run(e,
		at(0, execEv(py, c)),
		at(10*time.Millisecond, mopen(py, c, llamaFile, "", rd, 8*mib, 11)),
		at(time.Second, netEgress(py, c, "udp", "198.51.100.1", 5353, event.OriginDatagram, 92, 6*mib, false)),
		at(time.Second, netEgress(py, c, "udp", "198.51.100.2", 53, event.OriginDatagram, 92, mib, false)),
		at(2*time.Second, netEgress(py, c, "udp", "198.51.100.1", 5353, event.OriginDatagram, 92, 8*mib, true)),
		at(2*time.Second, netEgress(py, c, "udp", "198.51.100.2", 53, event.OriginDatagram, 92, mib, true)),
		at(3*time.Second, exitEv(py, c)),
	)
	by := map[string]uint64{}
	for _, f := range findingsOf(fs, "EXF-001") {
		n, _ := maxBytes(t, []*event.Finding{f})
		by[f.Attrs["destination"]] = max(by[f.Attrs["destination"]], n)
		if f.Attrs["origin"] != event.OriginDatagram || !strings.Contains(f.Explanation, "datagrams") {
			t.Errorf("finding %+v; want origin datagram", f)
		}
	}
	if by["198.51.100.1:5353"] != 8*mib || by["198.51.100.2:53"] != mib {
		t.Fatalf("bytes by destination %v; want 8 MiB and 1 MiB\nfired:\n%s", by, firedList(fs))
	}
}

func TestEXF001UnknownDestination(t *testing.T) {
	e := newAIEngine(t, nil, nil)
	c := ctr("simctr-infer-v46")
	py := proc(420, "/usr/bin/python3.11", "python3", "-c", "raw")
	fs := run(e,
		at(0, execEv(py, c)),
		at(10*time.Millisecond, mopen(py, c, llamaFile, "", rd, 8*mib, 11)),
		at(time.Second, netEgress(py, c, "raw", "", 0, event.OriginDatagram, 93, 8*mib, true)),
		at(2*time.Second, exitEv(py, c)),
	)
	f := rulesFired(fs)["EXF-001"]
	if f == nil || f.Attrs["destination"] != "unknown destination" || f.Severity != event.SevCritical {
		t.Fatalf("EXF-001 for a send to an unknown destination: %+v\nfired:\n%s", f, firedList(fs))
	}
}

// TestEXF003AcceptedSockets: bytes a remote pulls over an accepted socket
// count, unless the socket is the model server's (serving responses).
func TestEXF003AcceptedSockets(t *testing.T) {
	const big = 300 * mib
	t.Run("served by a process that is not the model server", func(t *testing.T) {
		e := newAIEngine(t, nil, nil)
		c := ctr("simctr-infer-v45")
		nc := proc(430, "/usr/bin/socat", "socat", "tcp-listen:8090", "stdio")
		fs := run(e,
			at(0, execEv(nc, c)),
			at(time.Second, acceptEv(nc, c, "203.0.113.9", 51000, 4, 94)),
			at(2*time.Second, netEgress(nc, c, "tcp", "203.0.113.9", 51000, event.OriginAccept, 94, big, true)),
		)
		if f := rulesFired(fs)["EXF-003"]; f == nil || f.Attrs["bytes_sent"] != itoa(big) {
			t.Fatalf("EXF-003: %+v\nfired:\n%s", f, firedList(fs))
		}
	})
	t.Run("served by the GPU owner and its front end", func(t *testing.T) {
		e := newAIEngine(t, nil, nil)
		c := ctr("simctr-infer-v45b")
		api := proc(440, "/usr/bin/python3.11", "python3", "-m", "vllm.entrypoints.openai.api_server")
		eng := proc(441, "/usr/bin/python3.11", "python3", "-c", "engine").anc(an(440, "/usr/bin/python3.11"))
		fs := run(e,
			at(0, execEv(api, c)),
			at(10*time.Millisecond, forkEv(eng, c)),
			at(20*time.Millisecond, gpuStart(eng, c, 0, "GPU-0")),
			at(time.Second, acceptEv(api, c, "203.0.113.9", 51000, 4, 95)),
			at(time.Second, acceptEv(eng.owner(), c, "203.0.113.10", 51001, 5, 96)),
			at(2*time.Second, netEgress(api, c, "tcp", "203.0.113.9", 51000, event.OriginAccept, 95, big, true)),
			at(2*time.Second, netEgress(eng, c, "tcp", "203.0.113.10", 51001, event.OriginAccept, 96, big, true)),
		)
		if f := rulesFired(fs)["EXF-003"]; f != nil {
			t.Fatalf("EXF-003 on the model server's responses: %s", f.Explanation)
		}
		if f := rulesFired(fs)["GPU-006"]; f != nil {
			t.Fatalf("GPU-006 on accepted sockets: %s", f.Explanation)
		}
	})
}

// TestGPU006Datagrams: datagrams from a GPU owner to a destination outside
// the allowlist fire once, at the first report (there is no connect).
func TestGPU006Datagrams(t *testing.T) {
	e := newAIEngine(t, nil, nil)
	c := ctr("simctr-infer-v47")
	own := proc(450, "/usr/bin/python3.11", "python3", "serve.py").owner()
	fs := run(e,
		at(0, execEv(own, c)),
		at(10*time.Millisecond, gpuStart(own, c, 0, "GPU-0")),
		at(time.Second, netEgress(own, c, "udp", "198.51.100.7", 9999, event.OriginDatagram, 97, 1200, false)),
		at(2*time.Second, netEgress(own, c, "udp", "198.51.100.7", 9999, event.OriginDatagram, 97, 2400, true)),
	)
	gs := findingsOf(fs, "GPU-006")
	if len(gs) != 1 || gs[0].Count != 1 || !strings.Contains(gs[0].Explanation, "sent udp datagrams to 198.51.100.7:9999") {
		t.Fatalf("GPU-006 findings %d; want one for the first report\nfired:\n%s", len(gs), firedList(fs))
	}
}

// TestC2001BindShell: a socket accepted from a remote peer, dup'ed onto
// stdio, is a bind shell: confirmed, not the low "unix socketpair" case.
func TestC2001BindShell(t *testing.T) {
	e := newAIEngine(t, nil, nil)
	c := ctr("simctr-infer-v48")
	nc := proc(460, "/usr/bin/python3.11", "python3", "-c", "bind")
	fs := run(e,
		at(0, execEv(nc, c)),
		at(time.Second, acceptEv(nc, c, "203.0.113.9", 51000, 4, 98)),
		at(1100*time.Millisecond, sysEv(nc, c, event.Syscall{Name: "dup2", Fd: 4, Fd2: 0, FdIsSocket: true})),
	)
	f := rulesFired(fs)["C2-001"]
	if f == nil || f.Severity <= event.SevLow || !strings.Contains(f.Explanation, "accepted from 203.0.113.9:51000") {
		t.Fatalf("C2-001 bind shell: %+v\nfired:\n%s", f, firedList(fs))
	}
}
