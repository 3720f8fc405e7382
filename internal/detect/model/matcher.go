// Package model knows what a model file is and keeps the registry of the
// model files a node has loaded.
//
// The Matcher implements the catalog's model_file(path) predicate
// (docs/detection.md#model-files): weight suffixes, the content-addressed stores of
// Hugging Face and Ollama, Triton and TensorRT-LLM layouts, configured model
// roots and a size gate. It runs on the event path, so it uses no regular
// expressions and does not allocate.
//
// The Registry keeps one record per model file (paths, size, inode and
// device, the first loader, the GPU-owning users, a sha256 computed in the
// background at a bounded byte rate). It is bounded by an LRU limit and
// counts everything it drops.
//
// The package imports only internal/event and the standard library.
package model

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kestrel-sec/kestrel/internal/config"
)

// DefaultMinBytes is the default size gate: files known to be smaller are
// not weights (configs, tokenizers and index files are small).
const DefaultMinBytes = 1 << 20

// MaxRoots bounds the number of model roots a Matcher holds, configured and
// added at run time together.
const MaxRoots = 256

// Reasons returned by Matcher.IsModel. A positive match by extension returns
// "suffix " followed by the lower-case suffix, e.g. "suffix .safetensors".
const (
	ReasonHFBlob       = "hf_blob"        // Hugging Face hub cache models--*/blobs/<sha>
	ReasonOllamaBlob   = "ollama_blob"    // Ollama blobs/sha256-<64 hex>
	ReasonTriton       = "triton_repo"    // Triton <repo>/<model>/<version>/model.*
	ReasonTRTLLM       = "trtllm_engine"  // TensorRT-LLM rank<N>.engine
	ReasonSavedModel   = "tf_saved_model" // TensorFlow saved_model.pb
	ReasonTFVariables  = "tf_variables"   // TensorFlow variables.data-*
	ReasonTFCheckpoint = "tf_checkpoint"  // TensorFlow *.ckpt*.data-*
	ReasonNamedBin     = "named_bin"      // pytorch_model*.bin and friends
	ReasonUnderRoot    = "under_root"     // any non-metadata file under a model root

	// ReasonBelowMinSize is returned with false when the path matched but
	// the known size is under the size gate.
	ReasonBelowMinSize = "below_min_size"
	// ReasonSnapshotName is returned with false when a Hugging Face snapshot
	// name (the raw path) says the blob it resolves to is metadata, such as
	// snapshots/<rev>/tokenizer.json.
	ReasonSnapshotName = "snapshot_metadata"
)

// DefaultRoots returns the default model roots
// (docs/detection.md#model-files), as the detect config section defines them. A "*" matches one path
// component.
func DefaultRoots() []string {
	return slices.Clone(config.DefaultModelRoots)
}

// RootEnvNames are the environment variables whose values name model roots
// in a container's first process.
var RootEnvNames = []string{"HF_HOME", "HF_HUB_CACHE", "TRANSFORMERS_CACHE", "OLLAMA_MODELS", "MODEL_PATH", "MODEL_REPO"}

// MatcherOptions are the optional settings of a Matcher. The zero value
// selects the defaults.
type MatcherOptions struct {
	// MinBytes is the size gate: a file whose known size is smaller is not a
	// model. Zero selects DefaultMinBytes; a negative value disables the gate.
	MinBytes int64
}

// Matcher decides whether a path names a model file.
//
// It is safe for concurrent use; AddRoots may run beside IsModel.
type Matcher struct {
	minBytes int64
	mu       sync.Mutex // serialises AddRoots
	roots    atomic.Pointer[rootSet]
}

type rootSet struct {
	literal []string // cleaned, absolute, no glob characters
	globs   []globRoot
	all     map[string]struct{}
}

type globRoot struct {
	pattern string
	prefix  string   // literal part before the first glob character
	parts   []string // components after the leading '/'
	meta    []bool   // whether parts[i] holds glob characters
}

