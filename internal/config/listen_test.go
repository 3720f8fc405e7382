package config

import (
	"strings"
	"testing"
)

func TestApplyListenFlags(t *testing.T) {
	str := func(s string) *string { return &s }
	mtls := "export: {health_listen: ':9876', tls: {cert: /a, key: /b, client_ca: /c}}"
	tests := []struct {
		name    string
		yaml    string
		flags   ListenFlags
		wantErr string    // substring; "" means success
		want    [3]string // health, tcp, metrics
	}{
		{name: "nothing set keeps the file", yaml: mtls, want: [3]string{":9876", "", DefaultMetricsListen}},
		{name: "pod IPv4 bracketed", yaml: mtls,
			flags: ListenFlags{Health: str("[10.1.2.3]:9876"), TCP: str("[10.1.2.3]:8443"), Metrics: str("[10.1.2.3]:2112")},
			want:  [3]string{"[10.1.2.3]:9876", "[10.1.2.3]:8443", "[10.1.2.3]:2112"}},
		{name: "pod IPv6", yaml: mtls, flags: ListenFlags{Health: str("[fd00::7]:9876")}, want: [3]string{"[fd00::7]:9876", "", DefaultMetricsListen}},
		{name: "empty turns off", yaml: mtls, flags: ListenFlags{Health: str(""), Metrics: str("")}, want: [3]string{"", "", ""}},
		{name: "health not host:port", flags: ListenFlags{Health: str("9876")}, wantErr: `--health-listen: "9876" is not host:port`},
		{name: "unbracketed IPv6", flags: ListenFlags{Health: str("fd00::7:9876")}, wantErr: `--health-listen: "fd00::7:9876" is not host:port`},
		{name: "tcp port not a number", yaml: mtls, flags: ListenFlags{TCP: str("[10.1.2.3]:grpc")}, wantErr: `--tcp-listen: port "grpc"`},
		{name: "metrics port out of range", flags: ListenFlags{Metrics: str(":70000")}, wantErr: `--metrics-listen: port "70000"`},
		{name: "tcp without tls", flags: ListenFlags{TCP: str("[10.1.2.3]:8443")}, wantErr: "with the listen flags, export.tcp_listen: TCP is served only with mutual TLS"},
		{name: "tcp off, the unix socket stays", flags: ListenFlags{TCP: str("")}, yaml: "export: {unix_socket: /run/k.sock}", want: [3]string{"", "", DefaultMetricsListen}},
		{name: "no listener left", yaml: "export: {unix_socket: '', tcp_listen: ':8443', tls: {cert: /a, key: /b, client_ca: /c}}",
			flags: ListenFlags{TCP: str("")}, wantErr: "no gRPC listener"},
		{name: "health on the tcp port of the file", yaml: "export: {tcp_listen: ':8443', tls: {cert: /a, key: /b, client_ca: /c}}",
			flags: ListenFlags{Health: str("[10.1.2.3]:8443")}, wantErr: "export.health_listen: \"[10.1.2.3]:8443\" is also tcp_listen"},
		{name: "health and tcp on one address", yaml: mtls,
			flags: ListenFlags{Health: str("10.1.2.3:8443"), TCP: str("[10.1.2.3]:8443")}, wantErr: "is also tcp_listen"},
		{name: "one IPv6 address written two ways", yaml: mtls,
			flags: ListenFlags{Health: str("[fd00:0::7]:8443"), TCP: str("[fd00::7]:8443")}, wantErr: "is also tcp_listen"},
		{name: "same port on two addresses", yaml: mtls,
			flags: ListenFlags{Health: str("127.0.0.1:8443"), TCP: str("[10.1.2.3]:8443")}, want: [3]string{"127.0.0.1:8443", "[10.1.2.3]:8443", DefaultMetricsListen}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(strings.NewReader(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = cfg.ApplyListenFlags(tt.flags)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ApplyListenFlags: %v", err)
			}
			if got := [3]string{cfg.Export.HealthListen, cfg.Export.TCPListen, cfg.Metrics.Listen}; got != tt.want {
				t.Errorf("health, tcp, metrics: got %q; want %q", got, tt.want)
			}
		})
	}
}
