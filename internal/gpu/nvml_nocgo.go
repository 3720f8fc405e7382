//go:build !cgo

package gpu

import "fmt"

// Library stands in for go-nvml's nvml.Interface in a binary built without
// cgo, where go-nvml cannot be compiled. Options.Lib is then ignored.
type Library any

// noDriverState completes "disabled: " in Sampler.State without NVML.
const noDriverState = "NVML support not compiled in (built with CGO_ENABLED=0)"

// newNVMLSource fails: go-nvml needs cgo. The replay source and the
// Assigner work in such a build.
func newNVMLSource(string, Library) (source, error) {
	return nil, fmt.Errorf("%w (this binary was built without cgo, so NVML support is not compiled in)", ErrNoDriver)
}
