package export

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kestrel-sec/kestrel/internal/event"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

// The feed's responses are encoded once and shared. An event's process and
// container are immutable snapshots shared by every event of that process,
// so their messages are marshaled once per snapshot and spliced into each
// event's encoding (protobuf fields may come in any order, and a message
// field is its tag, length and bytes). The response for an event is the
// same for every subscriber (the cursor is the event's, the node the
// server's), so the first subscriber to encode it leaves it for the others.

// Sizes of the wire encoder's direct-mapped tables.
const (
	wireProcSlots  = 1024 // process snapshots acting at once, and then some
	wireCtrSlots   = 256  // containers on a node
	wireEventSlots = 2048 // how far apart subscribers may be and still share
)

// wire encodes Subscribe responses for events. The zero value is not ready:
// use newWire. It is safe for concurrent use.
type wire struct {
	// processProto converts a process snapshot (processToProto; a test
	// swaps it to prove that an encoding failure stays in-band).
	processProto func(*event.Process) *sensorv1.Process

	procs  [wireProcSlots]atomic.Pointer[wireProc]
	ctrs   [wireCtrSlots]atomic.Pointer[wireCtr]
	events [wireEventSlots]atomic.Pointer[wireEvent]
}

type wireProc struct {
	p *event.Process
	b []byte
}

type wireCtr struct {
	c *event.Container
	b []byte
}

type wireEvent struct {
	ev   *event.Event
	seq  uint64
	inst string
	node string
	m    *encoded
}

func newWire() *wire { return &wire{processProto: processToProto} }

// Field numbers of the messages the encoder writes by hand (sensor.proto;
// TestWireFieldNumbers checks them against the descriptors).
const (
	wireRespEvent      protowire.Number = 1    // SubscribeResponse.event
	wireRespCursor     protowire.Number = 1000 // SubscribeResponse.cursor
	wireRespNode       protowire.Number = 1001 // SubscribeResponse.node_name
	wireEventProcess   protowire.Number = 4    // Event.process
	wireEventContainer protowire.Number = 5    // Event.container
	wireCursorInst     protowire.Number = 1    // Cursor.instance_id
	wireCursorSeq      protowire.Number = 2    // Cursor.seq
)

func ptrSlot(p unsafe.Pointer, n int) int {
	return int((uint64(uintptr(p)) * 0x9e3779b97f4a7c15 >> 32) % uint64(n))
}

// process returns the marshaled process message of snapshot p (nil for
// none).
func (w *wire) process(p *event.Process) ([]byte, error) {
	if p == nil {
		return nil, nil
	}
	slot := &w.procs[ptrSlot(unsafe.Pointer(p), wireProcSlots)]
	if e := slot.Load(); e != nil && e.p == p {
		return e.b, nil
	}
	b, err := proto.Marshal(w.processProto(p))
	if err != nil {
		return nil, err
	}
	slot.Store(&wireProc{p: p, b: b})
	return b, nil
}

// container returns the marshaled container message of snapshot c (nil
// for the host).
func (w *wire) container(c *event.Container) ([]byte, error) {
	if c == nil {
		return nil, nil
	}
	slot := &w.ctrs[ptrSlot(unsafe.Pointer(c), wireCtrSlots)]
	if e := slot.Load(); e != nil && e.c == c {
		return e.b, nil
	}
	b, err := proto.Marshal(containerToProto(c))
	if err != nil {
		return nil, err
	}
	slot.Store(&wireCtr{c: c, b: b})
	return b, nil
}

var wireBodies = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// event returns the encoded response carrying ev, with the cursor of ev in
// instance inst, from node: the one another subscriber encoded, when it
// did.
func (w *wire) event(ev *event.Event, inst, node string) (*encoded, error) {
	slot := &w.events[ev.Seq%wireEventSlots]
	if e := slot.Load(); e != nil && e.ev == ev && e.seq == ev.Seq && e.inst == inst && e.node == node {
		return e.m, nil
	}
	pb, err := w.process(ev.Process)
	if err != nil {
		return nil, err
	}
	cb, err := w.container(ev.Container)
	if err != nil {
		return nil, err
	}
	bp := wireBodies.Get().(*[]byte)
	defer wireBodies.Put(bp)
	body, err := proto.MarshalOptions{}.MarshalAppend((*bp)[:0], eventBodyToProto(ev, 0))
	*bp = body
	if err != nil {
		return nil, err
	}
	evLen := len(body)
	// A message field is present when its snapshot is, empty or not.
	if ev.Process != nil {
		evLen += protowire.SizeTag(wireEventProcess) + protowire.SizeBytes(len(pb))
	}
	if ev.Container != nil {
		evLen += protowire.SizeTag(wireEventContainer) + protowire.SizeBytes(len(cb))
	}
	// proto3 leaves zero values out; so does the encoder.
	curLen := 0
	if inst != "" {
		curLen += protowire.SizeTag(wireCursorInst) + protowire.SizeBytes(len(inst))
	}
	if ev.Seq != 0 {
		curLen += protowire.SizeTag(wireCursorSeq) + protowire.SizeVarint(ev.Seq)
	}
	size := protowire.SizeTag(wireRespEvent) + protowire.SizeBytes(evLen) +
		protowire.SizeTag(wireRespCursor) + protowire.SizeBytes(curLen)
	if node != "" {
		size += protowire.SizeTag(wireRespNode) + protowire.SizeBytes(len(node))
	}
	b := make([]byte, 0, size)
	b = protowire.AppendTag(b, wireRespEvent, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(evLen))
	b = append(b, body...)
	if ev.Process != nil {
		b = protowire.AppendTag(b, wireEventProcess, protowire.BytesType)
		b = protowire.AppendBytes(b, pb)
	}
	if ev.Container != nil {
		b = protowire.AppendTag(b, wireEventContainer, protowire.BytesType)
		b = protowire.AppendBytes(b, cb)
	}
	b = protowire.AppendTag(b, wireRespCursor, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(curLen))
	if inst != "" {
		b = protowire.AppendTag(b, wireCursorInst, protowire.BytesType)
		b = protowire.AppendString(b, inst)
	}
	if ev.Seq != 0 {
		b = protowire.AppendTag(b, wireCursorSeq, protowire.VarintType)
		b = protowire.AppendVarint(b, ev.Seq)
	}
	if node != "" {
		b = protowire.AppendTag(b, wireRespNode, protowire.BytesType)
		b = protowire.AppendString(b, node)
	}
	m := &encoded{b: b}
	slot.Store(&wireEvent{ev: ev, seq: ev.Seq, inst: inst, node: node, m: m})
	return m, nil
}