// matchPrefix reports whether the first len(g.parts) components of p match
// the pattern, one component at a time (a lone "*" needs no path.Match).
func (g *globRoot) matchPrefix(p string) bool {
	rest := p[1:]
	for i, part := range g.parts {
		if rest == "" && i < len(g.parts) {
			return false
		}
		comp := rest
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			comp, rest = rest[:j], rest[j+1:]
		} else {
			rest = ""
		}
		switch {
		case !g.meta[i]:
			if comp != part {
				return false
			}
		case part == "*":
			if comp == "" {
				return false
			}
		default:
			if ok, _ := path.Match(part, comp); !ok {
				return false
			}
		}
	}
	return true
}

// NewMatcher returns a Matcher for the given model roots (absolute paths; a
// component may be a path.Match pattern, e.g. /home/*/.cache/huggingface).
// opts may be nil.
func NewMatcher(roots []string, opts *MatcherOptions) (*Matcher, error) {
	m := &Matcher{minBytes: DefaultMinBytes}
	if opts != nil {
		switch {
		case opts.MinBytes < 0:
			m.minBytes = 0
		case opts.MinBytes > 0:
			m.minBytes = opts.MinBytes
		}
	}
	rs := &rootSet{all: make(map[string]struct{})}
	for _, r := range roots {
		if err := rs.add(r); err != nil {
			return nil, err
		}
	}
	m.roots.Store(rs)
	return m, nil
}

// ValidateRoot reports whether r is usable as a model root, and why not.
func ValidateRoot(r string) error {
	_, _, err := cleanRoot(r)
	return err
}

func cleanRoot(r string) (string, bool, error) {
	if r == "" {
		return "", false, errors.New("model root is empty")
	}
	if !strings.HasPrefix(r, "/") {
		return "", false, fmt.Errorf("model root %q is not an absolute path", r)
	}
	c := path.Clean(r)
	if c == "/" {
		return "", false, fmt.Errorf("model root %q would make every file a model", r)
	}
	glob := strings.ContainsAny(c, "*?[\\")
	if glob {
		if _, err := path.Match(c, ""); err != nil {
			return "", false, fmt.Errorf("model root %q: bad pattern: %w", r, err)
		}
	}
	return c, glob, nil
}

func (rs *rootSet) add(r string) error {
	c, glob, err := cleanRoot(r)
	if err != nil {
		return err
	}
	if _, ok := rs.all[c]; ok {
		return nil
	}
	if len(rs.all) >= MaxRoots {
		return fmt.Errorf("model root %q: too many roots (limit %d)", r, MaxRoots)
	}
	rs.all[c] = struct{}{}
	if !glob {
		rs.literal = append(rs.literal, c)
		return nil
	}
	g := globRoot{pattern: c, prefix: c[:strings.IndexAny(c, "*?[\\")], parts: strings.Split(c[1:], "/")}
	for _, part := range g.parts {
		g.meta = append(g.meta, strings.ContainsAny(part, "*?[\\"))
	}
	rs.globs = append(rs.globs, g)
	return nil
}

// hasAll reports whether every root of roots is in rs already.
func (rs *rootSet) hasAll(roots []string) bool {
	for _, r := range roots {
		c, _, err := cleanRoot(r)
		if err != nil {
			return false
		}
		if _, ok := rs.all[c]; !ok {
			return false
		}
	}
	return true
}

func (rs *rootSet) clone() *rootSet {
	n := &rootSet{
		literal: append([]string(nil), rs.literal...),
		globs:   append([]globRoot(nil), rs.globs...),
		all:     make(map[string]struct{}, len(rs.all)+1),
	}
	for k := range rs.all {
		n.all[k] = struct{}{}
	}
	return n
}

// AddRoots adds model roots at run time, for example the values of
// RootEnvNames seen in a container's environment. Roots already known are
// ignored. It adds every valid root and returns how many were new, with an
// error naming the first root it rejected.
func (m *Matcher) AddRoots(roots ...string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.roots.Load()
	if old.hasAll(roots) {
		// Every exec in a container names the same roots again: no copy.
		return 0, nil
	}
	n := old.clone()
	var first error
	for _, r := range roots {
		if err := n.add(r); err != nil && first == nil {
			first = err
		}
	}
	added := len(n.all) - len(old.all)
	if added > 0 {
		m.roots.Store(n)
	}
	return added, first
}

