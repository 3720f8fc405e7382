package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	kjson "sigs.k8s.io/json"
	kyaml "sigs.k8s.io/yaml"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/export"
)

// manifest is one rendering of the chart (or daemonset.yaml), decoded.
type manifest struct {
	name   string
	values string
	raw    []byte
	ns     *corev1.Namespace
	sa     *corev1.ServiceAccount
	quota  *corev1.ResourceQuota
	cm     *corev1.ConfigMap
	ds     *appsv1.DaemonSet
	svc    *corev1.Service
	certs  []*cmv1.Certificate
	issuer []*cmv1.Issuer
	sm     *monitoringv1.ServiceMonitor
	cfg    *config.Config
	// container is the sensor container.
	container corev1.Container
}

// strict decodes YAML the way the API server's strict field validation
// does: case-sensitive field names (encoding/json, and so yaml.UnmarshalStrict,
// would accept "hostPid" for hostPID), no unknown or duplicate fields, and
// no type mismatches.
func strict(doc []byte, into any) error {
	j, err := kyaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	serrs, err := kjson.UnmarshalStrict(j, into, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(serrs...)
}

// The strict decoder is what makes the other tests meaningful: a misspelled
// key (hostPid) or a wrong type must fail, not be dropped.
func TestStrictDecodeRejectsTypos(t *testing.T) {
	for _, tt := range []struct {
		doc  string
		into any
	}{
		{"apiVersion: apps/v1\nkind: DaemonSet\nspec:\n  template:\n    spec:\n      hostPid: true\n", &appsv1.DaemonSet{}},
		{"apiVersion: apps/v1\nkind: DaemonSet\nspec:\n  template:\n    spec:\n      hostPID: \"yes\"\n", &appsv1.DaemonSet{}},
		{"apiVersion: v1\nkind: Service\nspec:\n  clusterIp: None\n", &corev1.Service{}},
		{"apiVersion: cert-manager.io/v1\nkind: Certificate\nspec:\n  dnsName: [a]\n", &cmv1.Certificate{}},
		{"apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nspec:\n  endpoints: [{portName: x}]\n", &monitoringv1.ServiceMonitor{}},
	} {
		err := strict([]byte(tt.doc), tt.into)
		if err == nil {
			t.Errorf("strict decode accepted %q", tt.doc)
		}
		t.Logf("rejected: %v", err)
	}
}

// parse decodes a rendered stream strictly into the API types; a document of
// a kind the chart does not make fails the test.
func parse(t *testing.T, name string, raw []byte) *manifest {
	t.Helper()
	m := &manifest{name: name, raw: raw}
	dec := func(doc string, into any) {
		if err := strict([]byte(doc), into); err != nil {
			t.Fatalf("%s: strict decode of %T: %v", name, into, err)
		}
	}
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := kyaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("%s: document %d: %v", name, i, err)
		}
		switch tm.APIVersion + "/" + tm.Kind {
		case "v1/Namespace":
			m.ns = &corev1.Namespace{}
			dec(doc, m.ns)
		case "v1/ServiceAccount":
			m.sa = &corev1.ServiceAccount{}
			dec(doc, m.sa)
		case "v1/ResourceQuota":
			m.quota = &corev1.ResourceQuota{}
			dec(doc, m.quota)
		case "v1/ConfigMap":
			m.cm = &corev1.ConfigMap{}
			dec(doc, m.cm)
		case "apps/v1/DaemonSet":
			m.ds = &appsv1.DaemonSet{}
			dec(doc, m.ds)
		case "v1/Service":
			m.svc = &corev1.Service{}
			dec(doc, m.svc)
		case "cert-manager.io/v1/Certificate":
			c := &cmv1.Certificate{}
			dec(doc, c)
			m.certs = append(m.certs, c)
		case "cert-manager.io/v1/Issuer":
			is := &cmv1.Issuer{}
			dec(doc, is)
			m.issuer = append(m.issuer, is)
		case "monitoring.coreos.com/v1/ServiceMonitor":
			m.sm = &monitoringv1.ServiceMonitor{}
			dec(doc, m.sm)
		default:
			t.Fatalf("%s: document %d: unexpected %s %s", name, i, tm.APIVersion, tm.Kind)
		}
	}
	if m.ds == nil || m.cm == nil {
		t.Fatalf("%s: no DaemonSet or ConfigMap", name)
	}
	if n := len(m.ds.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("%s: DaemonSet has %d containers; want 1", name, n)
	}
	m.container = m.ds.Spec.Template.Spec.Containers[0]
	m.cfg = m.effectiveConfig(t, testPodIPs[0])
	return m
}

