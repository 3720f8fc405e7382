package runtime

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// ---- decoding, no kernel needed ----

// connRec builds a REC_CONNECT record as bpf/net.bpf.h lays it out.
type connRec struct {
	cookie              uint64
	family, proto       uint8
	flags               uint8
	result, fd          int32
	sport, dport        uint16
	saddr, daddr        [16]byte
	path                []byte
	pathLen             int // -1: len(path)
	peerPath            []byte
	peerIno             uint64
	peerDev             uint32 // kernel encoding
	sotype, via         uint8  // sotype 0: from proto
	size                int    // 0: connRecSize
	tgid, tid, uid, eid uint32
}

func (c connRec) bytes() []byte {
	size := c.size
	if size == 0 {
		size = connRecSize
	}
	b := make([]byte, max(size, connRecSize))
	putHdr(b, recConnect, size, c.tgid, c.tid, c.uid, c.eid)
	le := binary.LittleEndian
	le.PutUint64(b[connCookie:], c.cookie)
	b[connFamily], b[connProto], b[connFlags] = c.family, c.proto, c.flags
	b[connSotype], b[connVia] = c.sotype, c.via
	if c.sotype == 0 && c.family != afUnix {
		b[connSotype] = sotypeOf(c.proto)
	}
	pl := c.pathLen
	if pl < 0 {
		pl = len(c.path)
	}
	b[connPathLen] = uint8(pl)
	b[connPeerPathLen] = uint8(len(c.peerPath))
	copy(b[connPeerPath:], c.peerPath)
	le.PutUint64(b[connPeerIno:], c.peerIno)
	le.PutUint32(b[connPeerDev:], c.peerDev)
	le.PutUint32(b[connResult:], uint32(c.result))
	le.PutUint32(b[connFd:], uint32(c.fd))
	le.PutUint16(b[connSport:], c.sport)
	le.PutUint16(b[connDport:], c.dport)
	copy(b[connSaddr:], c.saddr[:])
	copy(b[connDaddr:], c.daddr[:])
	copy(b[connPath:connPath+unixPathMax], c.path)
	return b[:size]
}

func putHdr(b []byte, typ, size int, tgid, tid, uid, euid uint32) {
	le := binary.LittleEndian
	le.PutUint16(b[hdrType:], uint16(typ))
	le.PutUint16(b[hdrSizeOff:], uint16(size))
	le.PutUint32(b[hdrTGID:], tgid)
	le.PutUint32(b[hdrTID:], tid)
	le.PutUint32(b[hdrUID:], uid)
	le.PutUint32(b[hdrEUID:], euid)
	le.PutUint64(b[hdrTS:], 5e9)
	le.PutUint64(b[hdrCgroupID:], 77)
	copy(b[hdrComm:hdrComm+commLen], "curl\x00")
}

// statsRec builds a REC_SOCK_STATS record (struct egress_val).
func statsRec(cookie, bytes uint64, family, proto, flags uint8, sport, dport uint16, saddr, daddr [16]byte, size int) []byte {
	if size == 0 {
		size = egressValSize
	}
	b := make([]byte, max(size, egressValSize))
	putHdr(b, recSockStats, size, 42, 43, 1000, 0)
	le := binary.LittleEndian
	le.PutUint64(b[egCookie:], cookie)
	le.PutUint64(b[egBytes:], bytes)
	le.PutUint64(b[egSends:], 3)
	b[egFamily], b[egProto], b[egFlags] = family, proto, flags
	b[egSotype] = sotypeOf(proto)
	le.PutUint16(b[egSport:], sport)
	le.PutUint16(b[egDport:], dport)
	copy(b[egSaddr:], saddr[:])
	copy(b[egDaddr:], daddr[:])
	return b[:size]
}

// sotypeOf is the socket type a test record of protocol proto has.
func sotypeOf(proto uint8) uint8 {
	if proto == ipprotoTCP {
		return sockStream
	}
	return sockDgram
}

func a16(s string) [16]byte {
	var out [16]byte
	a := netip.MustParseAddr(s)
	if a.Is4() {
		v := a.As4()
		copy(out[:], v[:])
		return out
	}
	return a.As16()
}

