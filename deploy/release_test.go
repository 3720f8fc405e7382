package deploy

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/mod/semver"
	"sigs.k8s.io/yaml"
)

const repoRoot = ".."

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// scripts/version.sh turns git tags into the semantic version make build
// stamps.
func TestVersionFromGitTags(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git on PATH")
	}
	script, err := filepath.Abs(filepath.Join(repoRoot, "scripts", "version.sh"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	version := func() string {
		out, err := exec.Command(script, dir).Output()
		if err != nil {
			t.Fatalf("version.sh: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	if got := version(); got != "v0.0.0-dev+unknown" {
		t.Errorf("outside git: %q", got)
	}
	git(t, dir, "init", "-q")
	commit := func(msg string) string {
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte(msg), 0o644); err != nil {
			t.Fatal(err)
		}
		git(t, dir, "add", "f")
		git(t, dir, "commit", "-q", "-m", msg)
		return git(t, dir, "rev-parse", "--short=12", "HEAD")
	}
	c := commit("one")
	steps := []struct {
		do   func() string
		want string
	}{
		{func() string { return c }, "v0.0.0-dev+%c"},
		{func() string { git(t, dir, "tag", "v1.2"); return c }, "v0.0.0-dev+%c"}, // not semver: not a release
		{func() string { git(t, dir, "tag", "v1.2.3"); return c }, "v1.2.3"},
		{func() string { os.WriteFile(filepath.Join(dir, "f"), []byte("edit"), 0o644); return c }, "v1.2.3+dirty"},
		{func() string { return commit("two") }, "v1.2.4-dev.1+%c"},
		{func() string { commit("three"); return git(t, dir, "rev-parse", "--short=12", "HEAD") }, "v1.2.4-dev.2+%c"},
		{func() string { git(t, dir, "tag", "-a", "-m", "rc", "v1.3.0-rc.1"); return commit("four") }, "v1.3.0-rc.1.dev.1+%c"},
		{func() string {
			os.WriteFile(filepath.Join(dir, "f"), []byte("edit2"), 0o644)
			return git(t, dir, "rev-parse", "--short=12", "HEAD")
		}, "v1.3.0-rc.1.dev.1+%c.dirty"},
	}
	for i, s := range steps {
		c := s.do()
		want := strings.ReplaceAll(s.want, "%c", c)
		got := version()
		if got != want {
			t.Errorf("step %d: %q; want %q", i, got, want)
		}
		if !semver.IsValid(got) {
			t.Errorf("step %d: %q is not a semantic version", i, got)
		}
	}
}

type chartMeta struct {
	Version    string `json:"version"`
	AppVersion string `json:"appVersion"`
}

func readChart(t *testing.T) chartMeta {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c chartMeta
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// The chart's appVersion is the image tag the manifest deploys, and a
// release tag finds the chart at that version: a tagged release cannot
// deploy an image of another version.
func TestChartVersionFollowsTheRelease(t *testing.T) {
	c := readChart(t)
	if !semver.IsValid(c.AppVersion) || semver.Build(c.AppVersion) != "" || strings.Contains(c.AppVersion, "dev") {
		t.Errorf("appVersion %q is not a release version vX.Y.Z[-pre]", c.AppVersion)
	}
	if "v"+c.Version != c.AppVersion {
		t.Errorf("chart version %q and appVersion %q differ: make release-files VERSION=%s sets both", c.Version, c.AppVersion, c.AppVersion)
	}
	raw, err := os.ReadFile("daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := "image: ghcr.io/kestrel-sec/kestrel:" + c.AppVersion + "\n"; !strings.Contains(string(raw), want) {
		t.Errorf("daemonset.yaml does not deploy %q", strings.TrimSpace(want))
	}
	if _, err := exec.LookPath("git"); err != nil {
		return
	}
	cmd := exec.Command("git", "describe", "--tags", "--exact-match", "--match", "v[0-9]*", "HEAD")
	cmd.Dir = repoRoot
	if out, err := cmd.Output(); err == nil {
		if tag := strings.TrimSpace(string(out)); tag != c.AppVersion {
			t.Errorf("HEAD is release %s, but the chart deploys %s: run make release-files VERSION=%s", tag, c.AppVersion, tag)
		}
	}
}

// The Dockerfile's bases are pinned by digest, build and run on the same
// glibc (NVML is dlopen'ed through cgo), with at least go.mod's Go, and the
// build stage runs `make build` (TestImageBuildContext runs it too).
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	from := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(string(raw), -1)
	if len(from) != 2 {
		t.Fatalf("%d FROM lines; want a build and a runtime stage", len(from))
	}
	pinned := regexp.MustCompile(`^([^:@]+):([^@]+)@sha256:[0-9a-f]{64}$`)
	var bases [2][]string
	for i, f := range from {
		m := pinned.FindStringSubmatch(f[1])
		if m == nil {
			t.Fatalf("base %s is not name:tag@sha256:<digest>", f[1])
		}
		bases[i] = m[1:]
	}
	build, run := bases[0], bases[1]
	goTag := regexp.MustCompile(`^(\d+\.\d+(?:\.\d+)?)-bookworm$`).FindStringSubmatch(build[1])
	if build[0] != "golang" || goTag == nil {
		t.Errorf("build stage %v: want golang:<version>-bookworm (Debian 12, as the runtime)", build)
	} else {
		mod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		want := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
		if want == nil || semver.Compare("v"+goTag[1], "v"+string(want[1])) < 0 {
			t.Errorf("the build stage's Go %s is older than go.mod's %s", goTag[1], want[1])
		}
	}
	if run[0] != "gcr.io/distroless/base-debian12" {
		t.Errorf("runtime stage %v: want gcr.io/distroless/base-debian12 (glibc, Debian 12 as the build)", run)
	}
	if !regexp.MustCompile(`(?m)^\s+make build BIN=/out/sensor VERSION="\$VERSION" COMMIT="\$COMMIT"`).Match(raw) {
		t.Error("the build stage does not run make build with the version and commit")
	}
	if !strings.Contains(string(raw), `ENTRYPOINT ["/usr/bin/sensor"]`) {
		t.Error("no ENTRYPOINT /usr/bin/sensor")
	}
}

// The image's build context is what .dockerignore lets through: no .git,
// build outputs, tests or charts, and enough to build the sensor with the
// Dockerfile's own command, which this test runs in a copy of that context.
func TestImageBuildContext(t *testing.T) {
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(rel string) bool {
		ex, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}
	for _, p := range []string{".git/HEAD", "bin/sensor", "charts/kestrel/values.yaml", "test/e2e/harness_test.go",
		"internal/runtime/attach_test.go", "internal/export/testdata/x.golden", "deploy/daemonset.yaml", "docs/x.md", "e2e.test"} {
		if !excluded(p) {
			t.Errorf("%s would be sent to the image build", p)
		}
	}
	ctx := t.TempDir()
	var files int
	err = filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repoRoot, p)
		if err != nil || rel == "." {
			return err
		}
		if excluded(rel) {
			if d.IsDir() {
				return filepath.SkipDir // no pattern brings a file back from below it
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(ctx, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		return os.WriteFile(filepath.Join(ctx, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, need := range []string{"go.mod", "Makefile", "cmd/sensor/main.go", "internal/runtime/sensor_bpfel.o"} {
		if _, err := os.Stat(filepath.Join(ctx, need)); err != nil {
			t.Errorf("the build context lacks %s", need)
		}
	}
	if testing.Short() {
		t.Skip("the build in the image's context compiles the sensor; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "sensor")
	build := exec.Command("make", "build", "BIN="+bin, "VERSION=v1.2.3-rc.1", "COMMIT=0123456789abcdef0123456789abcdef01234567")
	build.Dir = ctx
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build in the image's build context (%d files): %v\n%s", files, err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d files in the context; sensor --version:\n%s", files, out)
	for _, want := range []string{"sensor v1.2.3-rc.1\n", "commit:      0123456789abcdef0123456789abcdef01234567\n", "cilium/ebpf: v0."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("sensor --version lacks %q", want)
		}
	}
}

// make test checks what it needs before any test runs, and names each
// missing tool with the package to install, instead of a scenario failing
// for want of it (no modprobe: no init_module, so "A3: MISSING ESC-008").
func TestPreflightNamesWhatIsMissing(t *testing.T) {
	bin := t.TempDir()
	// Everything the script and the tests run, except kmod's and logrotate's.
	for _, tool := range []string{"bash", "env", "go", "sed", "sort", "grep", "id", "uname", "head",
		"make", "git", "gcc", "python3", "perl", "curl", "wget", "tar", "gzip", "sha256sum", "base64", "split",
		"dd", "tee", "timeout", "find", "xargs", "unshare", "nsenter", "mount", "flock", "setpriv", "ip",
		"pgrep", "ps", "iptables", "scp", "ssh"} {
		if p, err := exec.LookPath(tool); err == nil {
			if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd := exec.Command(filepath.Join(repoRoot, "scripts", "preflight.sh"))
	cmd.Env = append(os.Environ(), "PATH="+bin)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("preflight without modprobe: %v; want exit code 1\n%s", err, out)
	}
	for _, want := range []string{"command modprobe (package kmod)", "command rmmod (package kmod)",
		"command logrotate (package logrotate)", "apt-get install", "sudo make deps"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("preflight output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "command python3") && exec.Command("python3", "-V").Run() == nil {
		t.Errorf("preflight names python3, which is there:\n%s", out)
	}
	t.Logf("%s", out)
}