// testPodIPs are pod IPs of both families: the arguments must make a valid
// listen address of either.
var testPodIPs = []string{"10.1.2.3", "fd00:10:244::7"}

// effectiveConfig is the configuration the sensor runs with on a pod with
// IP podIP: the ConfigMap, then the listen flags of the arguments after
// Kubernetes expanded $(VAR) in them, through the sensor's own code.
func (m *manifest) effectiveConfig(t *testing.T, podIP string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(strings.NewReader(m.cm.Data["sensor.yaml"]))
	if err != nil {
		t.Fatalf("%s: ConfigMap sensor.yaml is not a valid sensor config: %v\n%s", m.name, err, m.cm.Data["sensor.yaml"])
	}
	var flags config.ListenFlags
	seen := map[string]bool{}
	for _, a := range m.container.Args {
		name, val, _ := strings.Cut(expandEnv(m.container, a, podIP), "=")
		dst := map[string]**string{"--health-listen": &flags.Health, "--tcp-listen": &flags.TCP, "--metrics-listen": &flags.Metrics}[name]
		if dst == nil {
			continue
		}
		if seen[name] || !strings.Contains(a, "=") {
			t.Fatalf("%s: args %q: want one %s=ADDRESS", m.name, m.container.Args, name)
		}
		seen[name] = true
		*dst = &val
	}
	if err := cfg.ApplyListenFlags(flags); err != nil {
		t.Fatalf("%s: args %q with pod IP %s: %v", m.name, m.container.Args, podIP, err)
	}
	return cfg
}

// expandEnv expands $(NAME) in an argument as the kubelet does: only for
// variables the container's env defines (the rest stay as written), $$ for a
// literal $. status.podIP is podIP; other field references are not needed.
func expandEnv(c corev1.Container, arg, podIP string) string {
	vars := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			vars[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP":
			vars[e.Name] = podIP
		}
	}
	return regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).ReplaceAllStringFunc(arg, func(ref string) string {
		if ref == "$$" {
			return "$"
		}
		if v, ok := vars[ref[2:len(ref)-1]]; ok {
			return v
		}
		return ref
	})
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// variants are value sets people deploy with; every check runs on each
// rendering and on daemonset.yaml.
var variants = []struct{ name, values string }{
	{name: "defaults"},
	{name: "mtls-feed-cert-manager", values: `
feed: {tcp: {enabled: true, clientNames: [siem-collector]}}
tls: {certManager: {enabled: true, dnsNames: [kestrel.example.com], clientCertificate: {enabled: true}}}
metrics: {serviceMonitor: {enabled: true, labels: {release: prom}}}`},
	{name: "mtls-feed-own-secret-own-issuer", values: `
feed: {tcp: {enabled: true, port: 9443}}
tls: {existingSecret: siem-tls, certManager: {enabled: true, issuerRef: {name: corp-ca, kind: ClusterIssuer, group: cert-manager.io}}}`},
	{name: "cri-o", values: `cri: {runtime: crio}`},
	{name: "k3s", values: `cri: {runtime: k3s}`},
	{name: "custom-socket-no-pod-resources", values: `
cri: {socket: /var/run/custom/cri.sock}
podResources: {enabled: false}`},
	{name: "no-cri", values: `cri: {runtime: none}`},
	{name: "gpu-nodes-only", values: `
placement: {gpuNodesOnly: true}
nvml: {runtimeClassName: nvidia}`},
	{name: "nvml-host-library", values: `nvml: {mode: hostPath, hostPath: {libraryDir: /run/nvidia/driver/usr/lib/x86_64-linux-gnu}}`},
	{name: "nvml-off-quiet", values: `
nvml: {mode: "off"}
metrics: {enabled: false}
fileExport: {enabled: false}
priorityClassName: ""`},
	{name: "image-by-digest", values: `image: {digest: "sha256:` + strings.Repeat("ab", 32) + `"}`},
	{name: "config-merged", values: `
fileExport: {format: json}
config:
  log_level: debug
  context: {pod_cidrs: ['10.244.0.0/16'], service_cidrs: ['10.96.0.0/12']}
  detect: {rules: {EXE-001: {enabled: false}}}
  export: {ring_size: 131072}
resources: {limits: {memory: 1Gi}}
goMemLimit: 800MiB
extraEnv: [{name: GODEBUG, value: madvdontneed=1}]
extraVolumes: [{name: models, hostPath: {path: /srv/models, type: Directory}}]
extraVolumeMounts: [{name: models, mountPath: /srv/models, readOnly: true}]`},
	{name: "otlp", values: `
otlp: {endpoint: "otel-collector.observability:4317", clusterName: prod-gpu, tlsSecret: otlp-tls, clientCertificate: true,
  headersSecret: otlp-headers}`},
}

