package export

import (
	"testing"

	"google.golang.org/protobuf/proto"

	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

// BenchmarkProtoEvent measures what a subscriber's feed costs per event:
// the event's wire form and its marshaled response.
func BenchmarkProtoEvent(b *testing.B) {
	for _, name := range []string{"file_open", "process_exec", "finding_esc001"} {
		ev := ocsfFixtures()[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := &sensorv1.SubscribeResponse{
					Payload: &sensorv1.SubscribeResponse_Event{Event: EventToProto(ev)},
					Cursor:  &sensorv1.Cursor{InstanceId: "b9c597a3", Seq: ev.Seq}, NodeName: "gpu-node-7",
				}
				if _, err := proto.Marshal(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