// Roots returns the current model roots, configured first.
func (m *Matcher) Roots() []string {
	rs := m.roots.Load()
	out := append([]string(nil), rs.literal...)
	for _, g := range rs.globs {
		out = append(out, g.pattern)
	}
	return out
}

// UnderRoot reports whether the absolute path p is a model root or lies
// below one.
func (m *Matcher) UnderRoot(p string) bool {
	if len(p) == 0 || p[0] != '/' || hasDotDot(p) {
		return false
	}
	rs := m.roots.Load()
	for _, r := range rs.literal {
		if strings.HasPrefix(p, r) && (len(p) == len(r) || p[len(r)] == '/') {
			return true
		}
	}
	for i := range rs.globs {
		g := &rs.globs[i]
		if strings.HasPrefix(p, g.prefix) && g.matchPrefix(p) {
			return true
		}
	}
	return false
}

func (m *Matcher) isRoot(p string) bool {
	_, ok := m.roots.Load().all[strings.TrimSuffix(p, "/")]
	return ok
}

// IsModel reports whether an open of rawPath (as the process passed it)
// resolving to path (absolute) is an open of a model file, and why. Either
// path may be empty. size is the file size, or -1 when unknown; pass -1 for
// opens that create or truncate, whose size says nothing. A directory below
// a model root matches like a file when its size is unknown: callers skip
// O_DIRECTORY opens.
//
// A match on either path counts (a read through a Hugging Face snapshot
// symlink resolves to an extension-less blob), except that a snapshot name
// of metadata (tokenizer.json, config.json …) vetoes the blob it resolves to.
// When false, reason is "" or explains the rejection.
func (m *Matcher) IsModel(rawPath, path string, size int64) (bool, string) {
	if path == rawPath {
		rawPath = ""
	}
	reason := ""
	if rawPath != "" {
		reason = m.match(rawPath)
		if reason == "" && snapshotVeto(rawPath, path) {
			return false, ReasonSnapshotName
		}
	}
	if reason == "" && path != "" {
		reason = m.match(path)
	}
	if reason == "" {
		return false, ""
	}
	if size >= 0 && size < m.minBytes {
		return false, ReasonBelowMinSize
	}
	return true, reason
}

// IsModelConfig reports whether path is a model's configuration, template or
// loader code (config.json, generation_config.json, tokenizer*.json,
// chat_template*, *.jinja, config.pbtxt, model.py,
// model.safetensors.index.json) in a place where models live: under a model
// root, in a Hugging Face snapshot, or in a Triton model repository. GPU-005
// watches these for writes.
func (m *Matcher) IsModelConfig(p string) bool {
	base, parent, _, _ := splitTail(p)
	if !isConfigName(base) {
		return false
	}
	if m.UnderRoot(p) || inHFRepo(p) {
		return true
	}
	switch {
	case strings.EqualFold(base, "config.pbtxt"):
		return true // Triton's model configuration; nothing else uses the name.
	case strings.EqualFold(base, "model.py"):
		return isDigits(parent) // Triton Python backend <repo>/<model>/<version>/model.py
	}
	return false
}

func isConfigName(base string) bool {
	switch {
	case equalFoldAny(base, "config.json", "generation_config.json", "config.pbtxt", "model.py",
		"model.safetensors.index.json"):
		return true
	case hasPrefixFold(base, "tokenizer") && hasSuffixFold(base, ".json"):
		return true
	case hasPrefixFold(base, "chat_template"), hasSuffixFold(base, ".jinja"):
		return true
	}
	return false
}

