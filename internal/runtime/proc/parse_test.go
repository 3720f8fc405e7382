package proc

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    Stat
		wantErr bool
	}{
		{"kthreadd", fixture(t, "stat.kthreadd"), Stat{PID: 2, Comm: "kthreadd", State: 'S', PPID: 0, Flags: 2129984, StartTicks: 13}, false},
		{"comm with parens and spaces", fixture(t, "stat.weird"), Stat{PID: 4711, Comm: "my (weird) comm", State: 'S', PPID: 1, Flags: 4194560, StartTicks: 123456}, false},
		{"empty", nil, Stat{}, true},
		{"no comm", []byte("12 S 1"), Stat{}, true},
		{"short", []byte("12 (x) S 1 2 3"), Stat{}, true},
		{"bad pid", []byte("x (a) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0"), Stat{}, true},
		{"bad ppid", []byte("3 (a) S -1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0"), Stat{}, true},
		{"bad state", []byte("3 (a) SS 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0"), Stat{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat(tt.in)
			if tt.wantErr {
				if err == nil || !errors.Is(err, ErrMalformed) {
					t.Fatalf("got %+v, %v; want an ErrMalformed error", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v; want %+v", got, tt.want)
			}
		})
	}
	if s, _ := ParseStat(fixture(t, "stat.kthreadd")); s.Flags&PFKthread == 0 {
		t.Error("kthreadd: PF_KTHREAD not set")
	}
}

func TestParseStatus(t *testing.T) {
	s, err := ParseStatus(fixture(t, "status.self"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "cat" || s.Tgid == 0 || s.Seen&SeenNSpid == 0 || len(s.NSpid) == 0 {
		t.Errorf("got %+v", s)
	}
	in := []byte("Name:\tsh\nTgid:\t10\nPPid:\t1\nUid:\t1000\t0\t1000\t1000\nGid:\t5 5 5 5\nCapEff:\t000001ffffffffff\nCapPrm:\t0000000000000000\nNSpid:\t10\t1\n")
	s, err = ParseStatus(in)
	if err != nil {
		t.Fatal(err)
	}
	want := Status{Name: "sh", Tgid: 10, PPid: 1, UID: [4]uint32{1000, 0, 1000, 1000}, GID: [4]uint32{5, 5, 5, 5},
		CapEff: 0x1ffffffffff, NSpid: []uint32{10, 1}, Seen: s.Seen}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got %+v; want %+v", s, want)
	}
	for _, bad := range []string{
		"",
		"Name:\tsh\nTgid:\t10\nPPid:\t1\n", // no Uid
		"Name:\tsh\nTgid:\tx\nPPid:\t1\nUid:\t0 0 0 0\n", // bad tgid
		"Name:\tsh\nTgid:\t1\nPPid:\t1\nUid:\t0 0 0\n",   // 3 uids
		"Name:\tsh\nTgid:\t1\nPPid:\t1\nUid:\t0 0 0 0\nCapEff:\tzz\n",
	} {
		if _, err := ParseStatus([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseStatus(%q): got %v; want ErrMalformed", bad, err)
		}
	}
}

func TestParseCgroup(t *testing.T) {
	cg, err := ParseCgroup(fixture(t, "cgroup.k8s"))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := cg.V2(); !ok || p != "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0e6c4ba8_5b31_4a3e_9f55_2c8b1b8e2f11.slice/cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope" {
		t.Errorf("V2() = %q, %v", p, ok)
	}
	cg, err = ParseCgroup(fixture(t, "cgroup.hybrid"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cg) < 2 {
		t.Fatalf("hybrid: got %d entries; want v1 and v2 lines", len(cg))
	}
	if _, ok := cg.V2(); !ok {
		t.Error("hybrid: no v2 line")
	}
	// A v1 controller line whose controllers list is empty is not v2
	// unless its hierarchy id is 0.
	if _, ok := (Cgroups{{Hierarchy: 3, Path: "/"}}).V2(); ok {
		t.Error("V2 accepted a v1 line")
	}
	for _, bad := range []string{"0:/", "x::/", "0::relative", "-1::/"} {
		if _, err := ParseCgroup([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseCgroup(%q): got %v; want ErrMalformed", bad, err)
		}
	}
}

func TestParseMountinfo(t *testing.T) {
	ms, err := ParseMountinfo(fixture(t, "mountinfo.v2"))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := CgroupV2Mount(ms); !ok || p != "/sys/fs/cgroup" {
		t.Errorf("v2: CgroupV2Mount = %q, %v; want /sys/fs/cgroup", p, ok)
	}
	if ms[2].Point != "/mnt/with space" {
		t.Errorf("unescape: got %q", ms[2].Point)
	}
	ms, err = ParseMountinfo(fixture(t, "mountinfo.hybrid"))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := CgroupV2Mount(ms); !ok || p != "/sys/fs/cgroup/unified" {
		t.Errorf("hybrid: CgroupV2Mount = %q, %v; want /sys/fs/cgroup/unified", p, ok)
	}
	if _, ok := CgroupV2Mount(nil); ok {
		t.Error("no mounts: found a cgroup2 mount")
	}
	for _, bad := range []string{"1 2 3", "a b 0:1 / /x rw - tmpfs tmpfs rw", "1 2 0:1 / - tmpfs"} {
		if _, err := ParseMountinfo([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseMountinfo(%q): got %v; want ErrMalformed", bad, err)
		}
	}
}

func TestParseNSLinkAndCmdline(t *testing.T) {
	if n, err := ParseNSLink("mnt:[4026531832]"); err != nil || n != 4026531832 {
		t.Errorf("ParseNSLink = %d, %v", n, err)
	}
	for _, bad := range []string{"mnt:", "mnt:[x]", "mnt:[4026531832", "[99999999999]"} {
		if _, err := ParseNSLink(bad); err == nil {
			t.Errorf("ParseNSLink(%q): no error", bad)
		}
	}
	if got := SplitCmdline([]byte("python3\x00-m\x00http.server\x00"), 64); !reflect.DeepEqual(got, []string{"python3", "-m", "http.server"}) {
		t.Errorf("SplitCmdline = %q", got)
	}
	if got := SplitCmdline([]byte("a\x00b\x00c\x00"), 2); len(got) != 2 {
		t.Errorf("SplitCmdline limit: got %q", got)
	}
	if got := SplitCmdline(nil, 2); got != nil {
		t.Errorf("SplitCmdline(nil) = %q", got)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add(fixture(f, "stat.kthreadd"))
	f.Add(fixture(f, "stat.weird"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStat(b)
		if err == nil && len(s.Comm) > len(b) {
			t.Fatalf("comm longer than input")
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add(fixture(f, "status.self"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStatus(b)
		if err == nil && len(s.NSpid) > 32 {
			t.Fatalf("NSpid unbounded: %d", len(s.NSpid))
		}
	})
}

func FuzzParseCgroup(f *testing.F) {
	f.Add(fixture(f, "cgroup.k8s"))
	f.Add(fixture(f, "cgroup.hybrid"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cg, err := ParseCgroup(b)
		if err != nil {
			return
		}
		if len(cg) > MaxCgroupLines {
			t.Fatalf("%d lines", len(cg))
		}
		if p, ok := cg.V2(); ok && (p == "" || p[0] != '/') {
			t.Fatalf("v2 path %q", p)
		}
	})
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add(fixture(f, "mountinfo.v2"))
	f.Add(fixture(f, "mountinfo.hybrid"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseMountinfo(b)
		if err != nil {
			return
		}
		if p, ok := CgroupV2Mount(ms); ok && p == "" && len(ms) == 0 {
			t.Fatal("mount found in nothing")
		}
	})
}