func TestDecodeNet(t *testing.T) {
	all := connFResult | connFFd | connFSrc | connFDst
	tests := []struct {
		name string
		rec  []byte
		want event.Net
		kind event.Kind
	}{
		{
			name: "tcp4 connect",
			rec: connRec{cookie: 9, family: afInet, proto: ipprotoTCP, flags: uint8(all), result: 0, fd: 5,
				sport: 40000, dport: 8080, saddr: a16("127.0.0.1"), daddr: a16("127.0.0.2"), pathLen: -1, tgid: 42}.bytes(),
			want: event.Net{Protocol: "tcp", SAddr: netip.MustParseAddr("127.0.0.1"), SPort: 40000,
				DAddr: netip.MustParseAddr("127.0.0.2"), DPort: 8080, Cookie: 9, Fd: 5},
			kind: event.KindConnect,
		},
		{
			name: "tcp6 non-blocking connect in progress",
			rec: connRec{cookie: 10, family: afInet6, proto: ipprotoTCP, flags: uint8(all), result: -115, fd: 7,
				sport: 1, dport: 443, saddr: a16("fe80::1"), daddr: a16("2001:db8::5"), pathLen: -1}.bytes(),
			want: event.Net{Protocol: "tcp", SAddr: netip.MustParseAddr("fe80::1"), SPort: 1,
				DAddr: netip.MustParseAddr("2001:db8::5"), DPort: 443, Cookie: 10, Result: -115, Fd: 7},
			kind: event.KindConnect,
		},
		{
			name: "udp6 to a v4-mapped address is unmapped",
			rec: connRec{cookie: 11, family: afInet6, proto: ipprotoUDP, flags: uint8(all), fd: 3,
				sport: 5353, dport: 53, saddr: a16("::ffff:10.0.0.1"), daddr: a16("::ffff:10.0.0.53"), pathLen: -1}.bytes(),
			want: event.Net{Protocol: "udp", SAddr: netip.MustParseAddr("10.0.0.1"), SPort: 5353,
				DAddr: netip.MustParseAddr("10.0.0.53"), DPort: 53, Cookie: 11, Fd: 3},
			kind: event.KindConnect,
		},
		{
			name: "io_uring connect: no fd, no result, no source",
			rec: connRec{cookie: 12, family: afInet, proto: ipprotoTCP, flags: connFDst, result: 99, fd: 99,
				sport: 9, dport: 22, saddr: a16("1.1.1.1"), daddr: a16("192.0.2.1"), pathLen: -1, via: 1}.bytes(),
			want: event.Net{Protocol: "tcp", DAddr: netip.MustParseAddr("192.0.2.1"), DPort: 22, Cookie: 12, Fd: -1,
				Via: event.ViaIOUring},
			kind: event.KindConnect,
		},
		{
			name: "ping socket connect",
			rec: connRec{cookie: 21, family: afInet, proto: ipprotoICMP, sotype: sockDgram, flags: uint8(all), fd: 3,
				daddr: a16("192.0.2.7"), pathLen: -1}.bytes(),
			want: event.Net{Protocol: "icmp", SAddr: netip.MustParseAddr("0.0.0.0"), DAddr: netip.MustParseAddr("192.0.2.7"),
				Cookie: 21, Fd: 3},
			kind: event.KindConnect,
		},
		{
			name: "accept: local end and remote peer",
			rec: func() []byte {
				b := connRec{cookie: 17, family: afInet, proto: ipprotoTCP, flags: uint8(all), fd: 9, sport: 8080, dport: 51000,
					saddr: a16("10.0.0.5"), daddr: a16("203.0.113.9"), pathLen: -1, via: 1}.bytes()
				binary.LittleEndian.PutUint16(b[hdrType:], recAccept)
				return b
			}(),
			want: event.Net{Protocol: "tcp", SAddr: netip.MustParseAddr("10.0.0.5"), SPort: 8080,
				DAddr: netip.MustParseAddr("203.0.113.9"), DPort: 51000, Cookie: 17, Fd: 9, Origin: event.OriginAccept,
				Via: event.ViaIOUring},
			kind: event.KindAccept,
		},
		{
			name: "unix pathname",
			rec: connRec{cookie: 13, family: afUnix, proto: 1, flags: connFResult | connFFd | connFDst, result: -2, fd: 4,
				path: []byte("/run/containerd/containerd.sock\x00"), pathLen: -1}.bytes(),
			want: event.Net{Protocol: "unix", UnixPath: "/run/containerd/containerd.sock", Cookie: 13, Result: -2, Fd: 4},
			kind: event.KindConnect,
		},
		{
			name: "unix through a link: the server's name and file",
			rec: connRec{cookie: 16, family: afUnix, proto: 1, flags: connFResult | connFFd | connFDst, fd: 5,
				path: []byte("/tmp/api\x00"), pathLen: -1, peerPath: []byte("/run/docker.sock\x00"),
				peerIno: 4242, peerDev: 8<<20 | 1}.bytes(),
			want: event.Net{Protocol: "unix", UnixPath: "/tmp/api", PeerPath: "/run/docker.sock", PeerDev: 0x801,
				PeerIno: 4242, Cookie: 16, Fd: 5},
			kind: event.KindConnect,
		},
		{
			name: "unix abstract",
			rec: connRec{cookie: 14, family: afUnix, proto: 1, flags: connFResult | connFFd | connFUPath, fd: 4,
				path: []byte("\x00docker\x00x"), pathLen: -1}.bytes(),
			want: event.Net{Protocol: "unix", UnixPath: "@docker@x", Cookie: 14, Fd: 4},
			kind: event.KindConnect,
		},
		{
			name: "unix full-length path without NUL",
			rec:  connRec{family: afUnix, flags: connFDst, path: []byte(strings.Repeat("p", unixPathMax)), pathLen: -1}.bytes(),
			want: event.Net{Protocol: "unix", UnixPath: strings.Repeat("p", unixPathMax), Fd: -1},
			kind: event.KindConnect,
		},
		{
			name: "socket stats, closed",
			rec: statsRec(15, 3<<20, afInet, ipprotoTCP, connFSrc|connFClosed, 40001, 9000,
				a16("127.0.0.1"), a16("127.0.0.1"), 0),
			want: event.Net{Protocol: "tcp", SAddr: netip.MustParseAddr("127.0.0.1"), SPort: 40001,
				DAddr: netip.MustParseAddr("127.0.0.1"), DPort: 9000, Cookie: 15, BytesSent: 3 << 20, Closed: true, Fd: -1},
			kind: event.KindEgress,
		},
		{
			name: "socket stats, open, source unknown",
			rec:  statsRec(16, 10, afInet6, ipprotoUDP, 0, 7, 53, a16("::1"), a16("::2"), 0),
			want: event.Net{Protocol: "udp", DAddr: netip.MustParseAddr("::2"), DPort: 53, Cookie: 16, BytesSent: 10, Fd: -1},
			kind: event.KindEgress,
		},
		{
			name: "socket stats of an accepted socket",
			rec: func() []byte {
				b := statsRec(18, 8<<20, afInet, ipprotoTCP, connFSrc|connFDst, 8080, 51000, a16("10.0.0.5"), a16("203.0.113.9"), 0)
				b[egOrigin] = 2
				return b
			}(),
			want: event.Net{Protocol: "tcp", SAddr: netip.MustParseAddr("10.0.0.5"), SPort: 8080,
				DAddr: netip.MustParseAddr("203.0.113.9"), DPort: 51000, Cookie: 18, BytesSent: 8 << 20, Fd: -1,
				Origin: event.OriginAccept},
			kind: event.KindEgress,
		},
		{
			name: "raw socket datagram, destination unknown",
			rec: func() []byte {
				b := statsRec(19, 1400, afInet, 255, connFSrc|egFDgram|egFNoDst, 0, 7, a16("10.0.0.5"), a16("198.51.100.1"), 0)
				b[egSotype], b[egOrigin] = sockRaw, 3
				return b
			}(),
			want: event.Net{Protocol: "raw", IPProto: 255, SAddr: netip.MustParseAddr("10.0.0.5"), Cookie: 19,
				BytesSent: 1400, Fd: -1, Origin: event.OriginDatagram},
			kind: event.KindEgress,
		},
		{
			name: "packet socket frames",
			rec: func() []byte {
				b := statsRec(22, 6000, afPacket, 0, egFDgram|egFNoDst, 0, 0, a16("::"), a16("::"), 0)
				b[egSotype], b[egOrigin] = sockRaw, 3
				return b
			}(),
			want: event.Net{Protocol: "packet", Cookie: 22, BytesSent: 6000, Fd: -1, Origin: event.OriginDatagram},
			kind: event.KindEgress,
		},
		{
			name: "icmpv6 ping datagram",
			rec: func() []byte {
				b := statsRec(20, 64, afInet6, ipprotoICMPv6, egFDgram|connFDst, 0, 0, a16("::"), a16("2001:db8::9"), 0)
				b[egOrigin] = 3
				return b
			}(),
			want: event.Net{Protocol: "icmpv6", DAddr: netip.MustParseAddr("2001:db8::9"), Cookie: 20, BytesSent: 64, Fd: -1,
				Origin: event.OriginDatagram},
			kind: event.KindEgress,
		},
	}
	d := decoder{bootEpoch: time.Unix(1000, 0)}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := d.decode(tt.rec)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if e.Kind != tt.kind {
				t.Errorf("kind = %v; want %v", e.Kind, tt.kind)
			}
			if *e.Net != tt.want {
				t.Errorf("net = %+v\nwant  %+v", *e.Net, tt.want)
			}
			if e.Process == nil || e.Process.Comm != "curl" || e.Process.CgroupID != 77 {
				t.Errorf("process = %+v", e.Process)
			}
			if want := time.Unix(1005, 0); !e.Time.Equal(want) {
				t.Errorf("time = %v; want %v", e.Time, want)
			}
		})
	}
}

