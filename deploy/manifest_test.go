package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/export"
)

const namespace = "kestrel-system"

type manifest struct {
	raw       []byte
	ns        *corev1.Namespace
	sa        *corev1.ServiceAccount
	quota     *corev1.ResourceQuota
	cm        *corev1.ConfigMap
	ds        *appsv1.DaemonSet
	svc       *corev1.Service
	cfg       *config.Config
	container corev1.Container
}

// strict decodes YAML the way the API server's strict field validation
// does: case-sensitive field names (encoding/json, and so yaml.UnmarshalStrict,
// would accept "hostPid" for hostPID), no unknown or duplicate fields, and
// no type mismatches.
func strict(doc []byte, into any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	serrs, err := kjson.UnmarshalStrict(j, into, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(serrs...)
}

// decodeStrict is strict for a document that must decode.
func decodeStrict(t *testing.T, doc []byte, into any) {
	t.Helper()
	if err := strict(doc, into); err != nil {
		t.Fatalf("strict decode of %T: %v", into, err)
	}
}

// The strict decoder is what makes the other tests meaningful: a misspelled
// key (hostPid) or a wrong type must fail, not be dropped.
func TestStrictDecodeRejectsTypos(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: apps/v1\nkind: DaemonSet\nspec:\n  template:\n    spec:\n      hostPid: true\n",
		"apiVersion: apps/v1\nkind: DaemonSet\nspec:\n  template:\n    spec:\n      hostPID: \"yes\"\n",
		"apiVersion: v1\nkind: Service\nspec:\n  clusterIp: None\n",
	} {
		var into any = &corev1.Service{}
		if strings.Contains(doc, "DaemonSet") {
			into = &appsv1.DaemonSet{}
		}
		err := strict([]byte(doc), into)
		if err == nil {
			t.Errorf("strict decode accepted %q", doc)
		}
		t.Logf("rejected: %v", err)
	}
}

func load(t *testing.T) *manifest {
	t.Helper()
	raw, err := os.ReadFile("daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := &manifest{raw: raw}
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		switch tm.APIVersion + "/" + tm.Kind {
		case "v1/Namespace":
			m.ns = &corev1.Namespace{}
			decodeStrict(t, []byte(doc), m.ns)
		case "v1/ServiceAccount":
			m.sa = &corev1.ServiceAccount{}
			decodeStrict(t, []byte(doc), m.sa)
		case "v1/ResourceQuota":
			m.quota = &corev1.ResourceQuota{}
			decodeStrict(t, []byte(doc), m.quota)
		case "v1/ConfigMap":
			m.cm = &corev1.ConfigMap{}
			decodeStrict(t, []byte(doc), m.cm)
		case "apps/v1/DaemonSet":
			m.ds = &appsv1.DaemonSet{}
			decodeStrict(t, []byte(doc), m.ds)
		case "v1/Service":
			m.svc = &corev1.Service{}
			decodeStrict(t, []byte(doc), m.svc)
		default:
			t.Fatalf("document %d: unexpected %s %s", i, tm.APIVersion, tm.Kind)
		}
	}
	for name, p := range map[string]bool{"Namespace": m.ns != nil, "ServiceAccount": m.sa != nil, "ConfigMap": m.cm != nil,
		"DaemonSet": m.ds != nil, "Service": m.svc != nil, "ResourceQuota": m.quota != nil} {
		if !p {
			t.Fatalf("manifest has no %s", name)
		}
	}
	if n := len(m.ds.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("DaemonSet has %d containers; want 1", n)
	}
	m.container = m.ds.Spec.Template.Spec.Containers[0]
	cfg, err := config.Parse(strings.NewReader(m.cm.Data["sensor.yaml"]))
	if err != nil {
		t.Fatalf("ConfigMap sensor.yaml is not a valid sensor config: %v", err)
	}
	m.cfg = cfg
	return m
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

func TestManifestObjects(t *testing.T) {
	m := load(t)
	if m.ns.Name != namespace {
		t.Errorf("namespace %q", m.ns.Name)
	}
	for kind, ns := range map[string]string{"ServiceAccount": m.sa.Namespace, "ConfigMap": m.cm.Namespace,
		"DaemonSet": m.ds.Namespace, "Service": m.svc.Namespace, "ResourceQuota": m.quota.Namespace} {
		if ns != namespace {
			t.Errorf("%s in namespace %q; want %q", kind, ns, namespace)
		}
	}
	if m.sa.AutomountServiceAccountToken == nil || *m.sa.AutomountServiceAccountToken {
		t.Error("service account must not automount a token: the sensor never calls the API server")
	}
	pod := m.ds.Spec.Template.Spec
	if pod.ServiceAccountName != m.sa.Name {
		t.Errorf("pod service account %q; want %q", pod.ServiceAccountName, m.sa.Name)
	}
	if sel := m.quota.Spec.ScopeSelector; sel == nil || len(sel.MatchExpressions) != 1 ||
		sel.MatchExpressions[0].ScopeName != corev1.ResourceQuotaScopePriorityClass ||
		!slices.Contains(sel.MatchExpressions[0].Values, pod.PriorityClassName) {
		t.Errorf("ResourceQuota scope %v does not admit priority class %q", sel, pod.PriorityClassName)
	}
	// The selector picks the pods.
	for k, v := range m.ds.Spec.Selector.MatchLabels {
		if m.ds.Spec.Template.Labels[k] != v {
			t.Errorf("DaemonSet selector %s=%s does not match the pod template", k, v)
		}
	}
	for k, v := range m.svc.Spec.Selector {
		if m.ds.Spec.Template.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not match the pods", k, v)
		}
	}
}

