package export

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/kestrel-sec/kestrel/internal/event"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

func TestWireFieldNumbers(t *testing.T) {
	for _, f := range []struct {
		m    proto.Message
		name string
		num  int32
	}{
		{&sensorv1.SubscribeResponse{}, "event", int32(wireRespEvent)},
		{&sensorv1.SubscribeResponse{}, "cursor", int32(wireRespCursor)},
		{&sensorv1.SubscribeResponse{}, "node_name", int32(wireRespNode)},
		{&sensorv1.Event{}, "process", int32(wireEventProcess)},
		{&sensorv1.Event{}, "container", int32(wireEventContainer)},
		{&sensorv1.Cursor{}, "instance_id", int32(wireCursorInst)},
		{&sensorv1.Cursor{}, "seq", int32(wireCursorSeq)},
	} {
		d := f.m.ProtoReflect().Descriptor()
		fd := d.Fields().ByName(protoreflect.Name(f.name))
		if fd == nil || int32(fd.Number()) != f.num {
			t.Errorf("%s.%s: the wire encoder writes field %d; the descriptor says %v", d.FullName(), f.name, f.num, fd)
		}
	}
}

// The wire encoder's response is the one the generated code would marshal
// from EventToProto, whether its parts come from the tables or not, and it
// is shared only by the same event.
func TestWireEventIsTheProtoResponse(t *testing.T) {
	fx := ocsfFixtures()
	odd := *fx["file_open"].Process
	odd.Exe, odd.Args = "/tmp/\xff\xfeodd", []string{"odd", "\xff"}
	evs := []*event.Event{fx["file_open"], fx["process_exec"], fx["finding_esc001"], padded(7), openEvent("", "/models/\xffm.gguf"),
		{Kind: event.KindOpen, Seq: 99, Process: &odd, Container: fx["file_open"].Container, File: fx["file_open"].File},
		{Kind: event.KindLost, Seq: 100, Lost: &event.Lost{Source: "queue", Count: 3}},
		// An empty process is there all the same (the kernel's Lost records have one).
		{Kind: event.KindLost, Seq: 101, Process: &event.Process{}, Lost: &event.Lost{Source: "kernel_ringbuf", Count: 9}},
		{Kind: event.KindOpen, Seq: 102, Process: &event.Process{}, Container: &event.Container{}, File: &event.File{}}}
	w := newWire()
	for round := range 2 {
		for i, ev := range evs {
			m, err := w.event(ev, "inst-1", "node-a")
			if err != nil {
				t.Fatalf("round %d, event %d: %v", round, i, err)
			}
			var got sensorv1.SubscribeResponse
			if err := proto.Unmarshal(m.b, &got); err != nil {
				t.Fatalf("round %d, event %d: %v", round, i, err)
			}
			want := &sensorv1.SubscribeResponse{
				Payload: &sensorv1.SubscribeResponse_Event{Event: EventToProto(ev)},
				Cursor:  &sensorv1.Cursor{InstanceId: "inst-1", Seq: ev.Seq}, NodeName: "node-a",
			}
			if !proto.Equal(&got, want) {
				t.Errorf("round %d, event %d:\n got %v\nwant %v", round, i, &got, want)
			}
			again, _ := w.event(ev, "inst-1", "node-a")
			if again != m {
				t.Errorf("event %d encoded twice: a second subscriber does not share it", i)
			}
		}
	}
	// Another event with the same sequence number (another ring) is
	// encoded for itself.
	a, b := padded(1), padded(2)
	a.Seq, b.Seq = 5, 5
	ma, _ := w.event(a, "inst-1", "node-a")
	mb, _ := w.event(b, "inst-1", "node-a")
	var ga, gb sensorv1.SubscribeResponse
	proto.Unmarshal(ma.b, &ga)
	proto.Unmarshal(mb.b, &gb)
	if ma == mb || proto.Equal(&ga, &gb) {
		t.Error("two events of one sequence number share an encoding")
	}
}

func BenchmarkWireEvent(b *testing.B) {
	for _, name := range []string{"file_open", "process_exec"} {
		ev := ocsfFixtures()[name]
		b.Run(name, func(b *testing.B) {
			w := newWire()
			b.ReportAllocs()
			seq := uint64(0)
			for b.Loop() {
				seq++
				ev.Seq = seq // a new event each time: the snapshots' tables hit, the event's does not
				if _, err := w.event(ev, "b9c597a3", "gpu-node-7"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