func TestDecodeNetMalformed(t *testing.T) {
	tests := []struct {
		name string
		rec  []byte
		want string
	}{
		{"connect short", connRec{family: afInet, proto: ipprotoTCP, size: connRecSize - 4, pathLen: -1}.bytes(), "connect record is 348 bytes"},
		{"connect long", connRec{family: afInet, proto: ipprotoTCP, size: connRecSize + 8, pathLen: -1}.bytes(), "connect record is 360 bytes"},
		{"connect family", connRec{family: 17, proto: ipprotoTCP, pathLen: -1}.bytes(), "connect address family 17"},
		{"connect socket type", connRec{family: afInet, proto: ipprotoTCP, sotype: 10, pathLen: -1}.bytes(), "inet socket type 10"},
		{"connect via", connRec{family: afInet, proto: ipprotoTCP, via: 6, pathLen: -1}.bytes(), "connect via 6"},
		{"unix path length", connRec{family: afUnix, pathLen: 200}.bytes(), "unix path length 200 exceeds 108"},
		{"unix peer path length", connRec{family: afUnix, pathLen: -1, peerPath: make([]byte, 120)}.bytes(), "unix peer path length 120 exceeds 108"},
		{"unix accept", func() []byte {
			b := connRec{family: afUnix, pathLen: -1}.bytes()
			binary.LittleEndian.PutUint16(b[hdrType:], recAccept)
			return b
		}(), "accept of a unix socket"},
		{"stats short", statsRec(1, 1, afInet, ipprotoTCP, 0, 1, 1, a16("::"), a16("::"), egressValSize-1), "socket stats record is 127 bytes"},
		{"stats family", statsRec(1, 1, afUnix, ipprotoTCP, 0, 1, 1, a16("::"), a16("::"), 0), "socket stats address family 1"},
		{"stats socket type", func() []byte {
			b := statsRec(1, 1, afInet, ipprotoTCP, 0, 1, 1, a16("::"), a16("::"), 0)
			b[egSotype] = 0
			return b
		}(), "inet socket type 0"},
		{"stats origin", func() []byte {
			b := statsRec(1, 1, afInet, ipprotoTCP, 0, 1, 1, a16("::"), a16("::"), 0)
			b[egOrigin] = 4
			return b
		}(), "socket stats origin 4"},
		{"unknown net type", func() []byte {
			b := connRec{family: afInet, proto: ipprotoTCP, pathLen: -1}.bytes()
			binary.LittleEndian.PutUint16(b[hdrType:], 19)
			return b
		}(), "unknown network record type 19"},
	}
	var d decoder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := d.decode(tt.rec)
			if err == nil {
				t.Fatalf("decode succeeded: %+v", e.Net)
			}
			if !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v; want errMalformed mentioning %q", err, tt.want)
			}
		})
	}
}

// TestNetRecordLayout checks the offsets decode_net.go uses against the BTF
// of the committed object, so that a change to bpf/net.bpf.h cannot skew
// decoding silently.
func TestNetRecordLayout(t *testing.T) {
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(_SensorBytes))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		st     string
		size   int
		fields map[string]int
	}{
		{"conn_rec", connRecSize, map[string]int{
			"hdr": 0, "cookie": connCookie, "family": connFamily, "proto": connProto, "flags": connFlags,
			"path_len": connPathLen, "result": connResult, "fd": connFd, "sport": connSport, "dport": connDport,
			"saddr": connSaddr, "daddr": connDaddr, "path": connPath, "via": connVia, "sotype": connSotype,
			"peer_ino": connPeerIno, "peer_dev": connPeerDev, "peer_path_len": connPeerPathLen, "peer_path": connPeerPath,
		}},
		{"egress_val", egressValSize, map[string]int{
			"hdr": 0, "cookie": egCookie, "bytes_sent": egBytes, "sends": egSends, "family": egFamily,
			"proto": egProto, "flags": egFlags, "sotype": egSotype, "sport": egSport, "dport": egDport,
			"saddr": egSaddr, "daddr": egDaddr, "origin": egOrigin,
		}},
		{"sock_closed_rec", sockClosedSize, map[string]int{"hdr": 0, "cookie": sockClosedCookie}},
		{"dgram_key", dgramKeySize, map[string]int{"cookie": 0}},
	}
	for _, tt := range tests {
		var s *btf.Struct
		if err := spec.TypeByName(tt.st, &s); err != nil {
			t.Fatalf("struct %s: %v", tt.st, err)
		}
		if int(s.Size) != tt.size {
			t.Errorf("sizeof(%s) = %d; decoder uses %d", tt.st, s.Size, tt.size)
		}
		got := map[string]int{}
		for _, m := range s.Members {
			got[m.Name] = int(m.Offset.Bytes())
		}
		for f, want := range tt.fields {
			if off, ok := got[f]; !ok || off != want {
				t.Errorf("%s.%s at %d (present %v); decoder uses %d", tt.st, f, off, ok, want)
			}
		}
		if tt.st == "conn_rec" {
			var arr *btf.Array
			for _, m := range s.Members {
				if m.Name == "path" {
					arr, _ = m.Type.(*btf.Array)
				}
			}
			if arr == nil || int(arr.Nelems) != unixPathMax {
				t.Errorf("conn_rec.path is not char[%d]", unixPathMax)
			}
		}
	}
}

