// Package e2e replays the attack and benign scenarios of the detection
// catalog (docs/testing.md) against the real sensor binary, as
// root, without Kubernetes: containers are unshare'd process trees in cgroup
// v2 directories, remote hosts are network namespaces behind veths, GPU
// ownership comes from the replay file that the harness rewrites.
//
// The test checks, per scenario, the rules that must fire, those that may, and
// that benign scenarios fire nothing above low. It always runs the harness's
// cleanup and restores core_pattern, even when it fails.
//
// TestVariants replays testdata/variants/*.sh against the same harness: the
// catalog's techniques done with other tools, paths and languages, and benign
// look-alikes, with expectations (and known gaps, each with its reason) in
// testdata/variants.yaml. It shows that rules match techniques rather than
// the catalog's scenario strings.
package e2e
