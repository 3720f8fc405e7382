// Package sensorv1 holds the generated Go code of the sensor.v1 gRPC API
// (sensor.proto): the event feed, status and inventory of the Kestrel
// sensor. Regenerate with `make generate`; protoc-gen-go and
// protoc-gen-go-grpc are pinned as tools in go.mod.
package sensorv1

//go:generate sh gen.sh
