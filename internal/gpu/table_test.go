package gpu

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/event"
)

func tableSnapshot() Snapshot {
	return Snapshot{
		State: "nvml ok (3 GPUs, driver 580.95.05)",
		Devices: []Device{
			{Index: 0, UUID: "GPU-00000000-0000-0000-0000-000000000000", Name: "NVIDIA H100 80GB HBM3", Owners: []Owner{
				{PID: 4242, UsedBytes: 17*gib + 512*mib, Type: ownerCompute, HasUtil: true, SMUtil: 93},
				{PID: 77, UsedBytes: 300 * mib, Type: ownerCompute},
			}},
			{Index: 1, UUID: "GPU-00000000-0000-0000-0000-000000000001", Name: "NVIDIA H100 80GB HBM3"},
			{Index: 2, UUID: "GPU-00000000-0000-0000-0000-000000000002", MIGEnabled: true},
			{Index: 2, UUID: "GPU-00000000-0000-0000-0000-000000000002", MIG: "MIG-aaaaaaaa-0000-0000-0000-000000000000",
				Owners: []Owner{{PID: 500, UsedBytes: 1000}}},
		},
	}
}

func tableResolver(pid uint32) (*event.Process, *event.Container) {
	switch pid {
	case 4242:
		return &event.Process{PID: 4242, Exe: "/usr/bin/python3.11"},
			&event.Container{ID: "3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e", Name: "infer", Pod: "llama-0", Namespace: "ml"}
	case 500:
		return &event.Process{PID: 500, Exe: "/opt/triton/bin/tritonserver"}, nil
	}
	return nil, nil
}

func TestWriteTableGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, tableSnapshot(), tableResolver); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/table.golden"
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("got\n%s\nwant\n%s", buf.Bytes(), want)
	}
}

func TestWriteTableNilResolver(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, tableSnapshot(), nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte("4242  ?")) {
		t.Errorf("unknown exe not shown as ?:\n%s", buf.Bytes())
	}
}

func TestInventory(t *testing.T) {
	inv := Inventory(tableSnapshot(), tableResolver)
	if len(inv) != 4 {
		t.Fatalf("got %d GPUs; want 4 (3 GPUs and a MIG instance)", len(inv))
	}
	g := inv[0]
	if g.UUID != "GPU-00000000-0000-0000-0000-000000000000" || g.Name != "NVIDIA H100 80GB HBM3" || len(g.Owners) != 2 {
		t.Fatalf("GPU 0: got %+v", g)
	}
	o := g.Owners[0]
	if o.Process.Exe != "/usr/bin/python3.11" || o.Container == nil || o.Container.Pod != "llama-0" || o.UsedBytes != 17*gib+512*mib {
		t.Errorf("owner 4242: got process %+v container %+v used %d", o.Process, o.Container, o.UsedBytes)
	}
	if u := g.Owners[1]; u.Process == nil || u.Process.PID != 77 || u.Process.Comm != event.Unknown || u.Container != nil {
		t.Errorf("unresolved owner 77: got %+v / %+v; want pid 77, comm unknown, no container", u.Process, u.Container)
	}
	if inv[3].MIG != "MIG-aaaaaaaa-0000-0000-0000-000000000000" || inv[3].Index != 2 {
		t.Errorf("MIG instance: got %+v", inv[3])
	}
}

// A process may name its executable anything: a newline and a forged row, a
// tab (a tabwriter cell), an ANSI sequence, a bidi override, a 0xff byte
// (tabwriter's escape character). Each owner stays one row, escaped.
func TestWriteTableHostileNames(t *testing.T) {
	snap := Snapshot{State: "nvml ok\x1b]0;pwned\x07", Devices: []Device{{Index: 0, UUID: "GPU-0", Owners: []Owner{{PID: 66, UsedBytes: gib}}}}}
	exe := "/tmp/x\n0  GPU-0  1  /usr/bin/python3  -  -  1.0 GiB  -\t\x1b[2J\u202egpj.sh\xff"
	resolve := func(uint32) (*event.Process, *event.Container) {
		return &event.Process{PID: 66, Exe: exe}, &event.Container{ID: "evil\u0085id", Name: "c\tn", Pod: "p\u2066", Namespace: "ns\r"}
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, snap, resolve); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("%d lines; want 3 (state, header, one row):\n%s", n, out)
	}
	for _, r := range strings.TrimSuffix(out, "\n") {
		if r != '\n' && (r < 0x20 || r == 0x7f || !strconv.IsPrint(r)) {
			t.Errorf("%U reaches the terminal raw:\n%q", r, out)
		}
	}
	for _, want := range []string{`/tmp/x\n0  GPU-0`, `\t\x1b[2J\u202egpj.sh\xff`, `c\tn (evil\u0085id)`, `ns\r/p\u2066`, `# nvml ok\x1b]0;pwned\a`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}
