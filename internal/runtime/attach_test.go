package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCgroupV2Root(t *testing.T) {
	tests := []struct {
		file, want, err string
	}{
		{"hybrid", "/sys/fs/cgroup/unified", ""},
		{"unified", "/sys/fs/cgroup", ""},
		{"escaped", "/mnt/cg v2", ""},
		{"v1only", "", "no cgroup2 mount"},
		{"missing", "", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := cgroupV2Root(filepath.Join("testdata", "mountinfo", tt.file))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %q, %v; want error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestCheckPrivileges(t *testing.T) {
	err := CheckPrivileges()
	if os.Geteuid() == 0 {
		if err != nil {
			t.Fatalf("as root: %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), "CAP_BPF") || !strings.Contains(err.Error(), "run as root") {
		t.Fatalf("as uid %d: %v; want the missing capabilities named", os.Geteuid(), err)
	}
}
