package deploy

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite daemonset.yaml from the chart (make manifests)")

const (
	chartDir = "../charts/kestrel"
	// The release the raw manifest is rendered as.
	releaseName      = "kestrel"
	releaseNamespace = "kestrel-system"
	// manifestValues are the values daemonset.yaml is rendered with.
	manifestValues = "manifest-values.yaml"
)

// manifestHeader starts daemonset.yaml, before the rendered documents.
const manifestHeader = `# Kestrel sensor, rendered from charts/kestrel with deploy/manifest-values.yaml by
# ` + "`make manifests`" + `; do not edit (a test fails when it differs from the chart). With Helm, install the chart
# instead: docs/deployment.md describes its values.
#
#   kubectl apply -f deploy/daemonset.yaml
#
# creates namespace kestrel-system and runs the sensor on every Linux node. The sensor reads its
# configuration at start: after editing ConfigMap kestrel-config, restart it with
#   kubectl -n kestrel-system rollout restart daemonset/kestrel
# (the chart does this by itself: the pods carry a checksum of the configuration).
`

// render renders the chart with values (nil: the defaults) the way
// `helm template kestrel charts/kestrel -n kestrel-system` does: values
// validated against values.schema.json, documents in Helm's install order,
// each after a "# Source:" line; NOTES.txt left out.
func render(values map[string]any) (string, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return "", fmt.Errorf("load chart: %w", err)
	}
	opts := common.ReleaseOptions{Name: releaseName, Namespace: releaseNamespace, Revision: 1, IsInstall: true}
	vals, err := util.ToRenderValuesWithSchemaValidation(ch, values, opts, common.DefaultCapabilities, false)
	if err != nil {
		return "", err
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		return "", err
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return "", err
	}
	if len(hooks) > 0 {
		return "", fmt.Errorf("the chart renders %d hooks; kubectl apply of the raw manifest would not run them", len(hooks))
	}
	var b strings.Builder
	for _, m := range manifests {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	// As helm template prints it: no blank line at the end.
	return strings.TrimRight(b.String(), "\n") + "\n", nil
}

// mustRender renders values (a YAML document) or fails the test.
func mustRender(t *testing.T, values string) string {
	t.Helper()
	var v map[string]any
	if err := yaml.Unmarshal([]byte(values), &v); err != nil {
		t.Fatalf("values %q: %v", values, err)
	}
	out, err := render(v)
	if err != nil {
		t.Fatalf("render with values %q: %v", values, err)
	}
	return out
}

func readValues(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// daemonset.yaml is the chart rendered with manifest-values.yaml, so the raw
// manifest and the chart cannot drift. `make manifests` rewrites it.
func TestManifestIsRenderedFromTheChart(t *testing.T) {
	out, err := render(readValues(t, manifestValues))
	if err != nil {
		t.Fatal(err)
	}
	want := manifestHeader + out
	if *update {
		if err := os.WriteFile("daemonset.yaml", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile("daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("daemonset.yaml is not the chart rendered with %s: run `make manifests`\n%s", manifestValues, firstDiff(string(got), want))
	}
}

// firstDiff shows the first differing line of got and want.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n  file:  %q\n  chart: %q", i+1, gl, wl)
		}
	}
	return ""
}

// helm lint (the same rules, from Helm's packages) finds no error and no
// warning, with the defaults and with every values file the repo ships.
func TestChartLint(t *testing.T) {
	for _, vf := range []string{"", manifestValues} {
		var vals map[string]any
		if vf != "" {
			vals = readValues(t, vf)
		}
		res := lint.RunAll(chartDir, vals, releaseNamespace)
		for _, m := range res.Messages {
			t.Logf("lint %s: %s", vf, m)
			if m.Severity >= support.WarningSev {
				t.Errorf("helm lint with %q: %s", vf, m)
			}
		}
	}
}

// Bad values fail the render with a message that names the problem, instead
// of a manifest that deploys something else.
func TestChartRejectsBadValues(t *testing.T) {
	for _, tt := range []struct{ values, want string }{
		// values.schema.json: unknown keys, enums, patterns, bounds.
		{`imagePullPolicy: Always`, `imagePullPolicy`},
		{`cri: {runtime: docker}`, `/cri/runtime`},
		{`cri: {socket: run/containerd.sock}`, `/cri/socket`},
		{`image: {digest: "sha256:1234"}`, `/image/digest`},
		{`nvml: {mode: auto}`, `/nvml/mode`},
		{`metrics: {port: 70000}`, `/metrics/port`},
		// The templates: combinations the schema cannot express.
		{`config: {context: {cri_socket: /run/crio/crio.sock}}`, `config.context.cri_socket is set by the chart`},
		{`config: {export: {tls: {cert: /x}}}`, `config.export.tls is set by the chart`},
		{`config: {metrics: {listen: ":2112"}}`, `config.metrics.listen is set by the chart`},
		{`tls: {certManager: {enabled: true}}`, `feed.tcp.enabled is false`},
		{`readiness: {requireGPU: true}` + "\n" + `nvml: {mode: "off"}`, `never be ready`},
		{`metrics: {enabled: false, serviceMonitor: {enabled: true}}`, `needs metrics.enabled`},
		{`otlp: {endpoint: "collector:4317", clientCertificate: true}`, `needs otlp.tlsSecret`},
		{`placement: {gpuNodesOnly: true}` + "\n" +
			`affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: []}}}`, `cannot be set too`},
	} {
		var v map[string]any
		if err := yaml.Unmarshal([]byte(tt.values), &v); err != nil {
			t.Fatal(err)
		}
		_, err := render(v)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("values %q: err %v; want one naming %q", tt.values, err, tt.want)
			continue
		}
		t.Logf("%s -> %v", tt.values, firstLine(err.Error()))
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
