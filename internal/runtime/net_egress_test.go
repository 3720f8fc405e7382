package runtime

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Bytes on every socket that can carry data off the node: accepted sockets,
// unconnected UDP, raw and ICMP sockets, io_uring, splice. The helpers run in
// a network namespace of their own whose loopback device also holds
// nsAddr, an address that is not a loopback address: traffic to it stays in
// the namespace, but the kernel and the sensor see a remote-looking peer.

const (
	nsAddr  = "10.9.9.1"
	nsAddr6 = "fd00:9::1"
)

// netHelperMore holds the helper actions of these tests (see netHelper).
func netHelperMore(action string, f []string) error {
	switch action {
	case "datagrams": // datagrams <ip> <port1> <n1> <port2> <n2>: sendto port1, sendmsg(msg_name) port2
		ip := netip.MustParseAddr(f[0]).As4()
		p1, _ := strconv.Atoi(f[1])
		n1, _ := strconv.Atoi(f[2])
		p2, _ := strconv.Atoi(f[3])
		n2, _ := strconv.Atoi(f[4])
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		buf := make([]byte, 1000)
		for sent := 0; sent < n1; sent += 1000 {
			if err := unix.Sendto(fd, buf[:min(1000, n1-sent)], 0, &unix.SockaddrInet4{Addr: ip, Port: p1}); err != nil {
				return fmt.Errorf("sendto: %w", err)
			}
		}
		if _, err := unix.SendmsgN(fd, make([]byte, n2), nil, &unix.SockaddrInet4{Addr: ip, Port: p2}, 0); err != nil {
			return fmt.Errorf("sendmsg: %w", err)
		}
		sa, _ := unix.Getsockname(fd)
		fmt.Printf("local=%s:%d\n", f[0], sa.(*unix.SockaddrInet4).Port)
		return unix.Close(fd)
	case "raw": // raw <ip> <proto> <bytes>: a raw socket's sendto
		proto, _ := strconv.Atoi(f[1])
		n, _ := strconv.Atoi(f[2])
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		if err := unix.Sendto(fd, make([]byte, n), 0, &unix.SockaddrInet4{Addr: netip.MustParseAddr(f[0]).As4()}); err != nil {
			return fmt.Errorf("sendto: %w", err)
		}
		return unix.Close(fd)
	case "raw6": // raw6 <ip6> <proto> <bytes>: an IPv6 raw socket's sendto
		proto, _ := strconv.Atoi(f[1])
		n, _ := strconv.Atoi(f[2])
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		if err := unix.Sendto(fd, make([]byte, n), 0, &unix.SockaddrInet6{Addr: netip.MustParseAddr(f[0]).As16()}); err != nil {
			return fmt.Errorf("sendto: %w", err)
		}
		return unix.Close(fd)
	case "packet": // packet <frame bytes>: an AF_PACKET socket sends one Ethernet frame on lo
		n, _ := strconv.Atoi(f[0])
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		frame := make([]byte, n)
		frame[12], frame[13] = 0x88, 0xb5 // local experimental ethertype
		if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: lo.Index, Protocol: htons(0x88b5)}); err != nil {
			return fmt.Errorf("sendto: %w", err)
		}
		return unix.Close(fd)
	case "ping": // ping <ip> <payload bytes>: an ICMP echo through a ping socket (no raw socket needed)
		n, _ := strconv.Atoi(f[1])
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		if err != nil {
			return err
		}
		pkt := make([]byte, 8+n)
		pkt[0] = 8 // echo request; the kernel sets id and checksum
		if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: netip.MustParseAddr(f[0]).As4()}); err != nil {
			return fmt.Errorf("sendto: %w", err)
		}
		return unix.Close(fd)
	case "splice": // splice <addr> <file>: connect, splice(2) the file through a pipe into the socket
		c, err := net.Dial("tcp4", f[0])
		if err != nil {
			return err
		}
		fmt.Println("local=" + c.LocalAddr().String())
		src, err := os.Open(f[1])
		if err != nil {
			return err
		}
		defer src.Close()
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return err
		}
		sock, err := c.(*net.TCPConn).File()
		if err != nil {
			return err
		}
		for {
			n, err := unix.Splice(int(src.Fd()), nil, p[1], nil, 1<<16, 0)
			if err != nil {
				return fmt.Errorf("splice file: %w", err)
			}
			if n == 0 {
				break
			}
			for n > 0 {
				k, err := unix.Splice(p[0], nil, int(sock.Fd()), nil, int(n), 0)
				if err != nil {
					return fmt.Errorf("splice socket: %w", err)
				}
				n -= k
			}
		}
		sock.Close()
		return c.Close()
	case "reconnect": // reconnect <ip> <port1> <n1> <port2> <n2>: one UDP socket connected to port1, then port2
		ip := netip.MustParseAddr(f[0]).As4()
		for _, p := range []string{f[1], f[3]} { // receivers, so that no ICMP error fails the socket
			pc, err := net.ListenPacket("udp4", f[0]+":"+p)
			if err != nil {
				return err
			}
			defer pc.Close()
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		for i := 1; i < 5; i += 2 {
			port, _ := strconv.Atoi(f[i])
			n, _ := strconv.Atoi(f[i+1])
			if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: ip, Port: port}); err != nil {
				return err
			}
			if _, err := unix.Write(fd, make([]byte, n)); err != nil {
				return err
			}
		}
		return unix.Close(fd)
	case "uring": // uring <ip> <accepted bytes> <connected bytes> <datagram bytes>
		return uringHelper(f)
	}
	return fmt.Errorf("unknown action %q", action)
}