// match returns the reason p names a model file, or "".
func (m *Matcher) match(p string) string {
	base, parent, grand, grandSlash := splitTail(p)
	if base == "" {
		return ""
	}
	if strings.EqualFold(parent, "blobs") {
		if grandSlash && strings.HasPrefix(grand, "models--") && len(grand) > len("models--") && isHex(base, 40, 64) {
			return ReasonHFBlob
		}
		if len(base) == len("sha256-")+64 && (strings.HasPrefix(base, "sha256-") || strings.HasPrefix(base, "sha256:")) &&
			isHex(base[len("sha256-"):], 64, 64) {
			return ReasonOllamaBlob
		}
	}
	if hasPrefixFold(base, "rank") && hasSuffixFold(base, ".engine") && isDigits(base[4:len(base)-len(".engine")]) {
		return ReasonTRTLLM
	}
	if isTriton(p, base, parent) {
		return ReasonTriton
	}
	switch {
	case strings.EqualFold(base, "saved_model.pb"):
		return ReasonSavedModel
	case hasPrefixFold(base, "variables.data-"):
		return ReasonTFVariables
	}
	if r := suffixReason(base); r != "" {
		return r
	}
	if hasSuffixFold(base, ".onnx.data") {
		return "suffix .onnx.data"
	}
	if i := indexFold(base, ".ckpt"); i >= 0 && strings.Contains(base[i:], ".data-") {
		return ReasonTFCheckpoint
	}
	if hasSuffixFold(base, ".bin") && namedBin(base) {
		return ReasonNamedBin
	}
	// The root itself is a directory (or, from an env value, a file named by
	// suffix above); only what lies below it counts.
	if m.UnderRoot(p) && !m.isRoot(p) && !metadataUnderRoot(p, base) {
		return ReasonUnderRoot
	}
	return ""
}

// suffixTable maps a lower-case extension to its reason.
var suffixTable = func() map[string]string {
	t := make(map[string]string)
	for _, s := range []string{".safetensors", ".gguf", ".ggml", ".pt", ".pth", ".ckpt", ".onnx", ".onnx_data",
		".h5", ".hdf5", ".keras", ".tflite", ".engine", ".plan", ".trt", ".nemo", ".mar", ".llamafile",
		".msgpack", ".mlmodel"} {
		t[s] = "suffix " + s
	}
	return t
}()

const maxSuffix = len(".safetensors") + 4

func suffixReason(base string) string {
	i := strings.LastIndexByte(base, '.')
	if i < 0 || len(base)-i > maxSuffix {
		return ""
	}
	var buf [maxSuffix]byte
	return suffixTable[string(lower(buf[:], base[i:]))] // the conversion in a map index does not allocate
}

// lower copies s into buf in ASCII lower case and returns the filled part.
func lower(buf []byte, s string) []byte {
	n := copy(buf, s)
	for j := 0; j < n; j++ {
		if c := buf[j]; 'A' <= c && c <= 'Z' {
			buf[j] = c + 'a' - 'A'
		}
	}
	return buf[:n]
}

var binPrefixes = []string{"pytorch_model", "model", "adapter_model", "consolidated", "diffusion_pytorch_model",
	"tf_model", "flax_model"}

