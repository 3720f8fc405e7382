package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/runtime/cri/critest"
)

// tailLine is the part of a --tail -o json line this test reads.
type tailLine struct {
	Kind    string `json:"kind"`
	Process struct {
		PID       int      `json:"pid"`
		Exe       string   `json:"exe"`
		Args      []string `json:"args"`
		Ancestors []struct {
			PID int    `json:"pid"`
			Exe string `json:"exe"`
		} `json:"ancestors"`
	} `json:"process"`
	Container *struct {
		ID        string `json:"id"`
		Runtime   string `json:"runtime"`
		PodUID    string `json:"pod_uid"`
		Pod       string `json:"pod"`
		Namespace string `json:"namespace"`
		Image     string `json:"image"`
	} `json:"container"`
	File *struct {
		Path string `json:"path"`
	} `json:"file"`
	Ready *bool `json:"ready"`
}

// TestContainerPodAndLineageThroughTheSensor runs the real sensor against a
// kubepods-shaped cgroup with a containerd scope and a fake CRI runtime, and
// checks what the on-call engineer sees: container id, runtime, pod UID, pod
// name, namespace, image and lineage on the container's exec; no container on
// a host exec; and a process that started before the sensor attributed
// correctly when it later opens a model file.
func TestContainerPodAndLineageThroughTheSensor(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	bin := buildSensor(t, dir)

	id := randHex(32) // 64 hex characters, as containerd names its scopes
	uid := fmt.Sprintf("%s-%s-%s-%s-%s", randHex(4), randHex(2), randHex(2), randHex(2), randHex(6))
	base := "/sys/fs/cgroup/unified"
	if _, err := os.Stat(filepath.Join(base, "cgroup.procs")); err != nil {
		base = "/sys/fs/cgroup"
	}
	podSlice := "kubepods-besteffort-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"
	dirs := []string{"kubepods.slice", "kubepods-besteffort.slice", podSlice, "cri-containerd-" + id + ".scope"}
	cg := base
	for _, d := range dirs {
		cg = filepath.Join(cg, d)
		if err := os.Mkdir(cg, 0o755); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
		p := cg
		t.Cleanup(func() { os.Remove(p) }) // runs innermost first
	}

	rt := critest.New(filepath.Join(dir, "containerd.sock"), "containerd")
	rt.AddPod(critest.Pod{ID: "sandbox-" + id[:12], Name: "vllm-0", Namespace: "ml", UID: uid})
	// containerd lists only the image id; the status names the image.
	rt.AddContainer(critest.Container{ID: id, PodID: "sandbox-" + id[:12], Name: "server", Image: "nvcr.io/nim/llama:1.0", ImageID: "sha256:" + randHex(32)})
	if err := rt.Start(); err != nil {
		t.Fatal(err)
	}
	defer rt.Stop()

	// A process of the container that is already running when the sensor
	// starts, and opens a model file later.
	model := filepath.Join(dir, "weights.safetensors")
	os.WriteFile(model, make([]byte, 4096), 0o644)
	trigger := filepath.Join(dir, "go")
	early := exec.Command("bash", "-c", `echo $$ > "$0/cgroup.procs"; exec python3 -c "$1" "$2" "$3"`, cg,
		"import os,sys,time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.05)\nopen(sys.argv[2],'rb').close()",
		trigger, model)
	if err := early.Start(); err != nil {
		t.Fatal(err)
	}
	defer early.Process.Kill()
	time.Sleep(300 * time.Millisecond)

	cfg := filepath.Join(dir, "sensor.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("log_level: warn\ncontext:\n  cri_socket: %s\ngpu:\n  source: \"off\"\n", filepath.Join(dir, "containerd.sock"))), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sensor := exec.CommandContext(ctx, bin, "--tail", "--in-process", "-o", "json", "--kind", "exec,open", "--config", cfg)
	sensor.Cancel = func() error { return sensor.Process.Signal(os.Interrupt) }
	sensor.WaitDelay = 10 * time.Second
	out, _ := sensor.StdoutPipe()
	var serr safeBuffer
	sensor.Stderr = &serr
	if err := sensor.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); sensor.Wait() }()
	lines, ready := collectLines(out)
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("sensor not ready: %s", serr.String())
	}

	marker := filepath.Join(dir, "kestrel-marker")
	if err := copyFile("/bin/true", marker); err != nil {
		t.Fatal(err)
	}
	runIn := func(arg string) {
		c := exec.Command("bash", "-c", `echo $$ > "$0/cgroup.procs"; exec unshare --mount --pid --uts --ipc --net --fork -- "$1" "$2"`, cg, marker, arg)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("run marker in container: %v %s", err, out)
		}
	}
	runIn("first")
	time.Sleep(1500 * time.Millisecond) // CRI answers asynchronously; later events carry the pod
	runIn("second")
	exec.Command(marker, "host").Run()
	os.WriteFile(trigger, nil, 0o644)

	var inCtr, onHost, earlyOpen *tailLine
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && (inCtr == nil || onHost == nil || earlyOpen == nil) {
		time.Sleep(200 * time.Millisecond)
		for _, l := range lines.snapshot() {
			switch {
			case l.Kind == "exec" && l.Process.Exe == marker && len(l.Process.Args) > 1 && l.Process.Args[1] == "second":
				inCtr = l
			case l.Kind == "exec" && l.Process.Exe == marker && len(l.Process.Args) > 1 && l.Process.Args[1] == "host":
				onHost = l
			case l.Kind == "open" && l.File != nil && l.File.Path == model && l.Process.PID == early.Process.Pid:
				earlyOpen = l
			}
		}
	}
	if inCtr == nil || onHost == nil || earlyOpen == nil {
		t.Fatalf("missing events: container exec %v, host exec %v, early process open %v\n%s", inCtr != nil, onHost != nil, earlyOpen != nil, serr.String())
	}
	c := inCtr.Container
	if c == nil || c.ID != id || c.Runtime != "containerd" || c.PodUID != uid {
		t.Fatalf("container exec: container %+v; want id %s, runtime containerd, pod uid %s", c, id, uid)
	}
	if c.Pod != "vllm-0" || c.Namespace != "ml" || c.Image != "nvcr.io/nim/llama:1.0" {
		t.Errorf("container exec: pod %q namespace %q image %q; want vllm-0, ml, nvcr.io/nim/llama:1.0 from CRI", c.Pod, c.Namespace, c.Image)
	}
	if len(inCtr.Process.Ancestors) < 2 || !strings.HasSuffix(inCtr.Process.Ancestors[0].Exe, "unshare") {
		t.Errorf("container exec lineage %+v; want unshare first", inCtr.Process.Ancestors)
	}
	if onHost.Container != nil {
		t.Errorf("host exec has container %+v; want null", onHost.Container)
	}
	if ec := earlyOpen.Container; ec == nil || ec.ID != id || !strings.Contains(earlyOpen.Process.Exe, "python3") {
		t.Errorf("process started before the sensor: exe %q container %+v; want python3 in %s", earlyOpen.Process.Exe, ec, id)
	}
	t.Logf("container exec: id %s… runtime %s pod %s/%s uid %s image %s; lineage %d deep", id[:12], c.Runtime, c.Namespace, c.Pod, c.PodUID, c.Image, len(inCtr.Process.Ancestors))
}

