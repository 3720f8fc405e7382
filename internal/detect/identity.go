package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Who an actor is, for exemptions: model updaters and loaders.

type workloadGlobs struct {
	w     workload
	globs []string
}

// IsModelUpdater reports whether p may write model files in c
// (model_updaters): a glob without a space matches the exe (or argv[0])
// basename, one with a space matches "<basename> <args>" from its start;
// "*" matches any run of characters, "/" included.
func (a *aiState) IsModelUpdater(p *event.Process, c *event.Container) bool {
	if p == nil || len(a.updaters) == 0 {
		return false
	}
	var line string
	for i := range a.updaters {
		if !a.updaters[i].w.matches(c) {
			continue
		}
		for _, g := range a.updaters[i].globs {
			if !strings.Contains(g, " ") {
				if globMatch(g, exeBase(p)) || globMatch(g, argv0Base(p)) {
					return true
				}
				continue
			}
			if line == "" {
				line = baseCmdline(p)
			}
			if globMatch(g, line) || globMatch(g+" *", line) {
				return true
			}
		}
	}
	return false
}

// globMatch matches s against pattern with '*' (any run, '/' included) and
// '?' (one byte). It runs in O(len(pattern)*len(s)) at worst.
func globMatch(pattern, s string) bool {
	px, sx := 0, 0
	nextP, nextS := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextP, nextS = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if nextS > 0 && nextS <= len(s) {
			px, sx = nextP, nextS
			continue
		}
		return false
	}
	return true
}

// loaderExempt reports whether p may read model files without tainting:
// loader_allowlist, container runtimes and NVIDIA hooks, package managers and
// downloaders — but not a downloader started as an uploader (wget
// --post-file, curl -T with -o), which reads the file to send it.
func (a *aiState) loaderExempt(p *event.Process, c *event.Container) bool {
	return a.s.IsLoaderAllowed(c, p.Exe) || a.s.IsLoaderAllowed(c, p.Comm) || a.s.IsRuntime(p.Exe) ||
		IsNVHook(p.Exe) || installTool(p) != "" && transferTool(p) == ""
}
