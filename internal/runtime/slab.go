package runtime

// slabChunk is how many values one allocation of a slab holds. A value
// kept alive (an event in the export ring, or held as a finding's
// evidence) keeps its chunk alive: small chunks bound that cost.
const slabChunk = 16

// slab hands out zeroed values of T carved from chunks, one allocation per
// slabChunk values instead of one each. Values are never handed out twice
// and never returned: the garbage collector frees a chunk once none of its
// values is referenced. The zero value is ready to use; it is not safe for
// concurrent use.
type slab[T any] struct {
	free []T
}

// new returns a pointer to a zeroed T.
func (s *slab[T]) new() *T {
	if len(s.free) == 0 {
		s.free = make([]T, slabChunk)
	}
	v := &s.free[0]
	s.free = s.free[1:]
	return v
}