// manifests returns daemonset.yaml and the chart rendered with each variant.
func manifests(t *testing.T) []*manifest {
	t.Helper()
	raw, err := os.ReadFile("daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := parse(t, "daemonset.yaml", raw)
	m.values = string(mustYAML(t, readValues(t, manifestValues)))
	out := []*manifest{m}
	for _, v := range variants {
		m := parse(t, v.name, []byte(mustRender(t, v.values)))
		m.values = v.values
		out = append(out, m)
	}
	return out
}

func mustYAML(t *testing.T, v any) []byte {
	b, err := kyaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// value is the variant's value at a dotted path (nil when unset), for the checks that depend on it.
func (m *manifest) value(t *testing.T, dotted string) any {
	t.Helper()
	var v map[string]any
	if err := kyaml.Unmarshal([]byte(m.values), &v); err != nil {
		t.Fatal(err)
	}
	var node any = v
	for _, k := range strings.Split(dotted, ".") {
		mp, ok := node.(map[string]any)
		if !ok {
			return nil
		}
		node = mp[k]
	}
	return node
}

func forEach(t *testing.T, check func(t *testing.T, m *manifest)) {
	for _, m := range manifests(t) {
		t.Run(m.name, func(t *testing.T) { check(t, m) })
	}
}

func TestManifestObjects(t *testing.T) {
	forEach(t, func(t *testing.T, m *manifest) {
		objs := map[string]metav1.ObjectMeta{"ConfigMap": m.cm.ObjectMeta, "DaemonSet": m.ds.ObjectMeta}
		if m.sa != nil {
			objs["ServiceAccount"] = m.sa.ObjectMeta
		}
		if m.quota != nil {
			objs["ResourceQuota"] = m.quota.ObjectMeta
		}
		if m.svc != nil {
			objs["Service"] = m.svc.ObjectMeta
		}
		for kind, o := range objs {
			if o.Namespace != releaseNamespace {
				t.Errorf("%s in namespace %q; want %q", kind, o.Namespace, releaseNamespace)
			}
		}
		pod := m.ds.Spec.Template.Spec
		if m.sa == nil || m.sa.AutomountServiceAccountToken == nil || *m.sa.AutomountServiceAccountToken {
			t.Error("the service account must exist and not automount a token: the sensor never calls the API server")
		} else if pod.ServiceAccountName != m.sa.Name {
			t.Errorf("pod service account %q; want %q", pod.ServiceAccountName, m.sa.Name)
		}
		if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Error("the pod must not automount a token")
		}
		if pc := pod.PriorityClassName; strings.HasPrefix(pc, "system-") {
			if m.quota == nil {
				t.Errorf("no ResourceQuota admits priority class %q (GKE needs one outside kube-system)", pc)
			} else if sel := m.quota.Spec.ScopeSelector; sel == nil || len(sel.MatchExpressions) != 1 ||
				sel.MatchExpressions[0].ScopeName != corev1.ResourceQuotaScopePriorityClass || !slices.Contains(sel.MatchExpressions[0].Values, pc) {
				t.Errorf("no ResourceQuota admits priority class %q (GKE needs one outside kube-system)", pc)
			}
		} else if m.quota != nil {
			t.Errorf("a priority-class quota without a system priority class")
		}
		for k, v := range m.ds.Spec.Selector.MatchLabels {
			if m.ds.Spec.Template.Labels[k] != v {
				t.Errorf("DaemonSet selector %s=%s does not match the pod template", k, v)
			}
		}
		if m.svc != nil {
			for k, v := range m.svc.Spec.Selector {
				if m.ds.Spec.Template.Labels[k] != v {
					t.Errorf("Service selector %s=%s does not match the pods", k, v)
				}
			}
		}
		if m.name == "daemonset.yaml" && (m.ns == nil || m.ns.Name != releaseNamespace ||
			m.ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged") {
			t.Errorf("daemonset.yaml must create namespace %s at the privileged pod-security level", releaseNamespace)
		}
	})
}

// Nodes as the clouds and the GPU operator label them.
var nodes = map[string]map[string]string{
	"gke-gpu":         {"kubernetes.io/os": "linux", "cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
	"eks-karpenter":   {"kubernetes.io/os": "linux", "karpenter.k8s.aws/instance-gpu-count": "8"},
	"eks-auto":        {"kubernetes.io/os": "linux", "eks.amazonaws.com/instance-gpu-count": "1"},
	"eks-nodegroup":   {"kubernetes.io/os": "linux", "k8s.amazonaws.com/accelerator": "nvidia-tesla-a100"},
	"aks-gpu":         {"kubernetes.io/os": "linux", "accelerator": "nvidia"},
	"gpu-operator":    {"kubernetes.io/os": "linux", "nvidia.com/gpu.present": "true"},
	"nfd-only":        {"kubernetes.io/os": "linux", "feature.node.kubernetes.io/pci-0302_10de.present": "true"},
	"cpu-node":        {"kubernetes.io/os": "linux", "node.kubernetes.io/instance-type": "m7i.large"},
	"cpu-gpu-zero":    {"kubernetes.io/os": "linux", "karpenter.k8s.aws/instance-gpu-count": "0"},
	"windows-gpu-ish": {"kubernetes.io/os": "windows", "accelerator": "nvidia"},
}

// Taints GPU pools carry: the GPU operator's and GKE's, and a custom
// dedicated-pool taint nobody told the chart about.
var gpuTaints = []corev1.Taint{
	{Key: "nvidia.com/gpu", Value: "present", Effect: corev1.TaintEffectNoSchedule},
	{Key: "nvidia.com/gpu", Effect: corev1.TaintEffectNoSchedule},
	{Key: "dedicated", Value: "inference", Effect: corev1.TaintEffectNoSchedule},
	{Key: "example.com/h200-reserved", Effect: corev1.TaintEffectNoExecute},
}

// The scheduler's own matching decides where the pods go: on every Linux
// node by default, whatever its taints; with gpuNodesOnly on the GPU nodes
// of every cloud's labelling and on no CPU node.
func TestPodPlacement(t *testing.T) {
	forEach(t, func(t *testing.T, m *manifest) {
		pod := &corev1.Pod{Spec: m.ds.Spec.Template.Spec}
		if !pod.Spec.HostPID {
			t.Error("hostPID must be true: NVML lists only host PIDs to a caller in the host PID namespace")
		}
		if !pod.Spec.HostNetwork {
			t.Error("hostNetwork must be true: netlink needs the host's routes and addresses")
		}
		for i := range gpuTaints {
			tolerated := slices.ContainsFunc(pod.Spec.Tolerations, func(tol corev1.Toleration) bool {
				return tol.ToleratesTaint(klog.Background(), &gpuTaints[i], false)
			})
			if !tolerated {
				t.Errorf("taint %v is not tolerated: a GPU pool tainted so would run no sensor", gpuTaints[i])
			}
		}
		gpuOnly := m.value(t, "placement.gpuNodesOnly") == true
		req := nodeaffinity.GetRequiredNodeAffinity(pod)
		for name, labels := range nodes {
			ok, err := req.Match(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})
			if err != nil {
				t.Fatalf("node %s: %v", name, err)
			}
			want := labels["kubernetes.io/os"] == "linux" && (!gpuOnly || !strings.HasPrefix(name, "cpu-"))
			if ok != want {
				t.Errorf("scheduled on node %s (%v): %v; want %v", name, labels, ok, want)
			}
		}
	})
}

// The reviewed capability set: each one is what the kernel checks for
// something the sensor does (the comment above it in the template says
// which), and no other.
var reviewedCaps = []corev1.Capability{"BPF", "PERFMON", "NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"}

func TestLeastPrivilege(t *testing.T) {
	forEach(t, func(t *testing.T, m *manifest) {
		sc := m.container.SecurityContext
		if sc == nil {
			t.Fatal("no securityContext")
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Error("the container must not be privileged")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Error("readOnlyRootFilesystem must be true")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("allowPrivilegeEscalation must be false")
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Fatalf("capabilities must drop ALL; got %v", sc.Capabilities)
		}
		add := slices.Clone(sc.Capabilities.Add)
		slices.Sort(add)
		want := slices.Clone(reviewedCaps)
		slices.Sort(want)
		if !slices.Equal(add, want) {
			t.Errorf("capabilities.add %v; want exactly the reviewed %v", add, want)
		}
		lines := strings.Split(string(m.raw), "\n")
		for _, cp := range add {
			i := slices.IndexFunc(lines, func(l string) bool { return strings.TrimSpace(l) == "- "+string(cp) })
			if i < 1 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") {
				t.Errorf("capability %s has no comment explaining why", cp)
			}
		}
		if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("seccompProfile %v; want RuntimeDefault", sc.SeccompProfile)
		}
	})
}