// namedBin reports whether base matches
// (pytorch_model|model|adapter_model|consolidated|diffusion_pytorch_model|tf_model|flax_model)[-.\w]*\.bin.
func namedBin(base string) bool {
	stem := base[:len(base)-len(".bin")]
	for _, pre := range binPrefixes {
		if !hasPrefixFold(stem, pre) {
			continue
		}
		ok := true
		for i := len(pre); i < len(stem); i++ {
			c := stem[i]
			if !(c == '-' || c == '.' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// isTriton matches <repo>/<model>/<digits>/model.(plan|onnx|pt|graphdef|netdef|bin)
// and anything below <repo>/<model>/<digits>/model.savedmodel/.
func isTriton(p, base, parent string) bool {
	if isDigits(parent) && hasPrefixFold(base, "model.") &&
		equalFoldAny(base[len("model."):], "plan", "onnx", "pt", "graphdef", "netdef", "bin") {
		return true
	}
	i := indexDir(p, "model.savedmodel/")
	if i <= 0 {
		return false
	}
	j := strings.LastIndexByte(p[:i], '/')
	return isDigits(p[j+1 : i])
}

// Names that are plainly not weights even under a model root. The basename
// "token" is the Hugging Face credential: a CRED concern, not a model.
var (
	metadataPrefixes = []string{"tokenizer", "vocab", "merges", "special_tokens", "readme", "license",
		"notice", "use_policy", "token", "stored_tokens", "."}
	metadataSuffixes = func() map[string]struct{} {
		m := make(map[string]struct{})
		for _, s := range []string{".json", ".jinja", ".txt", ".md", ".py", ".pyc", ".yaml", ".yml", ".pbtxt",
			".lock", ".incomplete", ".model", ".tiktoken", ".log", ".html", ".csv", ".sh", ".cfg", ".ini",
			".toml", ".xml", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".pdf", ".tmp"} {
			m[s] = struct{}{}
		}
		return m
	}()
	metadataDirs = []string{"refs/", ".locks/", "manifests/", ".no_exist/"}
)

// metadataUnderRoot reports whether a file under a model root is plainly not
// weights: configs, tokenizers, docs, credentials, download bookkeeping.
func metadataUnderRoot(p, base string) bool {
	if isConfigName(base) {
		return true
	}
	for _, pre := range metadataPrefixes {
		if hasPrefixFold(base, pre) {
			return true
		}
	}
	if i := strings.LastIndexByte(base, '.'); i >= 0 && len(base)-i <= maxSuffix {
		var buf [maxSuffix]byte
		if _, ok := metadataSuffixes[string(lower(buf[:], base[i:]))]; ok {
			return true
		}
	}
	if strings.Contains(base, "-partial") {
		return true // Ollama download in progress
	}
	for _, d := range metadataDirs {
		if indexDir(p, d) >= 0 {
			return true
		}
	}
	return false
}

// snapshotVeto reports whether raw is a Hugging Face snapshot name of
// metadata that resolved to a blob of the same repository.
func snapshotVeto(raw, resolved string) bool {
	i := indexDir(raw, "snapshots/")
	j := indexDir(resolved, "blobs/")
	if i <= 0 || j <= 0 || raw[:i] != resolved[:j] {
		return false
	}
	base, _, _, _ := splitTail(raw)
	return isConfigName(base) || metadataUnderRoot(raw, base)
}

// inHFRepo reports whether p lies in a Hugging Face hub cache repository.
func inHFRepo(p string) bool {
	i := indexDir(p, "models--")
	return i >= 0 && indexDir(p[i:], "snapshots/") >= 0
}

// indexDir returns the index of the '/' that starts the first component of p
// beginning with name, or -1. Searching for name rather than "/"+name keeps
// strings.Index off the many slashes of a path.
func indexDir(p, name string) int {
	for off := 0; ; {
		i := strings.Index(p[off:], name)
		if i < 0 {
			return -1
		}
		i += off
		if i > 0 && p[i-1] == '/' {
			return i - 1
		}
		off = i + 1
	}
}

// splitTail returns the last three components of p, and whether the third
// from last is preceded by a '/'.
func splitTail(p string) (base, parent, grand string, grandSlash bool) {
	i := strings.LastIndexByte(p, '/')
	base = p[i+1:]
	if i < 0 {
		return base, "", "", false
	}
	rest := p[:i]
	j := strings.LastIndexByte(rest, '/')
	parent = rest[j+1:]
	if j < 0 {
		return base, parent, "", false
	}
	rest = rest[:j]
	k := strings.LastIndexByte(rest, '/')
	return base, parent, rest[k+1:], k >= 0
}

// hasDotDot reports whether p has a ".." component, which makes a prefix
// test on it meaningless.
func hasDotDot(p string) bool {
	for i := 0; i+1 < len(p); i++ {
		if p[i] == '.' && p[i+1] == '.' && (i == 0 || p[i-1] == '/') && (i+2 == len(p) || p[i+2] == '/') {
			return true
		}
	}
	return false
}

func isHex(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func hasPrefixFold(s, pre string) bool {
	return len(s) >= len(pre) && strings.EqualFold(s[:len(pre)], pre)
}

func hasSuffixFold(s, suf string) bool {
	return len(s) >= len(suf) && strings.EqualFold(s[len(s)-len(suf):], suf)
}

func equalFoldAny(s string, opts ...string) bool {
	for _, o := range opts {
		if strings.EqualFold(s, o) {
			return true
		}
	}
	return false
}

// indexFold is strings.Index ignoring ASCII case, for short needles.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}