func TestPodPlacementAndPriority(t *testing.T) {
	pod := load(t).ds.Spec.Template.Spec
	if !pod.HostPID {
		t.Error("hostPID must be true: NVML lists only host PIDs to a caller in the host PID namespace")
	}
	if !pod.HostNetwork {
		t.Error("hostNetwork must be true: netlink needs the host's routes and addresses")
	}
	if pod.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", pod.PriorityClassName)
	}
	if pod.NodeSelector["nvidia.com/gpu.present"] != "true" {
		t.Errorf("nodeSelector %v; want nvidia.com/gpu.present=true", pod.NodeSelector)
	}
	if !slices.ContainsFunc(pod.Tolerations, func(tol corev1.Toleration) bool {
		return tol.Key == "nvidia.com/gpu" && tol.Operator == corev1.TolerationOpExists && (tol.Effect == "" || tol.Effect == corev1.TaintEffectNoSchedule)
	}) {
		t.Errorf("tolerations %v; want nvidia.com/gpu Exists", pod.Tolerations)
	}
}

func TestLeastPrivilege(t *testing.T) {
	m := load(t)
	c := m.container
	sc := c.SecurityContext
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
	add := sc.Capabilities.Add
	for _, need := range []corev1.Capability{"BPF", "PERFMON", "SYS_RESOURCE"} {
		if !slices.Contains(add, need) {
			t.Errorf("capabilities.add lacks %s", need)
		}
	}
	allowed := []corev1.Capability{"BPF", "PERFMON", "SYS_RESOURCE", "SYS_PTRACE", "DAC_READ_SEARCH", "NET_ADMIN"}
	for _, c := range add {
		if !slices.Contains(allowed, c) {
			t.Errorf("capability %s is not on the reviewed list %v", c, allowed)
		}
	}
	// Every added capability is commented with why, on the lines above it.
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
}

func TestNVMLWithoutRequestingAGPU(t *testing.T) {
	c := load(t).container
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["NVIDIA_VISIBLE_DEVICES"] != "all" || env["NVIDIA_DRIVER_CAPABILITIES"] != "utility" {
		t.Errorf("env %v; want NVIDIA_VISIBLE_DEVICES=all, NVIDIA_DRIVER_CAPABILITIES=utility", env)
	}
	for _, rl := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
		for name := range rl {
			if strings.Contains(string(name), "nvidia.com") {
				t.Errorf("the sensor requests %s; it must not take a GPU from inference", name)
			}
		}
	}
}

func TestResourcesIncludeBPFMaps(t *testing.T) {
	m := load(t)
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
	// The kernel ring buffer is charged to the cgroup: the limit must hold it
	// plus the Go heap's soft limit.
	var gomem resource.Quantity
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			gomem = resource.MustParse(strings.TrimSuffix(e.Value, "B"))
		}
	}
	if gomem.IsZero() {
		t.Fatal("GOMEMLIMIT is not set")
	}
	need := gomem.Value() + int64(m.cfg.Capture.RingBufferBytes)
	if lim.Value() < need {
		t.Errorf("memory limit %v < GOMEMLIMIT %v + ring buffer %d bytes", lim, gomem.String(), m.cfg.Capture.RingBufferBytes)
	}
	if !bytes.Contains(m.raw, []byte("Memory arithmetic")) {
		t.Error("the memory sizing is not explained in a comment")
	}
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

