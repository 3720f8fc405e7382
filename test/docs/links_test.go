package docs

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

const root = "../.."

// markdownFiles returns README.md and every .md file under docs/.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files := []string{filepath.Join(root, "README.md")}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk docs/: %v", err)
	}
	return files
}

var (
	inlineLink = regexp.MustCompile(`!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	refLink    = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$`)
	htmlID     = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	heading    = regexp.MustCompile(`^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$`)
	codeSpan   = regexp.MustCompile("`+[^`]*`+")
	linkText   = regexp.MustCompile(`!?\[((?:[^\]\\]|\\.)*)\]\([^)]*\)`)
)

// doc is one Markdown file: its links and the anchors it defines.
type doc struct {
	links   []link
	anchors map[string]bool
}

type link struct {
	line   int
	target string
}

func parse(t *testing.T, path string) *doc {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := &doc{anchors: map[string]bool{}}
	seen := map[string]int{}
	fence := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		for _, m := range htmlID.FindAllStringSubmatch(line, -1) {
			d.anchors[m[1]] = true
		}
		if m := heading.FindStringSubmatch(line); m != nil {
			s := slug(m[2])
			if k := seen[s]; k > 0 {
				d.anchors[fmt.Sprintf("%s-%d", s, k)] = true
			} else {
				d.anchors[s] = true
			}
			seen[s]++
		}
		if m := refLink.FindStringSubmatch(line); m != nil {
			d.links = append(d.links, link{n, m[1]})
			continue
		}
		for _, m := range inlineLink.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, ""), -1) {
			d.links = append(d.links, link{n, m[1]})
		}
	}
	return d
}

// slug is GitHub's anchor for a heading: the text without markup,
// lowercased, spaces turned into hyphens, other punctuation dropped.
func slug(h string) string {
	h = linkText.ReplaceAllString(h, "$1")
	h = strings.NewReplacer("`", "", "*", "", `\`, "").Replace(h)
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestNoDeadLinks(t *testing.T) {
	docs := map[string]*doc{}
	get := func(p string) *doc {
		if docs[p] == nil {
			docs[p] = parse(t, p)
		}
		return docs[p]
	}
	files := markdownFiles(t)
	checked := 0
	for _, f := range files {
		for _, l := range get(f).links {
			target := l.target
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			where := fmt.Sprintf("%s:%d: link %q", strings.TrimPrefix(f, root+"/"), l.line, target)
			file, anchor, _ := strings.Cut(target, "#")
			dest := f
			if file != "" {
				dest = filepath.Join(filepath.Dir(f), file)
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s: %s does not exist", where, strings.TrimPrefix(dest, root+"/"))
					continue
				}
			}
			if anchor == "" {
				continue
			}
			if !strings.HasSuffix(dest, ".md") {
				t.Errorf("%s: an anchor into a file that is not Markdown", where)
				continue
			}
			if !get(dest).anchors[anchor] {
				t.Errorf("%s: %s has no heading or anchor %q", where, strings.TrimPrefix(dest, root+"/"), anchor)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative links found: is the parser broken?")
	}
	t.Logf("%d files, %d relative links checked", len(files), checked)
}

func TestSlugsAreGitHubs(t *testing.T) {
	for h, want := range map[string]string{
		"Detection Finding (2004)":       "detection-finding-2004",
		"`sensor --tail -o json`":        "sensor---tail--o-json",
		"ESC — Container escape":         "esc--container-escape",
		"Kernel BTF [docs](x.md)":        "kernel-btf-docs",
		"What happens without cgroup v2": "what-happens-without-cgroup-v2",
	} {
		if got := slug(h); got != want {
			t.Errorf("slug(%q) = %q; want %q", h, got, want)
		}
	}
}

// The team's working notes (the design, the detection catalog and the
// ecosystem survey) are not in the repository: code, comments and docs point at docs/ instead.
func TestNoReferencesToDocumentsOutsideTheRepo(t *testing.T) {
	names := []string{"DESIGN" + ".md", "detections" + ".md", "ecosystem" + ".md"}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(p) {
		case ".o", ".so", ".a", ".gz", ".tgz", ".png":
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil || bytes.IndexByte(b, 0) >= 0 {
			return nil // unreadable or binary
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, n := range names {
				if strings.Contains(line, n) {
					t.Errorf("%s:%d names %s, which is not in the repository; point at the doc in docs/ that says it", strings.TrimPrefix(p, root+"/"), i+1, n)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
