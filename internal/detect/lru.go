package detect

// LRU is a bounded map that evicts its least recently used entry when full.
// Nodes are preallocated, so Put and Get do not allocate once the map has
// reached its capacity (keys and values that are strings are stored by
// reference, not copied). It is not safe for concurrent use.
type LRU[K comparable, V any] struct {
	idx        map[K]int32
	nodes      []lruNode[K, V]
	head, tail int32 // most and least recently used; -1 when empty
	free       int32 // first free node; -1 when none
	evictions  uint64
	onEvict    func(K, V)
}

type lruNode[K comparable, V any] struct {
	key        K
	val        V
	prev, next int32
}

// NewLRU returns an LRU holding at most capacity entries (at least 1).
// onEvict, if not nil, is called for entries pushed out by capacity (not for
// Delete).
func NewLRU[K comparable, V any](capacity int, onEvict func(K, V)) *LRU[K, V] {
	if capacity < 1 {
		capacity = 1
	}
	l := &LRU[K, V]{
		idx:     make(map[K]int32, capacity),
		nodes:   make([]lruNode[K, V], capacity),
		head:    -1,
		tail:    -1,
		onEvict: onEvict,
	}
	for i := range l.nodes {
		l.nodes[i].next = int32(i + 1)
	}
	l.nodes[capacity-1].next = -1
	l.free = 0
	return l
}

// Len returns the number of entries.
func (l *LRU[K, V]) Len() int { return len(l.idx) }

// Evictions returns how many entries were pushed out by capacity.
func (l *LRU[K, V]) Evictions() uint64 { return l.evictions }

// Get returns the value for k and marks it recently used.
func (l *LRU[K, V]) Get(k K) (V, bool) {
	i, ok := l.idx[k]
	if !ok {
		var zero V
		return zero, false
	}
	l.moveFront(i)
	return l.nodes[i].val, true
}

// Peek returns the value for k without changing its recency.
func (l *LRU[K, V]) Peek(k K) (V, bool) {
	i, ok := l.idx[k]
	if !ok {
		var zero V
		return zero, false
	}
	return l.nodes[i].val, true
}

// Ptr returns a pointer to the value for k, valid until the next Put or
// Delete, and marks it recently used.
func (l *LRU[K, V]) Ptr(k K) *V {
	i, ok := l.idx[k]
	if !ok {
		return nil
	}
	l.moveFront(i)
	return &l.nodes[i].val
}

// Put sets k to v, evicting the least recently used entry when full, and
// returns a pointer to the stored value, valid until the next Put or Delete.
func (l *LRU[K, V]) Put(k K, v V) *V {
	if i, ok := l.idx[k]; ok {
		l.nodes[i].val = v
		l.moveFront(i)
		return &l.nodes[i].val
	}
	if l.free < 0 {
		t := l.tail
		ek, ev := l.nodes[t].key, l.nodes[t].val
		l.remove(t)
		l.evictions++
		if l.onEvict != nil {
			l.onEvict(ek, ev)
		}
	}
	i := l.free
	l.free = l.nodes[i].next
	l.nodes[i].key, l.nodes[i].val = k, v
	l.pushFront(i)
	l.idx[k] = i
	return &l.nodes[i].val
}

// Delete removes k.
func (l *LRU[K, V]) Delete(k K) {
	if i, ok := l.idx[k]; ok {
		l.remove(i)
	}
}

// Oldest returns the least recently used entry.
func (l *LRU[K, V]) Oldest() (K, V, bool) {
	if l.tail < 0 {
		var k K
		var v V
		return k, v, false
	}
	n := &l.nodes[l.tail]
	return n.key, n.val, true
}

// Range calls fn for every entry from least to most recently used, until fn
// returns false. fn must not modify l.
func (l *LRU[K, V]) Range(fn func(K, V) bool) {
	for i := l.tail; i >= 0; i = l.nodes[i].prev {
		if !fn(l.nodes[i].key, l.nodes[i].val) {
			return
		}
	}
}

func (l *LRU[K, V]) remove(i int32) {
	n := &l.nodes[i]
	delete(l.idx, n.key)
	if n.prev >= 0 {
		l.nodes[n.prev].next = n.next
	} else {
		l.head = n.next
	}
	if n.next >= 0 {
		l.nodes[n.next].prev = n.prev
	} else {
		l.tail = n.prev
	}
	var zk K
	var zv V
	n.key, n.val = zk, zv
	n.prev = -1
	n.next = l.free
	l.free = i
}

func (l *LRU[K, V]) pushFront(i int32) {
	n := &l.nodes[i]
	n.prev = -1
	n.next = l.head
	if l.head >= 0 {
		l.nodes[l.head].prev = i
	}
	l.head = i
	if l.tail < 0 {
		l.tail = i
	}
}

func (l *LRU[K, V]) moveFront(i int32) {
	if l.head == i {
		return
	}
	n := &l.nodes[i]
	// unlink
	l.nodes[n.prev].next = n.next
	if n.next >= 0 {
		l.nodes[n.next].prev = n.prev
	} else {
		l.tail = n.prev
	}
	l.pushFront(i)
}
