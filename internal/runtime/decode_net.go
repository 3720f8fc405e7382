package runtime

// Decoding of the network records of bpf/net.bpf.h (record types 10-19).
//
// The layouts below mirror struct conn_rec and struct egress_val; every
// offset is checked against the record length before it is read, and a
// record whose size or fields are out of range is rejected with an error
// naming the problem.

import (
	"bytes"
	"net/netip"
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Record types of bpf/common.h owned by the network programs.
const (
	recConnect    = 10
	recSockStats  = 11
	recAccept     = 12
	recSockClosed = 13 // handled by the egress reporter, never an event
)

// netEventAlloc holds an event and its payloads in one allocation.
type netEventAlloc struct {
	e event.Event
	p event.Process
	n event.Net
}

// netEvent returns an event of kind k carrying a copy of h's process and an
// empty Net payload (Fd -1), allocated together.
func netEvent(h *recHeader, k event.Kind) *event.Event {
	a := &netEventAlloc{p: h.Process, n: event.Net{Fd: -1}}
	a.e = event.Event{Kind: k, Time: h.Time, Process: &a.p, Net: &a.n}
	return &a.e
}

// Sizes and offsets of struct conn_rec and struct egress_val (bpf/net.bpf.h),
// counted from the start of the record, header included.
const (
	connRecSize      = 352
	connCookie       = 56
	connFamily       = 64
	connProto        = 65
	connFlags        = 66
	connPathLen      = 67
	connResult       = 68
	connFd           = 72
	connSport        = 76
	connDport        = 78
	connSaddr        = 80
	connDaddr        = 96
	connPath         = 112
	connVia          = 220
	connSotype       = 221
	connPeerIno      = 224
	connPeerDev      = 232
	connPeerPathLen  = 236
	connPeerPath     = 240
	unixPathMax      = 108
	egressValSize    = 128
	egCookie         = 56
	egBytes          = 64
	egSends          = 72
	egFamily         = 80
	egProto          = 81
	egFlags          = 82
	egSotype         = 83
	egSport          = 84
	egDport          = 86
	egSaddr          = 88
	egDaddr          = 104
	egOrigin         = 120
	sockClosedSize   = 64
	sockClosedCookie = 56
	dgramKeySize     = 32
)

// conn_rec.flags and egress_val.flags bits (CONN_F_* in bpf/net.bpf.h).
const (
	connFResult = 0x01
	connFFd     = 0x02
	connFSrc    = 0x04
	connFDst    = 0x08
	connFUPath  = 0x10
	connFClosed = 0x20
	egFDgram    = 0x40
	egFNoDst    = 0x80
)

// vias are conn_rec.via (enum net_via), origins egress_val.origin (enum
// eg_origin), by value.
var (
	vias    = [...]string{"", event.ViaIOUring, event.ViaSocketcall, event.ViaFastOpen, event.ViaKernel, event.ViaOther}
	origins = [...]string{"", event.OriginConnect, event.OriginAccept, event.OriginDatagram}
)

// Address families and protocols as the kernel numbers them.
const (
	afUnix   = 1
	afInet   = 2
	afInet6  = 10
	afPacket = 17

	ipprotoICMP    = 1
	ipprotoTCP     = 6
	ipprotoUDP     = 17
	ipprotoICMPv6  = 58
	ipprotoUDPLite = 136

	sockStream = 1
	sockDgram  = 2
	sockRaw    = 3
)

// decodeNet decodes a REC_CONNECT, REC_ACCEPT or REC_SOCK_STATS record. h
// is the already validated common header of b (b is the whole record,
// header included).
func decodeNet(h *recHeader, b []byte) (*event.Event, error) {
	switch h.Type {
	case recConnect:
		return decodeConnect(h, b, event.KindConnect)
	case recAccept:
		return decodeConnect(h, b, event.KindAccept)
	case recSockStats:
		return decodeSockStats(h, b)
	}
	return nil, malformed("unknown network record type %d", h.Type)
}

// decodeConnect decodes struct conn_rec, the layout of connect and accept
// records.
func decodeConnect(h *recHeader, b []byte, kind event.Kind) (*event.Event, error) {
	if len(b) != connRecSize {
		return nil, malformed("%s record is %d bytes, want %d", kind, len(b), connRecSize)
	}
	family := b[connFamily]
	flags := b[connFlags]
	if int(b[connVia]) >= len(vias) {
		return nil, malformed("%s via %d", kind, b[connVia])
	}
	e := netEvent(h, kind)
	n := e.Net
	n.Cookie = le.Uint64(b[connCookie:])
	n.Via = vias[b[connVia]]
	if kind == event.KindAccept {
		n.Origin = event.OriginAccept
	}
	if flags&connFResult != 0 {
		n.Result = int32(le.Uint32(b[connResult:]))
	}
	if flags&connFFd != 0 {
		n.Fd = int32(le.Uint32(b[connFd:]))
	}
	switch family {
	case afInet, afInet6:
		if err := inetProto(n, b[connSotype], b[connProto]); err != nil {
			return nil, err
		}
		if flags&connFDst != 0 {
			n.DAddr = inetAddr(family, b[connDaddr:connDaddr+16])
			n.DPort = le.Uint16(b[connDport:])
		}
		if flags&connFSrc != 0 {
			n.SAddr = inetAddr(family, b[connSaddr:connSaddr+16])
			n.SPort = le.Uint16(b[connSport:])
		}
	case afUnix:
		if kind != event.KindConnect {
			return nil, malformed("%s of a unix socket", kind)
		}
		pl := int(b[connPathLen])
		if pl > unixPathMax {
			return nil, malformed("unix path length %d exceeds %d", pl, unixPathMax)
		}
		n.Protocol = "unix"
		n.UnixPath = unixPath(b[connPath : connPath+pl])
		ppl := int(b[connPeerPathLen])
		if ppl > unixPathMax {
			return nil, malformed("unix peer path length %d exceeds %d", ppl, unixPathMax)
		}
		n.PeerPath = unixPath(b[connPeerPath : connPeerPath+ppl])
		if ino := le.Uint64(b[connPeerIno:]); ino != 0 {
			n.PeerIno = ino
			n.PeerDev = kernelDevToUser(le.Uint32(b[connPeerDev:]))
		}
	default:
		return nil, malformed("%s address family %d", kind, family)
	}
	return e, nil
}

// decodeSockStats decodes struct egress_val, which is both the REC_SOCK_STATS
// record and the value of the egress_socks and egress_dgram maps.
func decodeSockStats(h *recHeader, b []byte) (*event.Event, error) {
	if len(b) != egressValSize {
		return nil, malformed("socket stats record is %d bytes, want %d", len(b), egressValSize)
	}
	family := b[egFamily]
	if family != afInet && family != afInet6 && family != afPacket {
		return nil, malformed("socket stats address family %d", family)
	}
	if int(b[egOrigin]) >= len(origins) {
		return nil, malformed("socket stats origin %d", b[egOrigin])
	}
	flags := b[egFlags]
	e := netEvent(h, event.KindEgress)
	n := e.Net
	n.Cookie = le.Uint64(b[egCookie:])
	n.BytesSent = le.Uint64(b[egBytes:])
	n.Origin = origins[b[egOrigin]]
	n.Closed = flags&connFClosed != 0
	if family == afPacket {
		// Link-layer frames: no IP endpoints.
		n.Protocol = "packet"
		return e, nil
	}
	if err := inetProto(n, b[egSotype], b[egProto]); err != nil {
		return nil, err
	}
	if flags&egFNoDst == 0 {
		n.DAddr = inetAddr(family, b[egDaddr:egDaddr+16])
		n.DPort = le.Uint16(b[egDport:])
	}
	if flags&connFSrc != 0 {
		n.SAddr = inetAddr(family, b[egSaddr:egSaddr+16])
		n.SPort = le.Uint16(b[egSport:])
	}
	return e, nil
}

// inetProto names the protocol of an inet socket of type sotype and IP
// protocol proto in n. Stream and datagram sockets of a protocol the sensor
// does not name (sctp) are "other", with the number in IPProto.
func inetProto(n *event.Net, sotype, proto uint8) error {
	if sotype == sockRaw {
		n.Protocol, n.IPProto = "raw", proto
		return nil
	}
	if sotype == 0 || sotype > 6 { // SOCK_STREAM .. SOCK_DCCP; SOCK_PACKET is not inet
		return malformed("inet socket type %d", sotype)
	}
	switch proto {
	case ipprotoTCP:
		n.Protocol = "tcp"
	case ipprotoUDP:
		n.Protocol = "udp"
	case ipprotoUDPLite:
		n.Protocol = "udplite"
	case ipprotoICMP:
		n.Protocol = "icmp"
	case ipprotoICMPv6:
		n.Protocol = "icmpv6"
	case 0:
		return malformed("inet protocol 0 on a socket of type %d", sotype)
	default:
		n.Protocol, n.IPProto = "other", proto
	}
	return nil
}

// inetAddr reads an address stored in network byte order, IPv4 in the first
// four bytes. IPv4-mapped IPv6 addresses are unmapped so that classification
// sees one form of each IPv4 address.
func inetAddr(family uint8, b []byte) netip.Addr {
	if family == afInet {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16([16]byte(b[:16])).Unmap()
}

// unixPath renders a sun_path: a pathname up to its NUL, or an abstract name
// (leading NUL) as "@name" with inner NULs shown as '@', as ss(8) does.
func unixPath(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	if p[0] == 0 {
		return "@" + strings.ReplaceAll(string(p[1:]), "\x00", "@")
	}
	if i := bytes.IndexByte(p, 0); i >= 0 {
		p = p[:i]
	}
	return string(p)
}