func TestNVMLWithoutRequestingAGPU(t *testing.T) {
	forEach(t, func(t *testing.T, m *manifest) {
		c := m.container
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		mode, _ := m.value(t, "nvml.mode").(string)
		if mode == "off" {
			if m.cfg.GPU.Source != config.GPUSourceOff {
				t.Errorf("nvml.mode off: gpu.source %q", m.cfg.GPU.Source)
			}
			if _, ok := env["NVIDIA_VISIBLE_DEVICES"]; ok {
				t.Error("nvml.mode off still asks the NVIDIA runtime for devices")
			}
		} else if env["NVIDIA_VISIBLE_DEVICES"] != "all" || env["NVIDIA_DRIVER_CAPABILITIES"] != "utility" {
			t.Errorf("env %v; want NVIDIA_VISIBLE_DEVICES=all, NVIDIA_DRIVER_CAPABILITIES=utility", env)
		}
		if _, ok := env["LD_LIBRARY_PATH"]; ok {
			t.Error("LD_LIBRARY_PATH would load the host's libraries (libc) into the sensor")
		}
		if rc, _ := m.value(t, "nvml.runtimeClassName").(string); rc != "" {
			if p := m.ds.Spec.Template.Spec.RuntimeClassName; p == nil || *p != rc {
				t.Errorf("runtimeClassName %v; want %s", p, rc)
			}
		}
		if mode == "hostPath" {
			lib := m.cfg.GPU.LibraryPath
			vm, ok := m.mountOf(lib)
			dir, _ := m.value(t, "nvml.hostPath.libraryDir").(string)
			if !ok || m.hostPathOf(vm.Name) != dir || path.Base(lib) != "libnvidia-ml.so.1" {
				t.Errorf("gpu.library_path %s is not libnvidia-ml.so.1 on a mount of host %s", lib, dir)
			}
		}
		for _, rl := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
			for name := range rl {
				if strings.Contains(string(name), "nvidia.com") {
					t.Errorf("the sensor requests %s; it must not take a GPU from inference", name)
				}
			}
		}
	})
}

