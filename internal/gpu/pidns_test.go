package gpu

import (
	"os"
	"path/filepath"
	"testing"
)

func TestInHostPIDNamespace(t *testing.T) {
	mk := func(t *testing.T, self, host string) string {
		t.Helper()
		root := t.TempDir()
		for pid, target := range map[string]string{"self": self, "2": host} {
			if target == "" {
				continue
			}
			dir := filepath.Join(root, pid, "ns")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(dir, "pid")); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	tests := []struct {
		name, self, host string
		want, wantErr    bool
	}{
		{"host", "pid:[4026531836]", "pid:[4026531836]", true, false},
		{"pod without hostPID", "pid:[4026532555]", "pid:[4026531836]", false, false},
		{"PID 2 unreadable", "pid:[4026532555]", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := inHostPIDNamespace(mk(t, tt.self, tt.host))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