// ---- real programs, as root ----

// netHelperEnv selects a network action in a child process; the sensor
// ignores its own process, so all traffic comes from children.
const netHelperEnv = "KESTREL_NET_HELPER"

func init() {
	if a := os.Getenv(netHelperEnv); a != "" {
		if err := netHelper(a, os.Getenv("KESTREL_NET_ARGS")); err != nil {
			fmt.Fprintln(os.Stderr, "net helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// netHelper performs one network action and prints "local=<addr>" lines.
func netHelper(action, args string) error {
	f := strings.Fields(args)
	switch action {
	case "tcp": // tcp <network> <addr> <bytes> <hold>: connect, send, hold, close
		n, _ := strconv.Atoi(f[2])
		hold, _ := time.ParseDuration(f[3])
		c, err := net.Dial(f[0], f[1])
		if err != nil {
			return err
		}
		fmt.Println("local=" + c.LocalAddr().String())
		buf := make([]byte, 64<<10)
		for sent := 0; sent < n; {
			k, err := c.Write(buf[:min(len(buf), n-sent)])
			if err != nil {
				return err
			}
			sent += k
		}
		time.Sleep(hold)
		return c.Close()
	case "sendfile": // sendfile <addr> <file>: connect, sendfile(2) the file, close
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
		// *net.TCPConn.ReadFrom(*os.File) uses sendfile(2) on Linux.
		if _, err := c.(*net.TCPConn).ReadFrom(src); err != nil {
			return err
		}
		return c.Close()
	case "dialtimeout": // dialtimeout <addr> <timeout>: a connect the caller gives up on
		d, _ := time.ParseDuration(f[1])
		c, err := net.DialTimeout("tcp4", f[0], d)
		if err == nil {
			return c.Close()
		}
		fmt.Println("error=" + err.Error())
		return nil
	case "mapped": // mapped <port> <bytes>: an IPv6 socket connecting to ::ffff:127.0.0.1
		port, _ := strconv.Atoi(f[0])
		n, _ := strconv.Atoi(f[1])
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		dst := &unix.SockaddrInet6{Port: port, Addr: netip.MustParseAddr("::ffff:127.0.0.1").As16()}
		if err := unix.Connect(fd, dst); err != nil {
			return err
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			return err
		}
		fmt.Printf("local=[%s]:%d\n", netip.AddrFrom16(sa.(*unix.SockaddrInet6).Addr), sa.(*unix.SockaddrInet6).Port)
		_, err = unix.Write(fd, make([]byte, n))
		return err
	case "udp": // udp <addr> <bytes>
		n, _ := strconv.Atoi(f[1])
		c, err := net.Dial("udp4", f[0])
		if err != nil {
			return err
		}
		fmt.Println("local=" + c.LocalAddr().String())
		if _, err := c.Write(make([]byte, n)); err != nil {
			return err
		}
		return c.Close()
	case "unix": // unix <path>
		c, err := net.Dial("unix", f[0])
		if err != nil {
			return err
		}
		return c.Close()
	case "accept": // accept <server bytes> <client bytes> [listen addr]: both ends in this process
		sb, _ := strconv.Atoi(f[0])
		cb, _ := strconv.Atoi(f[1])
		laddr := "127.0.0.1:0"
		if len(f) > 2 {
			laddr = f[2]
		}
		ln, err := net.Listen("tcp4", laddr)
		if err != nil {
			return err
		}
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			return err
		}
		s, err := ln.Accept()
		if err != nil {
			return err
		}
		fmt.Println("listen=" + ln.Addr().String())
		fmt.Println("local=" + c.LocalAddr().String())
		done := make(chan error, 1)
		go func() { _, err := io.CopyN(io.Discard, c, int64(sb)); done <- err }()
		if _, err := s.Write(make([]byte, sb)); err != nil {
			return err
		}
		if err := <-done; err != nil {
			return err
		}
		if _, err := c.Write(make([]byte, cb)); err != nil {
			return err
		}
		if _, err := io.CopyN(io.Discard, s, int64(cb)); err != nil {
			return err
		}
		s.Close()
		c.Close()
		return ln.Close()
	default:
		return netHelperMore(action, f)
	}
}

// runNetHelper runs action in a child and returns its pid and the addresses
// it printed (key=addr).
func runNetHelper(t *testing.T, action string, args ...string) (uint32, map[string]string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), netHelperEnv+"="+action, "KESTREL_NET_ARGS="+strings.Join(args, " "))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("net helper %s %v: %v: %s", action, args, err, out)
	}
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			kv[k] = v
		}
	}
	return uint32(cmd.Process.Pid), kv
}

func netConfig() config.CaptureConfig {
	cfg := testConfig()
	cfg.EgressReportInterval = config.Duration(100 * time.Millisecond)
	return cfg
}

func connectBy(pid uint32) func(*event.Event) bool {
	return func(e *event.Event) bool { return e.Kind == event.KindConnect && e.Process.PID == pid }
}

func addrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// TestTCPConnectAndEgress: a TCP connect to a loopback listener is reported
// with its 4-tuple and pid, and the bytes sent on it are reported while it is
// open (periodically) and exactly once more at close.
func TestTCPConnectAndEgress(t *testing.T) {
	for _, tt := range []struct{ name, network, listen string }{
		{"ipv4", "tcp4", "127.0.0.1:0"},
		{"ipv6", "tcp6", "[::1]:0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, c := startSensor(t, netConfig())
			ln, err := net.Listen(tt.network, tt.listen)
			if err != nil {
				t.Skipf("no %s loopback: %v", tt.network, err)
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
			const sent = 3 << 20
			dst := addrPort(t, ln.Addr().String())
			pid, kv := runNetHelper(t, "tcp", tt.network, ln.Addr().String(), strconv.Itoa(sent), "400ms")
			src := addrPort(t, kv["local"])

			e := c.wait(t, "connect", connectBy(pid))
			n := e.Net
			if n.Protocol != "tcp" || n.DAddr != dst.Addr() || n.DPort != dst.Port() {
				t.Errorf("destination %s %v:%d; want tcp %v", n.Protocol, n.DAddr, n.DPort, dst)
			}
			if n.SAddr != src.Addr() || n.SPort != src.Port() {
				t.Errorf("source %v:%d; want %v", n.SAddr, n.SPort, src)
			}
			if n.Result != 0 || n.Fd < 3 || n.Cookie == 0 {
				t.Errorf("result %d fd %d cookie %d; want 0, an fd, a cookie", n.Result, n.Fd, n.Cookie)
			}
			if e.Process.Comm == "" || e.Process.TID == 0 {
				t.Errorf("process = %+v", e.Process)
			}

			fin := c.wait(t, "final egress", func(x *event.Event) bool {
				return x.Kind == event.KindEgress && x.Net.Cookie == n.Cookie && x.Net.Closed
			})
			if got := fin.Net.BytesSent; got < sent*9/10 || got > sent*11/10 {
				t.Errorf("bytes sent at close = %d; want %d ±10%%", got, sent)
			}
			if fin.Process.PID != pid || fin.Net.SPort != src.Port() || fin.Net.DPort != dst.Port() {
				t.Errorf("final egress: pid %d %v:%d -> %v:%d", fin.Process.PID, fin.Net.SAddr, fin.Net.SPort, fin.Net.DAddr, fin.Net.DPort)
			}
			// The helper held the socket open for 400ms after sending: the
			// periodic report (every 100ms) saw the bytes before the close.
			per := c.find(func(x *event.Event) bool {
				return x.Kind == event.KindEgress && x.Net.Cookie == n.Cookie && !x.Net.Closed
			})
			if per == nil {
				t.Errorf("no periodic egress report while the socket was open")
			} else if per.Net.BytesSent == 0 || per.Net.BytesSent > fin.Net.BytesSent || per.Process.PID != pid {
				t.Errorf("periodic report: %d bytes by %d; final %d", per.Net.BytesSent, per.Process.PID, fin.Net.BytesSent)
			}
			// One final report per socket, nothing after it.
			time.Sleep(300 * time.Millisecond)
			c.mu.Lock()
			finals, after := 0, 0
			for _, x := range c.evs {
				if x.Kind == event.KindEgress && x.Net.Cookie == n.Cookie {
					if x.Net.Closed {
						finals++
					} else if finals > 0 {
						after++
					}
				}
			}
			c.mu.Unlock()
			if finals != 1 || after != 0 {
				t.Errorf("%d final reports and %d reports after close; want 1 and 0", finals, after)
			}
		})
	}
}

// TestTCPConnectV4MappedIPv6: an IPv6 socket connecting to an IPv4-mapped
// address reports plain IPv4 addresses, so that classification sees one form.
func TestTCPConnectV4MappedIPv6(t *testing.T) {
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
	dst := addrPort(t, ln.Addr().String())
	pid, kv := runNetHelper(t, "mapped", strconv.Itoa(int(dst.Port())), "4096")
	src := addrPort(t, kv["local"])
	e := c.wait(t, "connect", connectBy(pid))
	n := e.Net
	if n.DAddr != dst.Addr() || n.DPort != dst.Port() || n.SAddr != src.Addr() || n.SPort != src.Port() || n.Result != 0 {
		t.Errorf("connect %v:%d -> %v:%d result %d; want %v -> %v, 0", n.SAddr, n.SPort, n.DAddr, n.DPort, n.Result, src, dst)
	}
	if !n.DAddr.Is4() || !n.SAddr.Is4() {
		t.Errorf("addresses %v %v are not plain IPv4", n.SAddr, n.DAddr)
	}
	fin := c.wait(t, "final egress", func(x *event.Event) bool {
		return x.Kind == event.KindEgress && x.Net.Cookie == n.Cookie && x.Net.Closed
	})
	if fin.Net.BytesSent != 4096 || fin.Net.DAddr != dst.Addr() {
		t.Errorf("final egress %d bytes to %v", fin.Net.BytesSent, fin.Net.DAddr)
	}
}

