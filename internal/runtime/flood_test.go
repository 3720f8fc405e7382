package runtime

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// TestFloodLayout checks the flood map's value and the header's flags
// against the BTF of the committed object.
func TestFloodLayout(t *testing.T) {
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(_SensorBytes))
	if err != nil {
		t.Fatal(err)
	}
	members := func(name string) (map[string]int, int) {
		var s *btf.Struct
		if err := spec.TypeByName(name, &s); err != nil {
			t.Fatalf("struct %s: %v", name, err)
		}
		m := map[string]int{}
		for _, mem := range s.Members {
			m[mem.Name] = int(mem.Offset.Bytes())
		}
		return m, int(s.Size)
	}
	if m, _ := members("rec_hdr"); m["flags"] != hdrFlags {
		t.Errorf("rec_hdr.flags at %d; decoder reads %d", m["flags"], hdrFlags)
	}
	m, size := members("flood_stat")
	if size != floodStatSize {
		t.Errorf("flood_stat is %d bytes; reporter reads %d", size, floodStatSize)
	}
	for f, off := range map[string]int{"lost": floodStatLost, "demoted": floodDemoted, "last_ns": floodLastNS,
		"tgid": floodTGID, "comm": floodComm} {
		if m[f] != off {
			t.Errorf("flood_stat.%s at %d; reporter reads %d", f, m[f], off)
		}
	}
}