// uringHelper connects, accepts and sends through io_uring only: an
// accepted socket sends, a socket connected by IORING_OP_CONNECT sends, and
// a UDP socket sends with IORING_OP_SENDMSG and msg_name.
func uringHelper(f []string) error {
	ip := netip.MustParseAddr(f[0]).As4()
	na, _ := strconv.Atoi(f[1])
	nc, _ := strconv.Atoi(f[2])
	nd, _ := strconv.Atoi(f[3])
	r, err := newURing()
	if err != nil {
		return err
	}
	defer r.Close()
	ln, err := net.Listen("tcp4", f[0]+":0")
	if err != nil {
		return err
	}
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	fmt.Printf("listen=%s:%d\n", f[0], port)
	// A plain client pulls na bytes from the socket io_uring accepts.
	got := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			got <- err
			return
		}
		fmt.Println("client=" + c.LocalAddr().String())
		_, err = io.CopyN(io.Discard, c, int64(na))
		c.Close()
		got <- err
	}()
	afd, err := r.accept(int(lf.Fd()))
	if err != nil {
		return fmt.Errorf("io_uring accept: %w", err)
	}
	if err := r.send(afd, make([]byte, na)); err != nil {
		return fmt.Errorf("io_uring send (accepted): %w", err)
	}
	if err := <-got; err != nil {
		return err
	}
	unix.Close(afd)

	// io_uring connects to the listener (drained by a plain accept) and sends nc bytes.
	go func() {
		s, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, s)
			s.Close()
		}
	}()
	cfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := r.connect4(cfd, ip, port); err != nil {
		return fmt.Errorf("io_uring connect: %w", err)
	}
	sa, _ := unix.Getsockname(cfd)
	fmt.Printf("connected=%s:%d\n", f[0], sa.(*unix.SockaddrInet4).Port)
	if err := r.send(cfd, make([]byte, nc)); err != nil {
		return fmt.Errorf("io_uring send (connected): %w", err)
	}
	unix.Close(cfd)

	ufd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := r.sendmsgTo(ufd, make([]byte, nd), ip, 9); err != nil {
		return fmt.Errorf("io_uring sendmsg: %w", err)
	}
	unix.Close(ufd)
	lf.Close()
	return ln.Close()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// runNetHelperNS is runNetHelper in a network namespace of its own, with
// nsAddr on its loopback device and ping sockets allowed.
func runNetHelperNS(t *testing.T, action string, args ...string) (uint32, map[string]string) {
	t.Helper()
	requireKernel(t)
	for _, tool := range []string{"unshare", "ip", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: the network tests build a namespace with it", tool)
		}
	}
	self, _ := os.Executable()
	cmd := exec.Command("unshare", "--net", "--", "/bin/sh", "-c",
		`ip link set lo up && ip addr add `+nsAddr+`/32 dev lo && ip addr add `+nsAddr6+`/128 dev lo && `+
			`sysctl -qw net.ipv4.ping_group_range="0 2147483647" && exec "$0" -test.run='^$'`,
		self)
	cmd.Env = append(os.Environ(), netHelperEnv+"="+action, "KESTREL_NET_ARGS="+strings.Join(args, " "))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("net helper %s %v: %v: %s", action, args, err, out)
	}
	kv := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	return uint32(cmd.Process.Pid), kv
}