// TestConnectInContainer: a process in its own network namespace and cgroup
// (a container as tests build them here) is seen: the cgroup programs
// attached at the v2 root cover child cgroups, and the event carries the
// child cgroup's id.
func TestConnectInContainer(t *testing.T) {
	requireKernel(t)
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	root, err := cgroupV2Root("/proc/self/mountinfo")
	if err != nil {
		t.Skipf("no cgroup v2 hierarchy: %v", err)
	}
	cg := filepath.Join(root, fmt.Sprintf("kestrel-net-test-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(cg)
	var st unix.Stat_t
	if err := unix.Stat(cg, &st); err != nil {
		t.Fatal(err)
	}
	_, c := startSensor(t, netConfig())
	self, _ := os.Executable()
	cmd := exec.Command("unshare", "--net", "--", "/bin/sh", "-c",
		`ip link set lo up && echo $$ > "$1/cgroup.procs" && exec "$2" -test.run='^$'`, "sh", cg, self)
	cmd.Env = append(os.Environ(), netHelperEnv+"=accept", "KESTREL_NET_ARGS=100 7000")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("containerised helper: %v: %s", err, out)
	}
	pid := uint32(cmd.Process.Pid)
	e := c.wait(t, "connect", connectBy(pid))
	if e.Process.CgroupID != st.Ino {
		t.Errorf("cgroup id %d; want %d (%s)", e.Process.CgroupID, st.Ino, cg)
	}
	if e.Net.Protocol != "tcp" || e.Net.DAddr != netip.MustParseAddr("127.0.0.1") || e.Net.Result != 0 {
		t.Errorf("connect %+v", e.Net)
	}
	fin := c.wait(t, "final egress", func(x *event.Event) bool {
		return x.Kind == event.KindEgress && x.Process.PID == pid && x.Net.Closed && x.Net.Origin == event.OriginConnect
	})
	if fin.Net.BytesSent != 7000 || fin.Process.CgroupID != st.Ino {
		t.Errorf("final egress %d bytes, cgroup %d; want 7000, %d", fin.Net.BytesSent, fin.Process.CgroupID, st.Ino)
	}
}

// TestTCPConnectHandshakeAfterReturn: when the handshake is still running as
// a non-blocking connect() returns, the connect is reported once it ends,
// with its real outcome. A listener whose accept queue is full drops SYNs,
// which holds the handshake until the client retransmits.
func TestTCPConnectHandshakeAfterReturn(t *testing.T) {
	_, c := startSensor(t, netConfig())
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil { // room for one queued connection
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	start := func(action string, args ...string) *exec.Cmd {
		self, _ := os.Executable()
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), netHelperEnv+"="+action, "KESTREL_NET_ARGS="+strings.Join(args, " "))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	// A fills the accept queue.
	a := start("tcp", "tcp4", addr, "0", "3s")
	defer a.Wait()
	if e := c.wait(t, "first connect", connectBy(uint32(a.Process.Pid))); e.Net.Result != 0 {
		t.Fatalf("first connect result %d", e.Net.Result)
	}

	t.Run("caller gives up", func(t *testing.T) {
		g := start("dialtimeout", addr, "300ms")
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		e := c.wait(t, "abandoned connect", connectBy(uint32(g.Process.Pid)))
		if e.Net.Result != -int32(unix.ECONNABORTED) || e.Net.SPort == 0 {
			t.Errorf("result %d sport %d; want -ECONNABORTED and the bound port", e.Net.Result, e.Net.SPort)
		}
	})
	t.Run("completes after retransmit", func(t *testing.T) {
		b := start("tcp", "tcp4", addr, "100", "0s")
		time.Sleep(300 * time.Millisecond)
		if c.find(connectBy(uint32(b.Process.Pid))) != nil {
			t.Fatal("connect reported while its handshake was still running")
		}
		freed := time.Now()
		nfd, _, err := unix.Accept(fd) // frees the queue; B's SYN retransmit gets in
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(nfd)
		if err := b.Wait(); err != nil {
			t.Fatal(err)
		}
		e := c.wait(t, "late connect", connectBy(uint32(b.Process.Pid)))
		if e.Net.Result != 0 || e.Net.SPort == 0 || e.Net.Fd < 3 {
			t.Errorf("result %d sport %d fd %d; want 0, the port, the fd", e.Net.Result, e.Net.SPort, e.Net.Fd)
		}
		if !e.Time.Before(freed) {
			t.Errorf("event time %v is not the connect() time (before %v)", e.Time, freed)
		}
	})
}

// TestTCPConnectRefused: a non-blocking connect returns -EINPROGRESS; the
// event carries the handshake's real outcome.
func TestTCPConnectRefused(t *testing.T) {
	_, c := startSensor(t, netConfig())
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	self, _ := os.Executable()
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), netHelperEnv+"=tcp", "KESTREL_NET_ARGS=tcp4 "+addr+" 0 0s")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "refused") {
		t.Fatalf("connect to a closed port: %v %s; want connection refused", err, out)
	}
	e := c.wait(t, "connect", connectBy(uint32(cmd.Process.Pid)))
	if e.Net.Result != -111 || e.Net.DPort != addrPort(t, addr).Port() || e.Net.Protocol != "tcp" {
		t.Errorf("connect %s :%d result %d; want tcp :%s -111 (ECONNREFUSED)", e.Net.Protocol, e.Net.DPort, e.Net.Result, addr)
	}
}

func TestUDPConnect(t *testing.T) {
	_, c := startSensor(t, netConfig())
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	dst := addrPort(t, pc.LocalAddr().String())
	pid, kv := runNetHelper(t, "udp", pc.LocalAddr().String(), "1200")
	src := addrPort(t, kv["local"])
	e := c.wait(t, "connect", connectBy(pid))
	n := e.Net
	if n.Protocol != "udp" || n.DAddr != dst.Addr() || n.DPort != dst.Port() || n.Result != 0 {
		t.Errorf("connect %s %v:%d result %d; want udp %v, 0", n.Protocol, n.DAddr, n.DPort, n.Result, dst)
	}
	if n.SAddr != src.Addr() || n.SPort != src.Port() {
		t.Errorf("source %v:%d; want %v", n.SAddr, n.SPort, src)
	}
	fin := c.wait(t, "final egress", func(x *event.Event) bool {
		return x.Kind == event.KindEgress && x.Net.Cookie == n.Cookie && x.Net.Closed
	})
	if fin.Net.BytesSent != 1200 || fin.Net.Protocol != "udp" {
		t.Errorf("final egress %s %d bytes; want udp 1200", fin.Net.Protocol, fin.Net.BytesSent)
	}
}

func TestUnixConnect(t *testing.T) {
	_, c := startSensor(t, netConfig())
	dir := t.TempDir()
	path := filepath.Join(dir, "docker.sock")
	abstract := fmt.Sprintf("@kestrel-test-%d", os.Getpid())
	for _, name := range []string{path, abstract} {
		ln, err := net.Listen("unix", name)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
	}
	// Other names for the same socket: the peer fields still name the
	// server's file and bound address.
	symlink, hardlink := filepath.Join(dir, "api"), filepath.Join(dir, "hl")
	if err := os.Symlink(path, symlink); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, hardlink); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, addr string
		fails      bool
		peer       string // bound address of the server's end
		peerFile   bool   // the peer is the socket file at path
	}{
		{"pathname", path, false, path, true},
		{"symlink", symlink, false, path, true},
		{"hard link", hardlink, false, path, true},
		{"abstract", abstract, false, abstract, false},
		{"missing", filepath.Join(dir, "containerd.sock"), true, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			self, _ := os.Executable()
			cmd := exec.Command(self, "-test.run=^$")
			cmd.Env = append(os.Environ(), netHelperEnv+"=unix", "KESTREL_NET_ARGS="+tt.addr)
			err := cmd.Run()
			if (err != nil) != tt.fails {
				t.Fatalf("helper: %v; want failure %v", err, tt.fails)
			}
			pid := uint32(cmd.Process.Pid)
			e := c.wait(t, "unix connect", connectBy(pid))
			n := e.Net
			if n.Protocol != "unix" || n.UnixPath != tt.addr || n.Fd < 3 {
				t.Errorf("connect %s %q fd %d; want unix %q", n.Protocol, n.UnixPath, n.Fd, tt.addr)
			}
			if tt.fails && n.Result != -2 || !tt.fails && n.Result != 0 {
				t.Errorf("result = %d (child error %v)", n.Result, err)
			}
			if n.PeerPath != tt.peer {
				t.Errorf("peer path %q; want %q", n.PeerPath, tt.peer)
			}
			if tt.peerFile && (n.PeerDev != st.Dev || n.PeerIno != st.Ino) || !tt.peerFile && n.PeerIno != 0 {
				t.Errorf("peer file %#x:%d; want %#x:%d (%v)", n.PeerDev, n.PeerIno, st.Dev, st.Ino, tt.peerFile)
			}
		})
	}
}

