package runtime

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// EnableStats makes the kernel keep run time and run counts of every BPF
// program (BPF_ENABLE_STATS) until the returned Closer is closed. It needs
// CAP_SYS_ADMIN; the cost is two clock reads per program run, which for the
// sensor means per hooked syscall.
func EnableStats() (io.Closer, error) {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, fmt.Errorf("enable BPF run-time statistics: %w", err)
	}
	return c, nil
}

// StatsEnabled reports whether the kernel keeps BPF run-time statistics
// node-wide (the sysctl kernel.bpf_stats_enabled, which BPF_ENABLE_STATS
// does not change).
func StatsEnabled() bool {
	b, err := os.ReadFile("/proc/sys/kernel/bpf_stats_enabled")
	return err == nil && string(bytes.TrimSpace(b)) != "0"
}

// MapMemory returns the memory the kernel charges for each of the sensor's
// maps, by map name. Maps whose size the kernel does not report are left
// out. Safe for concurrent use; a nil or closed Sensor has none.
func (s *Sensor) MapMemory() map[string]uint64 {
	out := map[string]uint64{}
	if s == nil || s.coll == nil {
		return out
	}
	for name, m := range s.coll.Maps {
		info, err := m.Info()
		if err != nil {
			continue
		}
		if b, ok := info.Memlock(); ok {
			out[name] = b
		}
	}
	return out
}

// RingbufUsage returns the bytes of the event ring buffer not yet read and
// its size; both are 0 without a reader (a floor, or after Close). Safe for
// concurrent use with Run and Close.
func (s *Sensor) RingbufUsage() (used, size uint64) {
	if s == nil {
		return 0, 0
	}
	s.rdMu.RLock()
	defer s.rdMu.RUnlock()
	if s.rd == nil || s.rdClosed {
		return 0, 0
	}
	return uint64(s.rd.AvailableBytes()), uint64(s.rd.BufferSize())
}

// Losses returns the events lost on the kernel side and in decoding, by the
// source their in-band "lost" events name (kernel_ringbuf,
// inflight_alloc_failed: a watched call found no task storage for its
// in-flight record, decoder, egress_evicted, egress_untracked). Safe for
// concurrent use.
func (s *Sensor) Losses() map[string]uint64 {
	if s == nil {
		return map[string]uint64{}
	}
	m := map[string]uint64{
		dropNames[dropRingbuf]:  s.drops[dropRingbuf].Load(),
		dropNames[dropInflight]: s.drops[dropInflight].Load(),
		lostSourceDecoder:       s.decodeErrors.Load(),
	}
	s.egress.mu.Lock()
	m[lostEgressEvicted] = s.egress.evicted
	m[lostEgressUntraced] = s.egress.stats[netSockInsertFail] + s.egress.stats[netDgramInsertFail]
	s.egress.mu.Unlock()
	return m
}
