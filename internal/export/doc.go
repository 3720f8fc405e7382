// Package export carries the sensor's events to the people who act on them:
// one bounded in-memory [Ring] with sequence numbers, the sensor.v1 gRPC
// [Server] (Subscribe with allow/deny filters, resume cursors, in-band Lost
// records and heartbeats; GetStatus; GetInventory; health and reflection) on
// a 0600 unix socket and an optional mutual-TLS TCP port, a hand-written OCSF
// 1.8.0 encoder ([OCSFEncoder]), a rotating JSON-lines [FileExporter], and
// the [Client] that `sensor --tail` uses.
//
// The pipeline only ever calls [Ring.Publish], which never blocks: every
// consumer reads the ring at its own pace, and one that falls behind is told
// how many events it lost (docs/architecture.md#losses).
//
// It imports event and config, never the other middle-floor packages.
package export