// TestUnixConnectFallback: on kernels without cgroup/connect_unix (< 6.7) the
// loader leaves that optional program out, and the sun_path read by
// exit_connect from user memory is reported instead.
func TestUnixConnectFallback(t *testing.T) {
	requireKernel(t)
	spec, err := loadSensor()
	if err != nil {
		t.Fatal(err)
	}
	if err := configureSpec(spec, netConfig()); err != nil {
		t.Fatal(err)
	}
	if _, ok := spec.Programs["net_connect_unix_optional"]; !ok {
		t.Fatal("no net_connect_unix_optional program in the object")
	}
	// The dispatcher and connect's handlers only.
	keep := []string{"kestrel_sys_enter", "kestrel_sys_exit", "exit_connect"}
	for name := range spec.Programs {
		if !slices.Contains(keep, name) {
			delete(spec.Programs, name)
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer coll.Close()
	var connect []sysHandler
	for _, h := range sysHandlers {
		if h.name == "connect" {
			connect = append(connect, h)
		}
	}
	if _, err := fillSyscallCalls(coll, connect); err != nil {
		t.Fatal(err)
	}
	for name, prog := range coll.Programs {
		if isSyscallHandler(name) {
			continue
		}
		l, err := attachOne(prog, spec.Programs[name], "")
		if err != nil {
			t.Fatalf("attach %s: %v", name, err)
		}
		defer l.Close()
	}
	rd, err := ringbuf.NewReader(coll.Maps["events"])
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	path := filepath.Join(t.TempDir(), "containerd.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pid, _ := runNetHelper(t, "unix", path)

	d := decoder{}
	rd.SetDeadline(time.Now().Add(5 * time.Second))
	for {
		rec, err := rd.Read()
		if err != nil {
			t.Fatalf("no connect record from pid %d: %v", pid, err)
		}
		e, err := d.decode(rec.RawSample)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if e.Kind != event.KindConnect || e.Process.PID != pid {
			continue
		}
		if e.Net.Protocol != "unix" || e.Net.UnixPath != path || e.Net.Result != 0 || e.Net.Fd < 3 {
			t.Errorf("connect %s %q result %d fd %d; want unix %q 0", e.Net.Protocol, e.Net.UnixPath, e.Net.Result, e.Net.Fd, path)
		}
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		if e.Net.PeerPath != path || e.Net.PeerDev != st.Dev || e.Net.PeerIno != st.Ino {
			t.Errorf("peer %q %#x:%d; want %q %#x:%d", e.Net.PeerPath, e.Net.PeerDev, e.Net.PeerIno, path, st.Dev, st.Ino)
		}
		if b := rec.RawSample; b[connFlags]&connFUPath == 0 || b[connFlags]&connFDst != 0 {
			t.Errorf("flags %#x; want the user-memory path (CONN_F_UPATH) and no cgroup hook", b[connFlags])
		}
		return
	}
}

// TestEgressReporter drives the periodic report over maps shaped like the
// kernel's: only sockets whose count grew are reported, state is pruned when
// a socket leaves the map, and sockets the LRU map lost are reported as Lost.
func TestEgressReporter(t *testing.T) {
	requireKernel(t)
	socks, dgram, stats := egressTestMaps(t, 1024, 64)
	setStat := func(i int, v uint64) {
		per := make([]uint64, ebpf.MustPossibleCPU())
		per[0] = v
		if err := stats.Put(uint32(i), per); err != nil {
			t.Fatal(err)
		}
	}
	put := func(cookie, bytes uint64) {
		v := statsRec(cookie, bytes, afInet, ipprotoTCP, connFSrc, 40000+uint16(cookie), 443, a16("10.0.0.1"), a16("192.0.2.9"), 0)
		if err := socks.Put(cookie, v); err != nil {
			t.Fatal(err)
		}
	}
	s := &Sensor{}
	r := &s.egress
	d := decoder{bootEpoch: time.Unix(0, 0)}
	var got []*event.Event
	emit := func(e *event.Event) { got = append(got, e) }
	step := func(want map[uint64]uint64, lost map[string]uint64) {
		t.Helper()
		got = got[:0]
		now := time.Unix(2000, 0)
		if err := r.report(&d, socks, dgram, stats, now, emit); err != nil {
			t.Fatalf("report: %v", err)
		}
		gotB, gotL := map[uint64]uint64{}, map[string]uint64{}
		for _, e := range got {
			switch e.Kind {
			case event.KindEgress:
				if e.Net.Closed || !e.Time.Equal(now) || e.Process.PID != 42 {
					t.Errorf("periodic report %+v at %v by %d", e.Net, e.Time, e.Process.PID)
				}
				gotB[e.Net.Cookie] = e.Net.BytesSent
			case event.KindLost:
				gotL[e.Lost.Source] += e.Lost.Count
			default:
				t.Errorf("unexpected %v event", e.Kind)
			}
		}
		if fmt.Sprint(gotB) != fmt.Sprint(want) || fmt.Sprint(gotL) != fmt.Sprint(lost) {
			t.Errorf("reported %v lost %v; want %v lost %v", gotB, gotL, want, lost)
		}
	}
	put(1, 100)
	put(2, 0)
	setStat(netSockTracked, 2)
	step(map[uint64]uint64{1: 100}, map[string]uint64{})
	step(map[uint64]uint64{}, map[string]uint64{}) // nothing grew
	put(1, 150)
	put(2, 7)
	step(map[uint64]uint64{1: 150, 2: 7}, map[string]uint64{})
	// Socket 1 released by the kernel; socket 3 appears; two sockets were
	// tracked and pushed out of the LRU map before anyone saw them.
	if err := socks.Delete(uint64(1)); err != nil {
		t.Fatal(err)
	}
	put(3, 9)
	setStat(netSockTracked, 5)
	setStat(netSockReleased, 1)
	setStat(netSockInsertFail, 1)
	setStat(netPendingFull, 1) // a degradation (no fd, no result), not a loss
	step(map[uint64]uint64{3: 9}, map[string]uint64{lostEgressEvicted: 2, lostEgressUntraced: 1})
	if _, ok := r.last[1]; ok || len(r.last) != 2 {
		t.Errorf("reporter state %v; want socket 1 pruned", r.last)
	}
	step(map[uint64]uint64{}, map[string]uint64{}) // losses are reported once
	// More sockets than one batch lookup returns.
	many := map[uint64]uint64{}
	for i := uint64(100); i < 100+3*egressBatch; i++ {
		put(i, i)
		many[i] = i
	}
	setStat(netSockTracked, 5+3*egressBatch)
	step(many, map[string]uint64{})
	m := map[string]uint64{}
	s.egress.counters(m)
	if m["egress_sockets_evicted"] != 2 || m["egress_sockets_live"] != 2+3*egressBatch || m["egress_sockets_tracked"] != 5+3*egressBatch {
		t.Errorf("counters %v", m)
	}
}

func BenchmarkDecodeNet(b *testing.B) {
	recs := map[string][]byte{
		"connect": connRec{cookie: 9, family: afInet, proto: ipprotoTCP, flags: connFResult | connFFd | connFSrc | connFDst,
			fd: 5, sport: 40000, dport: 8080, saddr: a16("127.0.0.1"), daddr: a16("10.1.2.3"), pathLen: -1}.bytes(),
		"connect_unix": connRec{family: afUnix, proto: 1, flags: connFResult | connFFd | connFDst, fd: 4,
			path: []byte("/run/containerd/containerd.sock\x00"), pathLen: -1}.bytes(),
		"sock_stats": statsRec(15, 3<<20, afInet6, ipprotoTCP, connFSrc|connFClosed, 40001, 443,
			a16("2001:db8::1"), a16("2001:db8::2"), 0),
	}
	for name, rec := range recs {
		b.Run(name, func(b *testing.B) {
			d := decoder{bootEpoch: time.Unix(1000, 0)}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.decode(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// netSeeds are well-formed network records, the fuzz corpus's starting point.
func netSeeds() [][]byte {
	all := uint8(connFResult | connFFd | connFSrc | connFDst)
	return [][]byte{
		connRec{cookie: 1, family: afInet, proto: ipprotoTCP, flags: all, fd: 3, sport: 1, dport: 2,
			saddr: a16("127.0.0.1"), daddr: a16("127.0.0.1"), pathLen: -1}.bytes(),
		connRec{cookie: 2, family: afInet6, proto: ipprotoUDP, flags: all, result: -101, fd: 3,
			saddr: a16("::1"), daddr: a16("::ffff:10.0.0.1"), pathLen: -1}.bytes(),
		connRec{cookie: 3, family: afUnix, proto: 1, flags: all, path: []byte("\x00abstract"), pathLen: -1}.bytes(),
		connRec{cookie: 4, family: afUnix, proto: 2, flags: connFUPath, path: []byte("/var/run/docker.sock\x00"), pathLen: -1}.bytes(),
		statsRec(5, 1<<30, afInet, ipprotoTCP, connFSrc|connFClosed, 1, 2, a16("10.0.0.1"), a16("8.8.8.8"), 0),
		statsRec(6, 0, afInet6, ipprotoUDP, 0, 0, 53, a16("::"), a16("2001:db8::53"), 0),
		func() []byte {
			b := connRec{cookie: 7, family: afInet, proto: ipprotoTCP, flags: all, fd: 5, sport: 80, dport: 40000,
				saddr: a16("10.0.0.1"), daddr: a16("192.0.2.1"), pathLen: -1, via: 1}.bytes()
			binary.LittleEndian.PutUint16(b[hdrType:], recAccept)
			return b
		}(),
		func() []byte {
			b := statsRec(8, 700, afInet, 253, connFSrc|egFDgram|connFDst, 0, 0, a16("10.0.0.1"), a16("192.0.2.1"), 0)
			b[egSotype], b[egOrigin] = sockRaw, 3
			return b
		}(),
	}
}

// TestNetFuzzSeedCorpus adds the network records to FuzzDecode's seed corpus
// (testdata/fuzz/FuzzDecode/net_*) and keeps them in step with the builders
// here; run with -update after a layout change.
func TestNetFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for i, b := range netSeeds() {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		path := filepath.Join(dir, fmt.Sprintf("net_%d", i))
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestNetFuzzSeedCorpus -update)", err)
		}
		if string(got) != want {
			t.Errorf("%s is stale: run go test -run TestNetFuzzSeedCorpus -update", path)
		}
	}
}

// FuzzDecodeNet feeds mutated network records to the decoder: it must return
// an event or an error, never panic, and never yield an event that breaks the
// invariants consumers rely on.
func FuzzDecodeNet(f *testing.F) {
	for _, s := range netSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d decoder
		e, err := d.decode(b)
		if err != nil {
			if e != nil {
				t.Fatalf("event and error: %v", err)
			}
			return
		}
		if e.Kind != event.KindConnect && e.Kind != event.KindEgress && e.Kind != event.KindAccept {
			return // another decoder's record type
		}
		n := e.Net
		if n == nil || e.Process == nil {
			t.Fatalf("%v event without net or process", e.Kind)
		}
		if e.Kind == event.KindAccept && n.Origin != event.OriginAccept {
			t.Fatalf("accept with origin %q", n.Origin)
		}
		switch n.Protocol {
		case "tcp", "udp", "udplite", "icmp", "icmpv6", "raw", "other":
			if n.UnixPath != "" {
				t.Fatalf("inet event with unix path %q", n.UnixPath)
			}
			if (n.Protocol == "raw" || n.Protocol == "other") != (n.IPProto != 0 || n.Protocol == "raw") {
				t.Fatalf("protocol %s with ip_proto %d", n.Protocol, n.IPProto)
			}
		case "unix":
			if e.Kind != event.KindConnect || len(n.UnixPath) > unixPathMax || n.DAddr.IsValid() {
				t.Fatalf("bad unix event %+v", n)
			}
		case "packet":
			if e.Kind != event.KindEgress || n.DAddr.IsValid() || n.SAddr.IsValid() {
				t.Fatalf("bad packet event %+v", n)
			}
		default:
			t.Fatalf("protocol %q", n.Protocol)
		}
	})
}

// egressTestMaps makes maps shaped like the kernel's egress_socks,
// egress_dgram and net_stats, closed when the test ends.
func egressTestMaps(t *testing.T, socks, dgram uint32) (*ebpf.Map, *ebpf.Map, *ebpf.Map) {
	t.Helper()
	mk := func(spec *ebpf.MapSpec) *ebpf.Map {
		m, err := ebpf.NewMap(spec)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	return mk(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 8, ValueSize: egressValSize, MaxEntries: socks}),
		mk(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: dgramKeySize, ValueSize: egressValSize, MaxEntries: dgram}),
		mk(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 16})
}