// floodSensor loads the sensor with a small ring and the given flood
// settings, and returns it with a function that starts its reader.
func floodSensor(t *testing.T, ring int, f config.FloodConfig) (*Sensor, *collector, func()) {
	t.Helper()
	requireKernel(t)
	cfg := testConfig()
	cfg.RingBufferBytes, cfg.WakeupBytes, cfg.Flood = ring, ring, f
	s, err := Load(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := false
	t.Cleanup(func() {
		cancel()
		if started {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
		s.Close()
	})
	return s, c, func() {
		started = true
		go func() { done <- s.Run(ctx, c.emit) }()
	}
}

// floodOutcome sums what a flood of opens of file by a container (cgroup
// cg) became: reads and priority writes delivered, records lost in the
// container's name by source (its execs, forks and exits are bulk records
// too), and the last lost event naming it.
func floodOutcome(c *collector, cg uint64, file string) (reads, writes int, lost map[string]uint64, by *event.Event) {
	lost = map[string]uint64{}
	for _, e := range c.all() {
		switch {
		case e.Kind == event.KindOpen && e.Process.CgroupID == cg && e.File.RawPath == file:
			if e.File.IsWrite() {
				if e.Priority {
					writes++
				}
			} else {
				reads++
			}
		case e.Kind == event.KindLost && e.Process.CgroupID == cg:
			lost[e.Lost.Source] += e.Lost.Count
			by = e
		}
	}
	return reads, writes, lost, by
}

// otherRecords bounds the bulk records of a container's helper chain other
// than its opens (sh, unshare and the helper's execs, forks, exits).
const otherRecords = 20

// A container opening a watched model file in a loop goes over its cgroup's
// rate: its excess reads are dropped in the kernel and reported as lost in
// its name (cgroup, pid, comm); its three writes of a watched file, priority
// records, are all delivered.
func TestFloodRateLimitedPerCgroup(t *testing.T) {
	s, c, run := floodSensor(t, 1<<20, config.FloodConfig{PriorityHeadroomPercent: 12, CgroupRate: 50, CgroupBurst: 50,
		PriorityRate: 1000, PriorityBurst: 1000})
	run()
	ctr, cgid := inContainer(t)
	model := filepath.Join(t.TempDir(), "weights.gguf")
	if err := os.WriteFile(model, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	const reads = 1000
	if _, out := runIn(t, ctr, "opens:1000", model); out != "<nil>" {
		t.Fatalf("helper: %s", out)
	}
	if _, out := runIn(t, ctr, "wopens:3", model); out != "<nil>" {
		t.Fatalf("helper: %s", out)
	}
	var got, writes int
	var lost map[string]uint64
	var by *event.Event
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, writes, lost, by = floodOutcome(c, cgid, model)
		if got+int(lost[event.LostRateLimit]) >= reads && writes == 3 || time.Now().After(deadline) {
			break
		}
	}
	if writes != 3 {
		t.Errorf("%d of 3 writes delivered as priority records", writes)
	}
	if n := got + int(lost[event.LostRateLimit]); n < reads || n > reads+otherRecords || got > 50 {
		t.Errorf("%d reads delivered + %d records lost to the rate limit; want %d reads in all, at most 50 delivered",
			got, lost[event.LostRateLimit], reads)
	}
	if by == nil || by.Process.Comm == "" || by.Process.PID == 0 {
		t.Fatalf("no lost event names the container's process: %+v", by)
	}
	// Other cgroups of the host go over a rate this low too.
	if n := s.Losses()[event.LostRateLimit]; n < lost[event.LostRateLimit] {
		t.Errorf("Losses %s = %d; the container's lost events alone say %d", event.LostRateLimit, n, lost[event.LostRateLimit])
	}
	t.Logf("%d reads delivered, %d lost to the rate limit in the name of pid %d (%s), cgroup %d; 3 writes delivered",
		got, lost[event.LostRateLimit], by.Process.PID, by.Process.Comm, by.Process.CgroupID)
}

// With the reader not running, bulk records stop at the headroom; the
// priority records made after that still fit, and the bulk ones that did
// not are reported as lost in the flooder's name.
func TestFloodHeadroomKeepsPriority(t *testing.T) {
	// A 64 KiB headroom: room for the priority records of the whole host
	// (other tests' mounts and signals) while the reader waits.
	_, c, run := floodSensor(t, 256<<10, config.FloodConfig{PriorityHeadroomPercent: 25})
	ctr, cgid := inContainer(t)
	model := filepath.Join(t.TempDir(), "weights.gguf")
	if err := os.WriteFile(model, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	const reads = 1000 // open records of ~700 bytes: several times the ring
	if _, out := runIn(t, ctr, "opens:1000", model); out != "<nil>" {
		t.Fatalf("helper: %s", out)
	}
	if _, out := runIn(t, ctr, "wopens:3", model); out != "<nil>" {
		t.Fatalf("helper: %s", out)
	}
	run()
	c.wait(t, "the lost reads", func(e *event.Event) bool {
		return e.Kind == event.KindLost && e.Process.CgroupID == cgid && e.Lost.Source == event.LostKernelRing
	})
	var got, writes int
	var lost map[string]uint64
	var by *event.Event
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, writes, lost, by = floodOutcome(c, cgid, model)
		if got+int(lost[event.LostKernelRing]) >= reads && writes == 3 || time.Now().After(deadline) {
			break
		}
	}
	if writes != 3 {
		t.Errorf("%d of 3 writes delivered as priority records after the ring filled", writes)
	}
	if n := got + int(lost[event.LostKernelRing]); got == 0 || n < reads || n > reads+otherRecords {
		t.Errorf("%d reads delivered + %d lost at the headroom; want %d reads in all", got, lost[event.LostKernelRing], reads)
	}
	if lost[event.LostKernelRingPriority] != 0 {
		t.Errorf("%d priority records lost", lost[event.LostKernelRingPriority])
	}
	t.Logf("%d reads delivered, %d lost at the headroom in the name of %s (pid %d); 3 writes delivered", got,
		lost[event.LostKernelRing], by.Process.Comm, by.Process.PID)
}

// The reporter's arithmetic on a map of the kernel's shape: each cgroup's
// growth is reported once in its name; drops no entry accounts for (an
// evicted entry) are reported without one, a tick late; an entry made
// again after an eviction restarts from its own count; nothing is counted
// twice.
func TestFloodReporterCountsEachLossOnce(t *testing.T) {
	requireKernel(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 8, ValueSize: floodStatSize, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	put := func(cg uint64, rate, ring uint64, tgid uint32, comm string) {
		var v [floodStatSize]byte
		le.PutUint64(v[floodStatLost+8*floodRate:], rate)
		le.PutUint64(v[floodStatLost+8*floodRing:], ring)
		le.PutUint32(v[floodTGID:], tgid)
		copy(v[floodComm:], comm)
		if err := m.Put(cg, v[:]); err != nil {
			t.Fatal(err)
		}
	}
	var r floodReporter
	var drops [dropSources]uint64
	type key struct {
		src string
		cg  uint64
	}
	got := map[key]uint64{}
	tick := func() {
		t.Helper()
		if err := r.report(m, &drops, time.Now(), func(e *event.Event) {
			got[key{e.Lost.Source, e.Process.CgroupID}] += e.Lost.Count
			if e.Process.CgroupID != 0 && (e.Process.PID == 0 || e.Process.Comm == "") {
				t.Errorf("lost event of cgroup %d without its process: %+v", e.Process.CgroupID, e.Process)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Tick 1: cgroup 7 lost 100 to the rate limit, 5 at the ring.
	put(7, 100, 5, 70, "flooder")
	drops[dropRateLimit], drops[dropRingbuf] = 100, 5
	tick()
	// Tick 2: 7 lost 50 more; cgroup 8's entry was evicted before it was
	// read: its 20 rate-limited drops are in drops[] only.
	put(7, 150, 5, 71, "flooder")
	drops[dropRateLimit] += 50 + 20
	tick()
	// Tick 3: nothing new in the kernel: 8's 20 come now, without a
	// cgroup. Then 7 is evicted and made again with 3.
	tick()
	if err := m.Delete(uint64(7)); err != nil {
		t.Fatal(err)
	}
	put(7, 3, 0, 72, "flooder")
	drops[dropRateLimit] += 3
	tick()
	tick()
	want := map[key]uint64{
		{event.LostRateLimit, 7}: 153, {event.LostKernelRing, 7}: 5, {event.LostRateLimit, 0}: 20,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("reported %v; want %v", got, want)
	}
	var sum uint64
	for k, n := range got {
		if k.src == event.LostRateLimit {
			sum += n
		}
	}
	if sum != drops[dropRateLimit] {
		t.Errorf("reported %d rate-limit losses in all; the kernel counted %d", sum, drops[dropRateLimit])
	}
}