func TestProbesAndPortsMatchTheConfig(t *testing.T) {
	m := load(t)
	c := m.container
	health := port(t, m.cfg.Export.HealthListen)
	for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.GRPC == nil {
			t.Errorf("%s probe must be a gRPC probe", name)
			continue
		}
		if p.GRPC.Port != health {
			t.Errorf("%s probe on port %d; the health listener is %d", name, p.GRPC.Port, health)
		}
	}
	if c.ReadinessProbe != nil && c.ReadinessProbe.GRPC != nil {
		if svc := c.ReadinessProbe.GRPC.Service; svc == nil || *svc != export.ServiceName {
			t.Errorf("readiness probe service %v; want %s", svc, export.ServiceName)
		}
	}
	mtls := port(t, m.cfg.Export.TCPListen)
	var cp *corev1.ContainerPort
	for i := range c.Ports {
		if c.Ports[i].ContainerPort == mtls {
			cp = &c.Ports[i]
		}
	}
	if cp == nil {
		t.Fatalf("no container port for tcp_listen %d", mtls)
	}
	if m.svc.Spec.ClusterIP != corev1.ClusterIPNone || len(m.svc.Spec.Ports) != 1 ||
		m.svc.Spec.Ports[0].Port != mtls || m.svc.Spec.Ports[0].TargetPort.String() != cp.Name {
		t.Errorf("Service %+v does not expose the mTLS port %d (%s) headlessly", m.svc.Spec, mtls, cp.Name)
	}
	if !m.cfg.Export.TLS.Enabled() || m.cfg.Export.TLS.ClientCA == "" {
		t.Error("the TCP feed is configured without mutual TLS")
	}
}

// Every path the config uses is mounted, and the required host mounts exist.
func TestMounts(t *testing.T) {
	m := load(t)
	pod := m.ds.Spec.Template.Spec
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	hostPathOf := map[string]string{} // mountPath -> host path
	mountOf := func(p string) (corev1.VolumeMount, bool) {
		for _, vm := range m.container.VolumeMounts {
			if p == vm.MountPath || strings.HasPrefix(p, strings.TrimSuffix(vm.MountPath, "/")+"/") {
				return vm, true
			}
		}
		return corev1.VolumeMount{}, false
	}
	for _, vm := range m.container.VolumeMounts {
		v, ok := vols[vm.Name]
		if !ok {
			t.Errorf("mount %s uses undefined volume %s", vm.MountPath, vm.Name)
			continue
		}
		if v.HostPath != nil {
			hostPathOf[vm.MountPath] = v.HostPath.Path
			// Host paths are read-only except the socket and log directories.
			if !vm.ReadOnly && vm.MountPath != filepath.Dir(m.cfg.Export.UnixSocket) && vm.MountPath != filepath.Dir(m.cfg.Export.File.Path) {
				t.Errorf("host path %s is mounted writable", v.HostPath.Path)
			}
		}
	}
	for _, host := range []string{"/sys/kernel/btf", "/sys/fs/cgroup", "/proc", "/var/lib/kubelet/pod-resources"} {
		found := false
		for _, hp := range hostPathOf {
			if hp == host {
				found = true
			}
		}
		if !found {
			t.Errorf("no mount of host %s", host)
		}
	}
	// The CRI socket in the config is a mounted host socket.
	cri := m.cfg.Context.CRISocket
	if vm, ok := mountOf(cri); !ok || vols[vm.Name].HostPath == nil || !strings.HasSuffix(vols[vm.Name].HostPath.Path, filepath.Base(cri)) {
		t.Errorf("context.cri_socket %s is not a mounted host socket", cri)
	}
	for what, p := range map[string]string{
		"export.unix_socket":      m.cfg.Export.UnixSocket,
		"export.tls.cert":         m.cfg.Export.TLS.Cert,
		"export.tls.client_ca":    m.cfg.Export.TLS.ClientCA,
		"export.file.path":        m.cfg.Export.File.Path,
		"gpu.podresources_socket": m.cfg.GPU.PodResourcesSocket,
		"the --config file":       m.container.Args[1],
	} {
		if _, ok := mountOf(p); !ok {
			t.Errorf("%s %s is not on any volume mount", what, p)
		}
	}
	if v := vols["tls"]; v.Secret == nil || v.Secret.Optional != nil && *v.Secret.Optional {
		t.Error("the TLS secret must be a required secret volume")
	}
	if v := vols["config"]; v.ConfigMap == nil || v.ConfigMap.Name != m.cm.Name {
		t.Errorf("config volume does not use ConfigMap %s", m.cm.Name)
	}
	if got := fmt.Sprint(m.container.Args); got != "[--config /etc/kestrel/sensor.yaml]" {
		t.Errorf("args %s", got)
	}
}

// The Dockerfile is multi-stage, builds with cgo and runs on a glibc base
// (NVML is dlopen'ed). No Docker here, so the checks are textual.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	from := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(string(raw), -1)
	if len(from) < 2 {
		t.Fatalf("%d FROM lines; want a multi-stage build", len(from))
	}
	final := from[len(from)-1][1]
	glibc := []string{"distroless/base", "debian", "ubuntu", "distroless/cc"}
	if !slices.ContainsFunc(glibc, func(g string) bool { return strings.Contains(final, g) }) {
		t.Errorf("final stage %s is not a glibc base", final)
	}
	for _, bad := range []string{"alpine", "scratch", "static"} {
		if strings.Contains(final, bad) {
			t.Errorf("final stage %s cannot load libnvidia-ml.so.1", final)
		}
	}
	for _, want := range []string{"CGO_ENABLED=1", "./cmd/sensor", "ENTRYPOINT"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
