// Package docs guards the documentation users read in the repository:
// README.md and docs/ have no dead relative links or anchors, and nothing in
// the repository points at team documents that are not in it.
package docs