type lineLog struct {
	mu    sync.Mutex
	lines []*tailLine
}

func (l *lineLog) snapshot() []*tailLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*tailLine(nil), l.lines...)
}

// collectLines reads JSON lines until r closes; ready closes on the first
// ready status line.
func collectLines(r io.Reader) (*lineLog, <-chan struct{}) {
	log := &lineLog{}
	ready := make(chan struct{})
	go func() {
		var once sync.Once
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var l tailLine
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue
			}
			if l.Kind == "status" && l.Ready != nil && *l.Ready {
				once.Do(func() { close(ready) })
				continue
			}
			log.mu.Lock()
			log.lines = append(log.lines, &l)
			log.mu.Unlock()
		}
	}()
	return log, ready
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

type rawLog struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (l *rawLog) snapshot() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]any(nil), l.lines...)
}

// collectRaw reads JSON lines as maps until r closes; ready closes on the
// first ready status line.
func collectRaw(r io.Reader) (*rawLog, <-chan struct{}) {
	log := &rawLog{}
	ready := make(chan struct{})
	go func() {
		var once sync.Once
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			if m["kind"] == "status" && m["ready"] == true {
				once.Do(func() { close(ready) })
				continue
			}
			log.mu.Lock()
			log.lines = append(log.lines, m)
			log.mu.Unlock()
		}
	}()
	return log, ready
}