func egressBy(pid uint32, pred func(*event.Net) bool) func(*event.Event) bool {
	return func(e *event.Event) bool {
		return e.Kind == event.KindEgress && e.Process.PID == pid && e.Net.Closed && pred(e.Net)
	}
}

// TestEgressAcceptedSocket: a remote peer connects in and pulls bytes. The
// accept is reported with the peer, and the bytes the accepting process
// sends on that socket are accounted to the peer, with origin "accept".
func TestEgressAcceptedSocket(t *testing.T) {
	_, c := startSensor(t, netConfig())
	const serverBytes, clientBytes = 3<<20 + 5, 5000
	pid, kv := runNetHelperNS(t, "accept", strconv.Itoa(serverBytes), strconv.Itoa(clientBytes), nsAddr+":0")
	listen, client := addrPort(t, kv["listen"]), addrPort(t, kv["local"])

	acc := c.wait(t, "accept", func(e *event.Event) bool { return e.Kind == event.KindAccept && e.Process.PID == pid })
	n := acc.Net
	if n.Protocol != "tcp" || n.DAddr != client.Addr() || n.DPort != client.Port() || n.SPort != listen.Port() ||
		n.Fd < 3 || n.Cookie == 0 || n.Origin != event.OriginAccept || n.Via != "" {
		t.Errorf("accept %+v; want tcp peer %v on :%d, an fd and a cookie", *n, client, listen.Port())
	}
	srv := c.wait(t, "egress of the accepted socket", egressBy(pid, func(x *event.Net) bool { return x.Cookie == n.Cookie }))
	if srv.Net.BytesSent != serverBytes || srv.Net.Origin != event.OriginAccept || srv.Net.DAddr != client.Addr() ||
		srv.Net.DPort != client.Port() || srv.Net.SPort != listen.Port() {
		t.Errorf("accepted socket egress %+v; want %d bytes to %v, origin accept", *srv.Net, serverBytes, client)
	}
	cli := c.wait(t, "egress of the client socket", egressBy(pid, func(x *event.Net) bool { return x.SPort == client.Port() }))
	if cli.Net.BytesSent != clientBytes || cli.Net.Origin != event.OriginConnect || cli.Net.DPort != listen.Port() {
		t.Errorf("client egress %+v; want %d bytes to :%d, origin connect", *cli.Net, clientBytes, listen.Port())
	}
}

