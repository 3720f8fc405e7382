//go:build !amd64 && !arm64

package runtime

// sysHandlers is empty where the dispatcher has no syscall table: the
// loader refuses to start rather than watch nothing (see load).
var sysHandlers []sysHandler
