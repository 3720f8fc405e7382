package export

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// The encoder keeps the encoded fields of process objects by snapshot: an
// event of another process, or of the same process in another container,
// must never get them, and encoders racing on one table must agree.
func TestOCSFProcessObjectsBySnapshot(t *testing.T) {
	enc := testEncoder()
	fresh := testEncoder()
	base := ocsfFixtures()["file_open"]
	other := *base.Process
	other.PID, other.Exe, other.Args = 4343, "/usr/bin/other", []string{"other", "--flag"}
	ctr2 := *base.Container
	ctr2.ID, ctr2.Name = strings.Repeat("b", 64), "sidecar"
	variants := []*event.Event{
		base,
		{Kind: base.Kind, Time: base.Time, Seq: 2, Process: &other, Container: base.Container, File: base.File},
		{Kind: base.Kind, Time: base.Time, Seq: 3, Process: base.Process, Container: &ctr2, File: base.File},
		{Kind: base.Kind, Time: base.Time, Seq: 4, Process: base.Process, File: base.File},
	}
	for round := range 2 { // the second round hits the table
		for i, ev := range variants {
			got, err := enc.Encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			want, err := fresh.Encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			fresh = testEncoder() // encode want without the table's help
			if !bytes.Equal(got, want) {
				t.Errorf("round %d, variant %d:\n got %s\nwant %s", round, i, got, want)
			}
		}
	}

	var wg sync.WaitGroup
	want := make([][]byte, len(variants))
	for i, ev := range variants {
		want[i], _ = testEncoder().Encode(ev)
	}
	shared := testEncoder()
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 4096)
			for i := range 2000 {
				k := (i + g) % len(variants)
				var err error
				if buf, err = shared.AppendEncode(buf[:0], variants[k]); err != nil || !bytes.Equal(buf, want[k]) {
					t.Errorf("concurrent encode of variant %d: %v\n got %s\nwant %s", k, err, buf, want[k])
					return
				}
			}
		}()
	}
	wg.Wait()
}