// TestEgressLoopbackAccept: an accept from a loopback peer is not reported
// (the peer's connect is), but the bytes sent on the accepted socket are,
// exactly.
func TestEgressLoopbackAccept(t *testing.T) {
	s, c := startSensor(t, netConfig())
	const serverBytes, clientBytes = 1 << 20, 5000
	pid, kv := runNetHelper(t, "accept", strconv.Itoa(serverBytes), strconv.Itoa(clientBytes))
	lport := addrPort(t, kv["listen"]).Port()
	cport := addrPort(t, kv["local"]).Port()
	cli := c.wait(t, "client egress", egressBy(pid, func(x *event.Net) bool { return x.SPort == cport }))
	if cli.Net.DPort != lport || cli.Net.BytesSent != clientBytes || cli.Net.Origin != event.OriginConnect {
		t.Errorf("client egress %+v; want %d bytes to :%d", *cli.Net, clientBytes, lport)
	}
	srv := c.wait(t, "accepted egress", egressBy(pid, func(x *event.Net) bool { return x.SPort == lport }))
	if srv.Net.DPort != cport || srv.Net.BytesSent != serverBytes || srv.Net.Origin != "" {
		t.Errorf("accepted socket egress %+v; want %d bytes to :%d, origin unknown", *srv.Net, serverBytes, cport)
	}
	if e := c.find(func(x *event.Event) bool { return x.Kind == event.KindAccept && x.Process.PID == pid }); e != nil {
		t.Errorf("accept from a loopback peer reported: %+v", *e.Net)
	}
	conns := 0
	for _, x := range c.all() {
		if x.Kind == event.KindConnect && x.Process.PID == pid {
			conns++
		}
	}
	if conns != 1 {
		t.Errorf("%d connect events; want 1", conns)
	}
	// The kernel's socket accounting shows in Counters once a report ran.
	deadline := time.Now().Add(5 * time.Second)
	for {
		cs := s.Counters()
		if cs["egress_sockets_tracked"] >= 2 && cs["egress_sockets_released"] >= 2 && cs["egress_sockets_evicted"] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters: tracked %d released %d evicted %d", cs["egress_sockets_tracked"],
				cs["egress_sockets_released"], cs["egress_sockets_evicted"])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEgressDatagrams: sends that carry their own destination are accounted
// per socket and destination: unconnected UDP sendto and sendmsg with
// msg_name, a raw socket, an ICMP ping socket. Nothing listens: the bytes
// leave all the same. Entries are reported closed after the socket closes.
func TestEgressDatagrams(t *testing.T) {
	_, c := startSensor(t, netConfig())
	dst := netip.MustParseAddr(nsAddr)
	pid, kv := runNetHelperNS(t, "datagrams", nsAddr, "5353", "3500", "6000", "1200")
	sport := addrPort(t, kv["local"]).Port()
	for port, want := range map[uint16]uint64{5353: 3500, 6000: 1200} {
		e := c.wait(t, fmt.Sprintf("udp to :%d", port), egressBy(pid, func(x *event.Net) bool { return x.DPort == port }))
		n := e.Net
		if n.Protocol != "udp" || n.DAddr != dst || n.BytesSent != want || n.Origin != event.OriginDatagram || n.SPort != sport {
			t.Errorf("udp egress %+v; want %d bytes to %v:%d from :%d, origin datagram", *n, want, dst, port, sport)
		}
	}

	pid, _ = runNetHelperNS(t, "raw", nsAddr, "253", "700")
	e := c.wait(t, "raw egress", egressBy(pid, func(*event.Net) bool { return true }))
	if n := e.Net; n.Protocol != "raw" || n.IPProto != 253 || n.DAddr != dst || n.BytesSent != 700 || n.Origin != event.OriginDatagram {
		t.Errorf("raw egress %+v; want raw/253, 700 bytes to %v", *n, dst)
	}

	pid, _ = runNetHelperNS(t, "raw6", nsAddr6, "253", "900")
	e = c.wait(t, "raw6 egress", egressBy(pid, func(*event.Net) bool { return true }))
	if n := e.Net; n.Protocol != "raw" || n.IPProto != 253 || n.DAddr != netip.MustParseAddr(nsAddr6) || n.BytesSent != 900 {
		t.Errorf("raw6 egress %+v; want raw/253, 900 bytes to %s", *n, nsAddr6)
	}

	pid, _ = runNetHelperNS(t, "ping", nsAddr, "56")
	e = c.wait(t, "icmp egress", egressBy(pid, func(*event.Net) bool { return true }))
	if n := e.Net; n.Protocol != "icmp" || n.DAddr != dst || n.BytesSent != 64 || n.Origin != event.OriginDatagram {
		t.Errorf("icmp egress %+v; want icmp, 64 bytes to %v", *n, dst)
	}

	// AF_PACKET sockets are not inet sockets (no release hook): their
	// entries are reported by the periodic walk.
	pid, _ = runNetHelperNS(t, "packet", "777")
	e = c.wait(t, "packet egress", func(x *event.Event) bool {
		return x.Kind == event.KindEgress && x.Process.PID == pid && x.Net.Protocol == "packet"
	})
	if n := e.Net; n.BytesSent != 777 || n.DAddr.IsValid() || n.Origin != event.OriginDatagram {
		t.Errorf("packet egress %+v; want 777 bytes, no IP destination", *n)
	}
}

// TestEgressUDPReconnect: a connected UDP socket that connects elsewhere
// gets a final report for its first destination, and counts anew for the
// second.
func TestEgressUDPReconnect(t *testing.T) {
	_, c := startSensor(t, netConfig())
	pid, _ := runNetHelperNS(t, "reconnect", nsAddr, "7001", "1500", "7002", "700")
	for port, want := range map[uint16]uint64{7001: 1500, 7002: 700} {
		e := c.wait(t, fmt.Sprintf("final to :%d", port), egressBy(pid, func(x *event.Net) bool { return x.DPort == port }))
		if n := e.Net; n.BytesSent != want || n.Origin != event.OriginConnect || n.Protocol != "udp" {
			t.Errorf("egress to :%d %+v; want %d bytes, origin connect", port, *n, want)
		}
	}
}

// TestIOUringNet: io_uring ACCEPT, CONNECT, SEND and SENDMSG reach the same
// events as the system calls, with via "io_uring".
func TestIOUringNet(t *testing.T) {
	_, c := startSensor(t, netConfig())
	const na, nc, nd = 2<<20 + 3, 70001, 1234
	pid, kv := runNetHelperNS(t, "uring", nsAddr, strconv.Itoa(na), strconv.Itoa(nc), strconv.Itoa(nd))
	listen, client, conn := addrPort(t, kv["listen"]), addrPort(t, kv["client"]), addrPort(t, kv["connected"])

	acc := c.wait(t, "io_uring accept", func(e *event.Event) bool { return e.Kind == event.KindAccept && e.Process.PID == pid })
	if n := acc.Net; n.Via != event.ViaIOUring || n.DPort != client.Port() || n.SPort != listen.Port() || n.Fd < 3 {
		t.Errorf("accept %+v; want via io_uring, peer %v, fd", *n, client)
	}
	srv := c.wait(t, "accepted egress", egressBy(pid, func(x *event.Net) bool { return x.Cookie == acc.Net.Cookie }))
	if srv.Net.BytesSent != na || srv.Net.Origin != event.OriginAccept {
		t.Errorf("accepted socket egress %+v; want %d bytes, origin accept", *srv.Net, na)
	}
	con := c.wait(t, "io_uring connect", func(e *event.Event) bool {
		return e.Kind == event.KindConnect && e.Process.PID == pid && e.Net.Via == event.ViaIOUring
	})
	if n := con.Net; n.DPort != listen.Port() || n.DAddr != listen.Addr() || n.Protocol != "tcp" || n.Cookie == 0 {
		t.Errorf("connect %+v; want tcp to %v", *n, listen)
	}
	out := c.wait(t, "connected egress", egressBy(pid, func(x *event.Net) bool { return x.Cookie == con.Net.Cookie }))
	if out.Net.BytesSent != nc || out.Net.SPort != conn.Port() || out.Net.Origin != event.OriginConnect {
		t.Errorf("connected socket egress %+v; want %d bytes from :%d", *out.Net, nc, conn.Port())
	}
	dg := c.wait(t, "io_uring sendmsg", egressBy(pid, func(x *event.Net) bool { return x.Protocol == "udp" }))
	if dg.Net.BytesSent != nd || dg.Net.DPort != 9 || dg.Net.Origin != event.OriginDatagram {
		t.Errorf("datagram egress %+v; want %d bytes to :9", *dg.Net, nd)
	}
}

// TestEgressSendfileAndSplice: bytes sent with sendfile(2) and splice(2)
// (the way servers and copy tools ship files) are counted like write(2).
func TestEgressSendfileAndSplice(t *testing.T) {
	_, c := startSensor(t, netConfig())
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, s); s.Close() }()
		}
	}()
	const size = 2<<20 + 7
	file := filepath.Join(t.TempDir(), "weights.safetensors")
	if err := os.WriteFile(file, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"sendfile", "splice"} {
		pid, _ := runNetHelper(t, action, ln.Addr().String(), file)
		fin := c.wait(t, action+" egress", egressBy(pid, func(*event.Net) bool { return true }))
		if fin.Net.BytesSent != size {
			t.Errorf("%s: bytes sent = %d; want %d", action, fin.Net.BytesSent, size)
		}
	}
}

