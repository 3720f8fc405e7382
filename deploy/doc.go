// Package deploy holds the Kubernetes manifest (daemonset.yaml), the
// container image (Dockerfile) and the default configuration (sensor.yaml) of
// the sensor. Its test decodes the manifest strictly into k8s.io/api types and
// checks the properties the design requires.
package deploy
