package export

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kestrel-sec/kestrel/internal/config"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

// BenchmarkSubscribe measures one subscriber draining the ring over the unix
// socket: the feed's cost per event (convert, encode, send, receive).
func BenchmarkSubscribe(b *testing.B) {
	cfg := config.Default().Export
	cfg.UnixSocket = filepath.Join(b.TempDir(), "s.sock")
	ring := NewRing(1 << 16)
	srv, err := NewServer(cfg, ring, Sources{}, &Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	conn, err := grpc.NewClient("unix://"+cfg.UnixSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	st, err := sensorv1.NewSensorServiceClient(conn).Subscribe(sctx, &sensorv1.SubscribeRequest{ResumeAfter: &sensorv1.Cursor{InstanceId: ring.InstanceID()}})
	if err != nil {
		b.Fatal(err)
	}
	ev := ocsfFixtures()["file_open"]
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := *ev
		ring.Publish(&e)
		if i%1024 == 1023 || i == b.N-1 {
			for {
				r, err := st.Recv()
				if err != nil {
					b.Fatal(err)
				}
				if r.GetEvent().GetSeq() == uint64(i+1) {
					break
				}
			}
		}
	}
}