func TestResourcesIncludeBPFMemory(t *testing.T) {
	values, err := os.ReadFile(chartDir + "/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(values), "Memory arithmetic") {
		t.Error("the memory sizing is not explained in values.yaml")
	}
	forEach(t, func(t *testing.T, m *manifest) {
		c := m.container
		req, lim := c.Resources.Requests.Memory(), c.Resources.Limits.Memory()
		if req.IsZero() || lim.IsZero() {
			t.Fatalf("memory request %v and limit %v must both be set", req, lim)
		}
		if lim.Cmp(*req) < 0 {
			t.Errorf("memory limit %v below request %v", lim, req)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Cpu().IsZero() {
			t.Error("cpu request and limit must be set")
		}
		// The kernel ring buffer is charged to the cgroup: the limit must hold
		// it plus the Go heap's soft limit.
		var gomem resource.Quantity
		for _, e := range c.Env {
			if e.Name == "GOMEMLIMIT" {
				gomem = resource.MustParse(strings.TrimSuffix(e.Value, "B"))
			}
		}
		if gomem.IsZero() {
			t.Fatal("GOMEMLIMIT is not set")
		}
		if need := gomem.Value() + int64(m.cfg.Capture.RingBufferBytes); lim.Value() < need {
			t.Errorf("memory limit %v < GOMEMLIMIT %v + ring buffer %d bytes", lim, gomem.String(), m.cfg.Capture.RingBufferBytes)
		}
	})
}

func port(t *testing.T, hostport string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

func (m *manifest) containerPort(name string) *corev1.ContainerPort {
	for i := range m.container.Ports {
		if m.container.Ports[i].Name == name {
			return &m.container.Ports[i]
		}
	}
	return nil
}

func (m *manifest) servicePort(name string) *corev1.ServicePort {
	if m.svc == nil {
		return nil
	}
	for i := range m.svc.Spec.Ports {
		if m.svc.Spec.Ports[i].Name == name {
			return &m.svc.Spec.Ports[i]
		}
	}
	return nil
}

func TestProbesAndPortsMatchTheConfig(t *testing.T) {
	forEach(t, func(t *testing.T, m *manifest) {
		c := m.container
		health := port(t, m.cfg.Export.HealthListen)
		if cp := m.containerPort("health"); cp == nil || cp.ContainerPort != health {
			t.Errorf("container port health %v; the health listener is %d", cp, health)
		}
		for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
			if p == nil || p.GRPC == nil {
				t.Errorf("%s probe must be a gRPC probe", name)
				continue
			}
			if p.GRPC.Port != health {
				t.Errorf("%s probe on port %d; the health listener is %d", name, p.GRPC.Port, health)
			}
		}
		// Startup waits for the programs; readiness follows them, or GPU
		// attribution where every node has GPUs.
		if svc := c.StartupProbe.GRPC.Service; svc == nil || *svc != export.ServiceName {
			t.Errorf("startup probe service %v; want %s", svc, export.ServiceName)
		}
		wantReady := export.ServiceName
		if m.value(t, "placement.gpuNodesOnly") == true {
			wantReady = export.GPUServiceName
		}
		if svc := c.ReadinessProbe.GRPC.Service; svc == nil || *svc != wantReady {
			t.Errorf("readiness probe service %v; want %s", svc, wantReady)
		}

		if m.cfg.Export.TCPListen == "" {
			if m.containerPort("grpc-mtls") != nil || m.servicePort("grpc-mtls") != nil {
				t.Error("an mTLS port is declared without export.tcp_listen")
			}
		} else {
			mtls := port(t, m.cfg.Export.TCPListen)
			cp, sp := m.containerPort("grpc-mtls"), m.servicePort("grpc-mtls")
			if cp == nil || cp.ContainerPort != mtls {
				t.Errorf("no container port for tcp_listen %d", mtls)
			}
			if m.svc == nil || m.svc.Spec.ClusterIP != corev1.ClusterIPNone || sp == nil || sp.Port != mtls || sp.TargetPort.String() != "grpc-mtls" {
				t.Errorf("the headless Service does not expose the mTLS port %d", mtls)
			}
			if !m.cfg.Export.TLS.Enabled() || m.cfg.Export.TLS.ClientCA == "" {
				t.Error("the TCP feed is configured without mutual TLS")
			}
		}

		// Every listener binds the pod IP (the node's address under
		// hostNetwork, where the kubelet's probes dial), not every interface
		// of the node, whatever the pod's address family.
		var podIP *corev1.EnvVar
		for i := range c.Env {
			if c.Env[i].Name == "POD_IP" {
				podIP = &c.Env[i]
			}
		}
		if podIP == nil || podIP.ValueFrom == nil || podIP.ValueFrom.FieldRef == nil || podIP.ValueFrom.FieldRef.FieldPath != "status.podIP" {
			t.Errorf("POD_IP is not the downward API's status.podIP: %+v", podIP)
		}
		for _, ip := range testPodIPs {
			cfg := m.effectiveConfig(t, ip)
			for flag, addr := range map[string]string{"--health-listen": cfg.Export.HealthListen,
				"--tcp-listen": cfg.Export.TCPListen, "--metrics-listen": cfg.Metrics.Listen} {
				if host, _, err := net.SplitHostPort(addr); addr != "" && (err != nil || host != ip) {
					t.Errorf("pod IP %s: the sensor listens on %q; want the pod IP (%s=[$(POD_IP)]:<port>)", ip, addr, flag)
				}
			}
		}

		if m.value(t, "metrics.enabled") == false {
			if m.cfg.Metrics.Listen != "" || m.containerPort("metrics") != nil || m.servicePort("metrics") != nil {
				t.Errorf("metrics disabled, but metrics.listen %q or a metrics port remains", m.cfg.Metrics.Listen)
			}
			return
		}
		_, p, _ := net.SplitHostPort(m.cfg.Metrics.Listen)
		cp, sp := m.containerPort("metrics"), m.servicePort("metrics")
		if cp == nil || strconv.Itoa(int(cp.ContainerPort)) != p || sp == nil || sp.TargetPort.String() != "metrics" {
			t.Errorf("metrics on %s: container port %v, Service port %v", m.cfg.Metrics.Listen, cp, sp)
		}
		if m.sm != nil {
			if len(m.sm.Spec.Endpoints) != 1 || m.sm.Spec.Endpoints[0].Port != "metrics" {
				t.Errorf("ServiceMonitor endpoints %+v do not scrape port metrics", m.sm.Spec.Endpoints)
			}
			for k, v := range m.sm.Spec.Selector.MatchLabels {
				if m.svc.Labels[k] != v {
					t.Errorf("ServiceMonitor selector %s=%s does not select the Service", k, v)
				}
			}
		}
	})
}

func (m *manifest) volume(name string) *corev1.Volume {
	for i, v := range m.ds.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return &m.ds.Spec.Template.Spec.Volumes[i]
		}
	}
	return nil
}

