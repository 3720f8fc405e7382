{{/* Names and labels. */}}
{{- define "kestrel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kestrel.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kestrel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kestrel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: sensor
{{- end -}}

{{- define "kestrel.labels" -}}
{{ include "kestrel.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kestrel
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kestrel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kestrel.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kestrel.tlsSecret" -}}
{{- default (printf "%s-tls" (include "kestrel.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{/* The image: repository@digest when a digest is given, else repository:tag (default appVersion). */}}
{{- define "kestrel.image" -}}
{{- with .Values.image.digest -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" .) -}}
{{- fail (printf "image.digest %q is not sha256:<64 hex digits>" .) -}}
{{- end -}}
{{- printf "%s@%s" $.Values.image.repository . -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The host path of the CRI socket; empty for runtime none. */}}
{{- define "kestrel.criSocket" -}}
{{- $known := dict
  "containerd" "/run/containerd/containerd.sock"
  "crio" "/run/crio/crio.sock"
  "k3s" "/run/k3s/containerd/containerd.sock"
  "k0s" "/run/k0s/containerd.sock"
  "microk8s" "/var/snap/microk8s/common/run/containerd.sock"
  "none" "" -}}
{{- if not (hasKey $known .Values.cri.runtime) -}}
{{- fail (printf "cri.runtime %q is not one of containerd, crio, k3s, k0s, microk8s, none" .Values.cri.runtime) -}}
{{- end -}}
{{- $sock := default (get $known .Values.cri.runtime) .Values.cri.socket -}}
{{- if and $sock (not (isAbs $sock)) -}}
{{- fail (printf "cri.socket %q is not an absolute path" $sock) -}}
{{- end -}}
{{- $sock -}}
{{- end -}}

{{/* Whether readiness follows GPU attribution: "true" or "". */}}
{{- define "kestrel.readinessRequiresGPU" -}}
{{- $r := toString .Values.readiness.requireGPU -}}
{{- if eq $r "auto" -}}
{{- if and .Values.placement.gpuNodesOnly (ne .Values.nvml.mode "off") }}true{{ end -}}
{{- else if eq $r "true" -}}
{{- if eq .Values.nvml.mode "off" -}}
{{- fail "readiness.requireGPU is true but nvml.mode is off: the pods would never be ready" -}}
{{- end -}}
true
{{- else if ne $r "false" -}}
{{- fail (printf "readiness.requireGPU %q is not one of auto, true, false" $r) -}}
{{- end -}}
{{- end -}}

{{/* Paths inside the container. */}}
{{- define "kestrel.fileExportPath" -}}
{{- if eq .Values.fileExport.format "ocsf" -}}/var/log/kestrel/events.ocsf.jsonl{{- else -}}/var/log/kestrel/events.jsonl{{- end -}}
{{- end -}}

{{/*
The sensor's configuration: .Values.config merged under the keys the chart wires to mounts, ports
and flags. Setting a wired key in .Values.config is an error, so the two cannot disagree.
*/}}
{{- define "kestrel.config" -}}
{{- $user := deepCopy .Values.config -}}
{{- $wiredKeys := list "context.cri_socket" "gpu.library_path" "gpu.podresources_socket" "export.unix_socket" "export.tcp_listen" "export.tls" "export.health_listen" "export.file.path" "metrics.listen" -}}
{{- if .Values.otlp.endpoint -}}
{{- $wiredKeys = concat $wiredKeys (list "export.otlp.endpoint" "export.otlp.protocol" "export.otlp.insecure" "export.otlp.body" "export.otlp.cluster_name" "export.otlp.tls") -}}
{{- end -}}
{{- range $path := $wiredKeys -}}
{{- $node := $user -}}
{{- $keys := splitList "." $path -}}
{{- range $i, $k := $keys -}}
{{- if and (kindIs "map" $node) (hasKey $node $k) -}}
{{- if eq (add1 $i) (len $keys) -}}
{{- fail (printf "config.%s is set by the chart from its own values (see values.yaml); remove it from config" $path) -}}
{{- end -}}
{{- $node = get $node $k -}}
{{- else -}}
{{- $node = "" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $context := dict "cri_socket" "off" -}}
{{- with include "kestrel.criSocket" . -}}
{{- $_ := set $context "cri_socket" (printf "/host%s" .) -}}
{{- end -}}
{{- $gpu := dict -}}
{{- if eq .Values.nvml.mode "off" -}}
{{- $_ := set $gpu "source" "off" -}}
{{- else if eq .Values.nvml.mode "hostPath" -}}
{{- $_ := set $gpu "library_path" (printf "/host%s/libnvidia-ml.so.1" (trimSuffix "/" .Values.nvml.hostPath.libraryDir)) -}}
{{- else if ne .Values.nvml.mode "toolkit" -}}
{{- fail (printf "nvml.mode %q is not one of toolkit, hostPath, off" .Values.nvml.mode) -}}
{{- end -}}
{{- $_ := set $gpu "podresources_socket" (ternary "/var/lib/kubelet/pod-resources/kubelet.sock" "" .Values.podResources.enabled) -}}
{{- /* health_listen and tcp_listen are the --health-listen and --tcp-listen arguments (the pod IP). */ -}}
{{- $export := dict "unix_socket" "/run/kestrel/sensor.sock" -}}
{{- if .Values.feed.tcp.enabled -}}
{{- $tls := dict "cert" "/etc/kestrel/tls/tls.crt" "key" "/etc/kestrel/tls/tls.key" "client_ca" "/etc/kestrel/tls/ca.crt" -}}
{{- with .Values.feed.tcp.clientNames -}}
{{- $_ := set $tls "client_names" . -}}
{{- end -}}
{{- $_ := set $export "tls" $tls -}}
{{- end -}}
{{- $file := dict "path" "" -}}
{{- if .Values.fileExport.enabled -}}
{{- $file = dict "path" (include "kestrel.fileExportPath" .) "format" .Values.fileExport.format "max_bytes" (int64 .Values.fileExport.maxBytes) "keep" (int .Values.fileExport.keep) -}}
{{- end -}}
{{- $_ := set $export "file" $file -}}
{{- with .Values.otlp.endpoint -}}
{{- $otlp := dict "endpoint" . "protocol" $.Values.otlp.protocol "insecure" $.Values.otlp.insecure "body" $.Values.otlp.body -}}
{{- with $.Values.otlp.clusterName -}}
{{- $_ := set $otlp "cluster_name" . -}}
{{- end -}}
{{- if $.Values.otlp.tlsSecret -}}
{{- $tls := dict "ca" "/etc/kestrel/otlp-tls/ca.crt" -}}
{{- if $.Values.otlp.clientCertificate -}}
{{- $tls = merge $tls (dict "cert" "/etc/kestrel/otlp-tls/tls.crt" "key" "/etc/kestrel/otlp-tls/tls.key") -}}
{{- end -}}
{{- $_ := set $otlp "tls" $tls -}}
{{- else if $.Values.otlp.clientCertificate -}}
{{- fail "otlp.clientCertificate needs otlp.tlsSecret, the Secret that holds it" -}}
{{- end -}}
{{- $_ := set $export "otlp" $otlp -}}
{{- end -}}
{{- $wired := dict "context" $context "gpu" $gpu "export" $export -}}
{{- toYaml (mustMerge $wired $user) -}}
{{- end -}}
