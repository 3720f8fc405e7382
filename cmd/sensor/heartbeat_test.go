package main

import (
	"context"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/export"
)

// The daemon writes a heartbeat into the feed every status_interval, small
// (no program list) and with the health fields a SIEM keys on.
func TestHeartbeatsIntoTheFeed(t *testing.T) {
	ring := export.NewRing(16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { heartbeats(ctx, 20*time.Millisecond, ring, &stack{started: time.Now()}); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for ring.Head() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	buf := make([]*event.Event, 16)
	n, _ := ring.Read(1, buf)
	if n < 2 {
		t.Fatalf("%d heartbeats in the feed; want 2 within 5s", n)
	}
	for _, ev := range buf[:n] {
		st := ev.Status
		if ev.Kind != event.KindStatus || st.Fields[event.FieldHeartbeat] != "true" || st.Fields["node"] == "" ||
			st.Fields["version"] == "" || len(st.Programs) != 0 {
			t.Errorf("heartbeat %+v; want a status with fields heartbeat, node, version and no program list", st)
		}
	}
}