func (m *manifest) hostPathOf(volume string) string {
	if v := m.volume(volume); v != nil && v.HostPath != nil {
		return v.HostPath.Path
	}
	return ""
}

// mountOf is the mount whose directory holds p.
func (m *manifest) mountOf(p string) (corev1.VolumeMount, bool) {
	for _, vm := range m.container.VolumeMounts {
		if p == vm.MountPath || strings.HasPrefix(p, strings.TrimSuffix(vm.MountPath, "/")+"/") {
			return vm, true
		}
	}
	return corev1.VolumeMount{}, false
}

// Every path the config uses is mounted, host paths are what the code uses
// and no more, and a restarted runtime's new socket is seen.
func TestMounts(t *testing.T) {
	// Each host path the pod may mount, and why. Anything else is
	// something the code does not use.
	purpose := map[string]string{
		"/sys/fs/cgroup":                 "cgroup ids to containers; cgroup program attach",
		"/run/kestrel":                   "the unix socket",
		"/var/log/kestrel":               "the file exporter",
		"/var/lib/kubelet/pod-resources": "GPU assignments",
		"/run/containerd":                "CRI",
		"/run/crio":                      "CRI",
		"/run/k3s/containerd":            "CRI",
		"/var/run/custom":                "CRI (custom socket)",
		"/run/nvidia/driver/usr/lib/x86_64-linux-gnu": "NVML by path",
		"/srv/models": "extraVolumes",
	}
	forEach(t, func(t *testing.T, m *manifest) {
		mounted := map[string]bool{}
		for _, vm := range m.container.VolumeMounts {
			v := m.volume(vm.Name)
			if v == nil {
				t.Errorf("mount %s uses undefined volume %s", vm.MountPath, vm.Name)
				continue
			}
			mounted[vm.Name] = true
			if v.HostPath != nil && !vm.ReadOnly && vm.MountPath != path.Dir(m.cfg.Export.UnixSocket) && vm.MountPath != path.Dir(m.cfg.Export.File.Path) {
				t.Errorf("host path %s is mounted writable", v.HostPath.Path)
			}
		}
		for _, v := range m.ds.Spec.Template.Spec.Volumes {
			if !mounted[v.Name] {
				t.Errorf("volume %s is mounted nowhere", v.Name)
			}
			if v.HostPath != nil && purpose[v.HostPath.Path] == "" {
				t.Errorf("host path %s is mounted, but nothing the sensor does uses it", v.HostPath.Path)
			}
		}
		if m.hostPathOf("cgroup") != "/sys/fs/cgroup" {
			t.Error("no mount of the host's /sys/fs/cgroup")
		}
		// The CRI socket's directory is mounted, not the socket: a runtime
		// restart makes a new socket file in the same directory.
		if cri := m.cfg.Context.CRISocket; cri != config.CRIOff {
			vm, ok := m.mountOf(cri)
			v := m.volume(vm.Name)
			switch {
			case !ok || v == nil || v.HostPath == nil:
				t.Errorf("context.cri_socket %s is not on a host mount", cri)
			case vm.MountPath != path.Dir(cri) || v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathDirectory:
				t.Errorf("context.cri_socket %s: mount %s of host %s (type %v); want the socket's directory", cri, vm.MountPath, v.HostPath.Path, v.HostPath.Type)
			case "/host"+v.HostPath.Path != vm.MountPath:
				t.Errorf("host %s mounted at %s; want /host%[1]s", v.HostPath.Path, vm.MountPath)
			case vm.MountPropagation == nil || *vm.MountPropagation != corev1.MountPropagationHostToContainer:
				t.Errorf("the runtime's directory holds container mounts; without HostToContainer they stay busy in the sensor's mount namespace")
			}
			if want, _ := m.value(t, "cri.socket").(string); want != "" && "/host"+want != cri {
				t.Errorf("cri.socket %s became context.cri_socket %s", want, cri)
			}
		} else if rt, _ := m.value(t, "cri.runtime").(string); rt != "none" {
			t.Errorf("cri_socket off with cri.runtime %q", rt)
		}
		paths := map[string]string{
			"export.unix_socket": m.cfg.Export.UnixSocket,
			"the --config file":  m.container.Args[1],
		}
		if m.cfg.Export.File.Path != "" {
			paths["export.file.path"] = m.cfg.Export.File.Path
		}
		if s := m.cfg.GPU.PodResourcesSocket; s != "" {
			paths["gpu.podresources_socket"] = s
			if vm, _ := m.mountOf(s); m.hostPathOf(vm.Name) != "/var/lib/kubelet/pod-resources" {
				t.Errorf("gpu.podresources_socket %s is not on the kubelet's pod-resources directory", s)
			}
		} else if m.value(t, "podResources.enabled") != false {
			t.Error("podresources_socket is off")
		}
		if m.cfg.Export.TLS.Enabled() {
			paths["export.tls.cert"], paths["export.tls.client_ca"] = m.cfg.Export.TLS.Cert, m.cfg.Export.TLS.ClientCA
			v := m.volume("tls")
			if v == nil || v.Secret == nil || v.Secret.Optional != nil && *v.Secret.Optional {
				t.Error("the TLS secret must be a required secret volume")
			}
		}
		if o := m.value(t, "otlp.tlsSecret"); o != nil {
			tls := m.cfg.Export.OTLP.TLS
			for k, p := range map[string]string{"ca": tls.CA, "cert": tls.Cert, "key": tls.Key} {
				if p == "" {
					continue
				}
				paths["export.otlp.tls."+k] = p
				if vm, _ := m.mountOf(p); m.volume(vm.Name) == nil || m.volume(vm.Name).Secret == nil || m.volume(vm.Name).Secret.SecretName != o {
					t.Errorf("export.otlp.tls.%s %s is not in Secret %v", k, p, o)
				}
			}
			if m.value(t, "otlp.clientCertificate") == true && (tls.Cert == "" || tls.Key == "") {
				t.Error("otlp.clientCertificate sets no export.otlp.tls.cert and key")
			}
		}
		for what, p := range paths {
			if _, ok := m.mountOf(p); !ok {
				t.Errorf("%s %s is not on any volume mount", what, p)
			}
		}
		if v := m.volume("config"); v == nil || v.ConfigMap == nil || v.ConfigMap.Name != m.cm.Name {
			t.Errorf("config volume does not use ConfigMap %s", m.cm.Name)
		}
		if got := fmt.Sprint(m.container.Args[:2]); got != "[--config /etc/kestrel/sensor.yaml]" {
			t.Errorf("args %s", got)
		}
	})
}