// TestEgressReporterDatagrams drives the report over an egress_dgram map:
// one socket, several destinations, each reported on its own; an idle entry
// is taken out of the map and its count carried over when it sends again;
// REC_SOCK_CLOSED makes the next walk report the socket's entries closed.
func TestEgressReporterDatagrams(t *testing.T) {
	requireKernel(t)
	socks, dgram, stats := egressTestMaps(t, 16, 16)
	tracked := uint64(0)
	key := func(cookie uint64, port uint16) dgramKey {
		var k dgramKey
		le.PutUint64(k[:], cookie)
		copy(k[8:], []byte{198, 51, 100, 1})
		le.PutUint16(k[24:], port)
		k[26] = afInet
		return k
	}
	put := func(cookie uint64, port uint16, bytes uint64) {
		k := key(cookie, port)
		var old [egressValSize]byte
		if dgram.Lookup(&k, &old) != nil {
			tracked++
			per := make([]uint64, ebpf.MustPossibleCPU())
			per[0] = tracked
			if err := stats.Put(uint32(netDgramTracked), per); err != nil {
				t.Fatal(err)
			}
		}
		v := statsRec(cookie, bytes, afInet, ipprotoUDP, connFSrc|connFDst|egFDgram, 5000, port, a16("10.0.0.1"), a16("198.51.100.1"), 0)
		v[egOrigin] = 3
		if err := dgram.Put(&k, v); err != nil {
			t.Fatal(err)
		}
	}
	s := &Sensor{}
	r := &s.egress
	d := decoder{bootEpoch: time.Unix(0, 0)}
	type rep struct {
		bytes  uint64
		closed bool
	}
	step := func(want map[uint16]rep) {
		t.Helper()
		got := map[uint16]rep{}
		lost := 0
		err := r.report(&d, socks, dgram, stats, time.Unix(2000, 0), func(e *event.Event) {
			if e.Kind == event.KindLost {
				lost++
				return
			}
			if e.Net.Origin != event.OriginDatagram || e.Net.Cookie != 7 {
				t.Errorf("report %+v", *e.Net)
			}
			got[e.Net.DPort] = rep{e.Net.BytesSent, e.Net.Closed}
		})
		if err != nil {
			t.Fatalf("report: %v", err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || lost != 0 {
			t.Errorf("reported %v (lost events %d); want %v", got, lost, want)
		}
	}
	gone := func(port uint16) bool {
		k := key(7, port)
		var v [egressValSize]byte
		return errors.Is(dgram.Lookup(&k, &v), ebpf.ErrKeyNotExist)
	}
	put(7, 53, 100)
	put(7, 5353, 4000)
	step(map[uint16]rep{53: {100, false}, 5353: {4000, false}})
	put(7, 5353, 5000)
	step(map[uint16]rep{5353: {5000, false}})
	step(map[uint16]rep{})
	step(map[uint16]rep{}) // port 53 idle for dgramIdleWalks walks: taken out, nothing new to say
	if !gone(53) || gone(5353) {
		t.Fatalf("after 3 idle walks: port 53 left %v, port 5353 left %v; want only 53 gone", gone(53), gone(5353))
	}
	put(7, 53, 20) // it sends again: the kernel counts from zero, the report carries on
	step(map[uint16]rep{53: {120, false}})
	if !gone(5353) {
		t.Fatal("port 5353 idle for 3 walks is still in the map")
	}
	put(7, 53, 30)
	closed := make([]byte, sockClosedSize)
	putHdr(closed, recSockClosed, sockClosedSize, 42, 43, 0, 0)
	le.PutUint64(closed[sockClosedCookie:], 7)
	if err := r.sockClosed(closed); err != nil {
		t.Fatal(err)
	}
	step(map[uint16]rep{53: {130, true}})
	if !gone(53) || len(r.base) != 0 || len(r.dgram) != 0 {
		t.Errorf("after close: map entry left %v, base %v, state %v", !gone(53), r.base, r.dgram)
	}
	if err := r.sockClosed(closed[:40]); err == nil {
		t.Error("a short socket closed record was accepted")
	}
	m := map[string]uint64{}
	r.counters(m)
	if m["egress_sockets_evicted"] != 0 || m["egress_datagram_released"] != 3 || m["egress_datagram_live"] != 0 {
		t.Errorf("counters %v", m)
	}
}

// TestNetIdentity: network records name the sending process with its real
// and effective uid (here an unprivileged one), read at the time of the
// call.
func TestNetIdentity(t *testing.T) {
	_, c := startSensor(t, netConfig())
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	// bash's /dev/udp connects a UDP socket and writes to it.
	cmd := exec.Command("bash", "-c", "echo hello > /dev/udp/127.0.0.1/"+strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4242, Gid: 4242}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper as uid 4242: %v: %s", err, out)
	}
	pid := uint32(cmd.Process.Pid)
	for _, kind := range []event.Kind{event.KindConnect, event.KindEgress} {
		e := c.wait(t, kind.String(), func(x *event.Event) bool { return x.Kind == kind && x.Process.PID == pid })
		if e.Process.UID != 4242 || e.Process.EUID != 4242 || e.Process.Comm == "" {
			t.Errorf("%v by uid %d euid %d comm %q; want 4242, 4242", kind, e.Process.UID, e.Process.EUID, e.Process.Comm)
		}
	}
}
