// Package arch holds tests that guard the shape of the code base: the floors
// of docs/architecture.md, the kernel library kept out of pure packages, and a doc
// comment on every package.
package arch