// A configuration change reaches the pods: their template carries the
// checksum of the configuration, so a changed ConfigMap rolls them.
func TestConfigChecksumRollsThePods(t *testing.T) {
	sum := func(m *manifest) (annotation, ofConfigMap string) {
		b := sha256.Sum256([]byte(strings.TrimSuffix(m.cm.Data["sensor.yaml"], "\n")))
		return m.ds.Spec.Template.Annotations["checksum/config"], hex.EncodeToString(b[:])
	}
	forEach(t, func(t *testing.T, m *manifest) {
		if a, c := sum(m); a != c {
			t.Errorf("checksum/config %q; the ConfigMap's sensor.yaml hashes to %q", a, c)
		}
	})
	info, _ := sum(parse(t, "info", []byte(mustRender(t, `config: {log_level: info}`))))
	debug, _ := sum(parse(t, "debug", []byte(mustRender(t, `config: {log_level: debug}`))))
	if info == debug {
		t.Error("a changed log_level leaves the pod template unchanged: the pods would keep the old configuration")
	}
}

// cert-manager issues what the sensor reads: the server certificate into
// the Secret the pod mounts, with the CA that signs clients as ca.crt.
func TestCertManagerIssuesTheFeedSecret(t *testing.T) {
	forEach(t, func(t *testing.T, m *manifest) {
		if m.value(t, "tls.certManager.enabled") != true {
			if len(m.certs)+len(m.issuer) > 0 {
				t.Error("cert-manager objects without tls.certManager.enabled")
			}
			return
		}
		var server *cmv1.Certificate
		for _, c := range m.certs {
			if slices.Contains(c.Spec.Usages, cmv1.UsageServerAuth) {
				server = c
			}
		}
		if server == nil {
			t.Fatal("no server certificate")
		}
		if v := m.volume("tls"); v == nil || v.Secret.SecretName != server.Spec.SecretName {
			t.Errorf("the pod mounts %v; the server certificate goes to Secret %s", v, server.Spec.SecretName)
		}
		want := releaseName + "." + releaseNamespace + ".svc"
		if !slices.Contains(server.Spec.DNSNames, want) {
			t.Errorf("server certificate names %v; want %s among them", server.Spec.DNSNames, want)
		}
		issuers := map[string]*cmv1.Issuer{}
		for _, is := range m.issuer {
			issuers[is.Name] = is
		}
		ref := server.Spec.IssuerRef
		if ref.Kind == "Issuer" {
			// The chart's own CA: a CA issuer whose secret a self-signed CA
			// certificate fills.
			is := issuers[ref.Name]
			if is == nil || is.Spec.CA == nil {
				t.Fatalf("server certificate issued by %s, which the chart does not define as a CA issuer", ref.Name)
			}
			var ca *cmv1.Certificate
			for _, c := range m.certs {
				if c.Spec.IsCA && c.Spec.SecretName == is.Spec.CA.SecretName {
					ca = c
				}
			}
			if ca == nil || issuers[ca.Spec.IssuerRef.Name] == nil || issuers[ca.Spec.IssuerRef.Name].Spec.SelfSigned == nil {
				t.Error("the CA issuer's secret is not filled by a self-signed CA certificate")
			}
		} else if len(m.issuer) > 0 {
			t.Errorf("issuerRef %s/%s given, yet the chart makes issuers", ref.Kind, ref.Name)
		}
		for _, c := range m.certs {
			if slices.Contains(c.Spec.Usages, cmv1.UsageClientAuth) && c.Spec.IssuerRef != ref {
				t.Errorf("client certificate issued by %v, server by %v: the sensor would not trust the client", c.Spec.IssuerRef, ref)
			}
		}
	})
}
