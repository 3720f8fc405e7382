package runtime

import (
	"fmt"
	"sync/atomic"

	"github.com/cilium/ebpf"
)

// CgroupIndex is told the cgroup v2 ids and paths the kernel reports, in ring
// buffer order: a cgroup's path arrives before the first event of a process
// in it. internal/runtime/cgroup's Resolver implements it.
type CgroupIndex interface {
	// Learn records that cgroup id has path, from the root of the v2
	// hierarchy. It returns false when the index had to forget everything
	// else to make room.
	Learn(id uint64, path string) bool
	// Forget says that cgroup id was removed. Events still queued for its
	// processes must keep resolving: the index drops it later.
	Forget(id uint64)
	// Range calls fn for every id the index holds a path for.
	Range(fn func(id uint64))
}

// Cgroup record layout (struct cgroup_rec in bpf/records.h).
const (
	cgroupID      = 56
	cgroupOp      = 64
	cgroupFlags   = 66
	cgroupPathLen = 68
	cgroupPath    = 72
	cgroupSlot    = 1024

	cgroupOpMkdir  = 1
	cgroupOpRmdir  = 2
	cgroupOpAttach = 3
	cgroupOpTask   = 4
	cgroupFTrunc   = 1 << 0
)

// cgroupRec is a decoded cgroup record.
type cgroupRec struct {
	id    uint64
	op    uint16
	trunc bool
	path  string
}

// decodeCgroup decodes a cgroup record. Like decode, it never panics and
// wraps errMalformed.
func decodeCgroup(b []byte) (cgroupRec, error) {
	if len(b) < cgroupPath+1 {
		return cgroupRec{}, malformed("cgroup record of %d bytes, want at least %d", len(b), cgroupPath+1)
	}
	if int(le.Uint16(b[hdrSizeOff:])) != len(b) {
		return cgroupRec{}, malformed("cgroup record: header says %d bytes, record has %d", le.Uint16(b[hdrSizeOff:]), len(b))
	}
	n := int(le.Uint16(b[cgroupPathLen:]))
	if cgroupPath+n+1 != len(b) {
		return cgroupRec{}, malformed("cgroup path length %d does not match record size %d", n, len(b))
	}
	path, err := slotString(b, cgroupPath, n, cgroupSlot, "cgroup path")
	if err != nil {
		return cgroupRec{}, err
	}
	r := cgroupRec{
		id: le.Uint64(b[cgroupID:]), op: le.Uint16(b[cgroupOp:]),
		trunc: le.Uint16(b[cgroupFlags:])&cgroupFTrunc != 0, path: path,
	}
	switch r.op {
	case cgroupOpRmdir:
	case cgroupOpMkdir, cgroupOpAttach, cgroupOpTask:
		if path == "" || path[0] != '/' {
			return cgroupRec{}, malformed("cgroup %d path %q is not absolute", r.id, path)
		}
	default:
		return cgroupRec{}, malformed("cgroup record op %d unknown", r.op)
	}
	if r.id == 0 {
		return cgroupRec{}, malformed("cgroup record with id 0")
	}
	return r, nil
}

// cgroupState is the Sensor's side of the cgroup index: the index it feeds
// and its counts.
type cgroupState struct {
	index CgroupIndex
	// records counts cgroup records by op (index 0: unused).
	records                [cgroupOpTask + 1]atomic.Uint64
	truncated, knownResets atomic.Uint64
}

// handleCgroup feeds one cgroup record to the index, on the reader goroutine.
func (s *Sensor) handleCgroup(b []byte) {
	r, err := decodeCgroup(b)
	if err != nil {
		if s.decodeErrors.Add(1) <= 10 {
			s.log.Warn("dropped a malformed record", "error", err)
		}
		return
	}
	s.cg.records[r.op].Add(1)
	switch {
	case r.op == cgroupOpRmdir:
		if s.cg.index != nil {
			s.cg.index.Forget(r.id)
		}
	case r.trunc:
		// Not the full path (the kernel did not mark it known either):
		// the index finds it by id, or the next exec or fork resends it.
		s.cg.truncated.Add(1)
	case s.cg.index != nil:
		if !s.cg.index.Learn(r.id, r.path) {
			s.resetKnown(r.id)
		}
	}
}

// fillKnown marks every id the index holds as known to the kernel, so that
// exec and fork records of processes in those cgroups carry no path. It runs
// once the programs are attached: a cgroup created before then and missed by
// the index is sent by the kernel at its next exec or fork.
func (s *Sensor) fillKnown() error {
	if s.cg.index == nil {
		return nil
	}
	m := s.coll.Maps["cgroup_known"]
	if m == nil {
		return fmt.Errorf("fill cgroup_known: no such map")
	}
	var keys []uint64
	s.cg.index.Range(func(id uint64) { keys = append(keys, id) })
	if len(keys) == 0 {
		return nil
	}
	vals := make([]uint8, len(keys))
	for i := range vals {
		vals[i] = 1
	}
	if _, err := m.BatchUpdate(keys, vals, nil); err == nil {
		return nil
	}
	for _, k := range keys { // kernels without batch ops on LRU maps
		if err := m.Update(k, uint8(1), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("fill cgroup_known: %w", err)
		}
	}
	return nil
}

// resetKnown empties cgroup_known after the index emptied itself, keeping
// only keep, which the index has just learned.
func (s *Sensor) resetKnown(keep uint64) {
	s.cg.knownResets.Add(1)
	if s.coll == nil {
		return
	}
	m := s.coll.Maps["cgroup_known"]
	if m == nil {
		return
	}
	var keys []uint64
	var k uint64
	var v uint8
	it := m.Iterate()
	for it.Next(&k, &v) {
		if k != keep {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		_ = m.Delete(k) // an id the kernel evicted or removed meanwhile
	}
	if err := it.Err(); err != nil {
		s.log.Warn("reset cgroup_known", "error", err)
	}
}

func (s *Sensor) cgroupCounters(m map[string]uint64) {
	for op, name := range [...]string{cgroupOpMkdir: "mkdir", cgroupOpRmdir: "rmdir", cgroupOpAttach: "attach", cgroupOpTask: "task"} {
		if name != "" {
			m["cgroup_records_"+name] = s.cg.records[op].Load()
		}
	}
	m["cgroup_paths_truncated"] = s.cg.truncated.Load()
	m["cgroup_known_resets"] = s.cg.knownResets.Load()
}
