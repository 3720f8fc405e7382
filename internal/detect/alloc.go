package detect

import (
	"strconv"
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// alloc(c) of the catalog: the GPUs a container was given, from the
// enricher, NVIDIA_VISIBLE_DEVICES or gpu.static_alloc (GPU-002/003/007).

// alloc is alloc(c) of the catalog: the GPUs a container was given.
type alloc struct {
	known bool // false: nothing says what c was given
	all   bool // NVIDIA_VISIBLE_DEVICES=all
	uuids []string
	idx   []int
	src   string // podresources, env, static_alloc, pod
}

func (al alloc) empty() bool { return al.known && !al.all && len(al.uuids) == 0 && len(al.idx) == 0 }

// has reports whether GPU (index, uuid, mig) is in the allocation; an
// unknown allocation has every GPU.
func (al alloc) has(index int, uuid, mig string) bool {
	if !al.known || al.all {
		return true
	}
	for _, u := range al.uuids {
		if u != "" && (u == uuid || u == mig) {
			return true
		}
	}
	for _, i := range al.idx {
		if i == index && index >= 0 {
			return true
		}
	}
	return false
}

// hasIndex reports whether GPU index i is in the allocation, mapping the
// allocation's UUIDs to indexes through the GPUs the inventory saw. ok is
// false when that cannot be decided.
func (a *aiState) hasIndex(al alloc, i int) (has, ok bool) {
	if !al.known {
		return false, false
	}
	if al.all {
		return true, true
	}
	for _, x := range al.idx {
		if x == i {
			return true, true
		}
	}
	if len(al.uuids) == 0 {
		return false, true
	}
	for _, u := range al.uuids {
		idx, known := a.inv.indexOf(u)
		if !known {
			return false, false
		}
		if idx == i {
			return true, true
		}
	}
	return false, true
}

// allocOf resolves alloc(c) in the catalog's order: the enricher's
// assignment (Container.GPUs: kubelet PodResources, or gpu.static_alloc as
// UUIDs; nil means unknown, a non-nil empty list means none) >
// NVIDIA_VISIBLE_DEVICES of the container's first process >
// AIOptions.StaticAlloc; a pod the enricher knows that has none of these
// was given no GPU.
func (a *aiState) allocOf(c *event.Container) alloc {
	if c == nil {
		return alloc{}
	}
	if c.GPUs != nil {
		// The enricher's assignment (PodResources, or gpu.static_alloc
		// mapped to UUIDs); a non-nil empty list means "given none".
		return alloc{known: true, uuids: c.GPUs, src: "assigned"}
	}
	if cs, ok := a.ctrs.Peek(c.ID); ok && cs.nvSeen {
		return parseVisible(cs.nvVisible)
	}
	if a.static != nil {
		if idx, ok := a.static(c.CgroupPath); ok {
			return alloc{known: true, idx: idx, src: "static_alloc"}
		}
	}
	if c.PodUID != "" && c.PodUID != event.Unknown {
		return alloc{known: true, src: "pod"}
	}
	return alloc{}
}

func parseVisible(v string) alloc {
	al := alloc{known: true, src: "env"}
	switch strings.TrimSpace(v) {
	case "", "void", "none", "NoDevFiles":
		return al
	case "all":
		al.all = true
		return al
	}
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if n, err := strconv.Atoi(f); err == nil {
			al.idx = append(al.idx, n)
		} else if f != "" {
			al.uuids = append(al.uuids, f)
		}
	}
	return al
}

// isInference is inference(c): the container was given or used a GPU, or
// matches inference_selector.
func (a *aiState) isInference(st *State, c *event.Container) bool {
	if c == nil {
		return false
	}
	if st.IsGPUContainer(c) || a.s.MatchesInferenceSelector(c) {
		return true
	}
	al := a.allocOf(c)
	return al.known && !al.empty()
}
