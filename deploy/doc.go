// Package deploy holds the raw Kubernetes manifest (daemonset.yaml, rendered
// from the Helm chart in charts/kestrel with manifest-values.yaml) and the
// default configuration (sensor.yaml) of the sensor.
//
// Its tests render the chart with Helm's own packages (the linter, the
// template engine and the install order of `helm template`), decode every
// rendering strictly into the API types (k8s.io/api, cert-manager and
// prometheus-operator), check the properties deployment depends on against
// the sensor's config, and fail when daemonset.yaml is not the chart's
// rendering (`make manifests` rewrites it). They also check the release
// plumbing: version stamping, the image build and the chart's version.
package deploy
