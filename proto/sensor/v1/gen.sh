#!/bin/sh
# Regenerates sensor.pb.go and sensor_grpc.pb.go from sensor.proto with
# /usr/bin/protoc and the plugin versions pinned as tools in go.mod
# (go get -tool); `go tool -n` builds each plugin once and prints its path.
set -eu
cd "$(dirname "$0")"
protoc -I . -I /usr/include \
	--plugin=protoc-gen-go="$(go tool -n protoc-gen-go)" \
	--plugin=protoc-gen-go-grpc="$(go tool -n protoc-gen-go-grpc)" \
	--go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	sensor.proto
