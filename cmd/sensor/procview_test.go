package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/event"
)

func TestProcViewAndHeldSeed(t *testing.T) {
	fs, err := newProcFS()
	if err != nil {
		t.Skipf("no procfs: %v", err)
	}
	weights := filepath.Join(t.TempDir(), "model.safetensors")
	if err := os.WriteFile(weights, make([]byte, 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(weights)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Stat(weights, &st); err != nil {
		t.Fatal(err)
	}
	self := uint32(os.Getpid())

	v := procView{fs}
	held, err := v.Holdings(self)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, h := range held {
		found = found || h.Dev == st.Dev && h.Inode == st.Ino && h.FD == int32(f.Fd()) && h.Path == weights
	}
	if !found {
		t.Errorf("Holdings(self) lacks %s (dev %d ino %d fd %d): %+v", weights, st.Dev, st.Ino, f.Fd(), held)
	}
	id, err := v.Identity(self)
	if err != nil || id.NS.PID == 0 {
		t.Fatalf("Identity(self) = %+v, %v", id, err)
	}
	if m, err := v.NamespacePIDs(id.NS.PID); err != nil || m[self] != self {
		t.Errorf("NamespacePIDs(own) = %v, %v; want %d -> %d", len(m), err, self, self)
	}

	var got []*event.Event
	seed := heldSeed{fs: fs, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		isModel: func(p string, _ int64) bool { return strings.HasSuffix(p, ".safetensors") }}
	if err := seed.Run(context.Background(), func(ev *event.Event) { got = append(got, ev) }); err != nil {
		t.Fatal(err)
	}
	var mine *event.Event
	for _, ev := range got {
		if ev.Process.PID == self && ev.File.Inode == st.Ino {
			mine = ev
		}
	}
	if mine == nil {
		t.Fatalf("seed reported no held weights of this process among %d events", len(got))
	}
	fe := mine.File
	if mine.Kind != event.KindOpen || fe.Syscall != "held" || fe.Path != weights || fe.Dev != st.Dev ||
		fe.Size != 1<<16 || fe.Result != int32(f.Fd()) || fe.IsWrite() || mine.Process.Exe == "" {
		t.Errorf("seed event %+v, file %+v", mine, *fe)
	}
}
