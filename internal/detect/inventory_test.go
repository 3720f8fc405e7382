package detect

import (
	"context"
	"crypto/sha256"
	hexenc "encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/detect/model"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// writeModel writes size bytes of a fixed pattern to dir/name and returns
// the path, its sha256 and the open payload the kernel would report.
func writeModel(t *testing.T, dir, name string, size int) (string, string, *event.File) {
	t.Helper()
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i*7 + i>>9)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf, 0o600); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf)
	return p, hexenc.EncodeToString(sum[:]), &event.File{Path: p, RawPath: p, Flags: event.ORdonly, Result: 5,
		Size: int64(size), Inode: st.Ino, Dev: uint64(st.Dev)}
}

func TestInventory(t *testing.T) {
	dir := t.TempDir()
	path, sum, f := writeModel(t, dir, "model-00001-of-00001.safetensors", 3<<20)
	path2, _, f2 := writeModel(t, dir, "other.gguf", 2<<20)
	reg, err := model.NewRegistry(&model.RegistryOptions{RevalidateEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	e := newAIEngine(t, reg, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()

	// The owner is this test process, so the hasher can open the file
	// through /proc/<pid>/root as it does for container processes.
	self := uint32(os.Getpid())
	c := ctr("simctr-infer-bom")
	c.Pod, c.Namespace = "server-0", "serving"
	srv := proc(self, "/usr/bin/python3.11", "python3", "fake_infer.py").caps(0)
	loader := proc(self+1, "/usr/bin/sha256sum").ns(hostNS)
	open := func(b pb, c *event.Container, f *event.File) *event.Event {
		g := *f
		return &event.Event{Kind: event.KindOpen, Process: b.p, Container: c, File: &g}
	}
	evs := []*event.Event{
		at(0, execEv(srv, c)),
		at(time.Second, gpuStart(srv, c, 0, "GPU-0")),
		at(2*time.Second, open(srv, c, f)),
		at(3*time.Second, cookieConn(srv, c, "10.200.1.1", 8080, event.ClassNode, 9)),
		at(4*time.Second, egressEv(srv, c, "10.200.1.1", 8080, event.ClassNode, 9, 1000, false)),
		at(5*time.Second, egressEv(srv, c, "10.200.1.1", 8080, event.ClassNode, 9, 3000, true)),
		at(6*time.Second, open(loader, nil, f2)),
	}
	// Inventory is read from another goroutine while events flow (run
	// with -race to check the locking).
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				_ = e.Inventory()
			}
		}
	}()
	run(e, evs...)
	close(stop)
	wg.Wait()

	var inv *event.Inventory
	deadline := time.Now().Add(10 * time.Second)
	for {
		inv = e.Inventory()
		if len(inv.GPUs) == 1 && len(inv.GPUs[0].Owners) == 1 && len(inv.GPUs[0].Owners[0].Models) == 1 &&
			inv.GPUs[0].Owners[0].Models[0].SHA256 != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hashed model in the inventory after 10s: %+v (registry %v)", inv, reg.Counters())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if inv.Node != "node-a" {
		t.Errorf("node = %q", inv.Node)
	}
	g := inv.GPUs[0]
	if g.UUID != "GPU-0" || g.Index != 0 {
		t.Errorf("gpu = %+v", g)
	}
	o := g.Owners[0]
	if o.Process.PID != self || o.Container == nil || o.Container.ID != c.ID || o.Container.Pod != "server-0" || o.UsedBytes != 1<<30 {
		t.Errorf("owner = pid %d container %+v used %d", o.Process.PID, o.Container, o.UsedBytes)
	}
	m := o.Models[0]
	if m.Path != path || m.Size != 3<<20 || m.SHA256 != sum {
		t.Errorf("model = %+v; want %s, %d bytes, sha256 %s", m, path, 3<<20, sum)
	}
	want := event.Peer{Addr: netip.MustParseAddr("10.200.1.1"), Port: 8080, Protocol: "tcp", Class: event.ClassNode, BytesSent: 3000}
	if len(o.Peers) != 1 || o.Peers[0] != want {
		t.Errorf("peers = %+v; want [%+v]", o.Peers, want)
	}
	if len(inv.Unowned) != 1 || len(inv.Unowned[0].Models) != 1 || inv.Unowned[0].Models[0].Path != path2 ||
		inv.Unowned[0].Process.PID != self+1 || inv.Unowned[0].Container != nil {
		t.Errorf("unowned = %+v; want %s loaded by pid %d on the host", inv.Unowned, path2, self+1)
	}

	// The owner stops: the GPU stays, without owners; its file moves to
	// Unowned.
	stopEv := gpuStart(srv, c, 0, "GPU-0")
	stopEv.GPU.Change = event.GPUStop
	run(e, at(time.Minute, stopEv))
	inv = e.Inventory()
	if len(inv.GPUs) != 1 || len(inv.GPUs[0].Owners) != 0 || len(inv.Unowned) != 2 {
		t.Errorf("after stop: %+v", inv)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
