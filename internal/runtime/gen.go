package runtime

// The sensor's BPF object and its Go bindings are generated from bpf/ and
// committed, so that building needs no clang. `make generate` reruns this.
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel sensor ../../bpf/sensor.bpf.c -- -I../../bpf -I/usr/include/bpf
