package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestContextDefaults(t *testing.T) {
	c := Default().Context
	if c.ProcessRetention.D() != 5*time.Minute {
		t.Errorf("process_retention: got %s; want 5m", c.ProcessRetention.D())
	}
	if c.ProcessTableSize != 65536 {
		t.Errorf("process_table_size: got %d; want 65536", c.ProcessTableSize)
	}
	if c.CRISocket != "" {
		t.Errorf("cri_socket: got %q; want \"\" (auto-detect)", c.CRISocket)
	}
	if !reflect.DeepEqual(c.MetadataAddrs, DefaultMetadataAddrs) {
		t.Errorf("metadata_addrs: got %v; want %v", c.MetadataAddrs, DefaultMetadataAddrs)
	}
	if err := c.validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestContextParse(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string // substring; "" means success
		check   func(t *testing.T, c ContextConfig)
	}{
		{
			name: "harness config",
			yaml: `
context:
  process_retention: 10m
  process_table_size: 1024
  cri_socket: /run/test/cri.sock
  cri_timeout: 500ms
  cri_cache_ttl: 30s
  container_cgroup_regex: ['^/simctr-']
  pod_cidrs: ['10.244.0.0/16', 'fd10::/64']
  service_cidrs: ['10.96.0.0/12']
  node_ips: ['10.200.1.1', '10.200.3.1']
  metadata_addrs: ['169.254.169.254']
`,
			check: func(t *testing.T, c ContextConfig) {
				if c.ProcessRetention.D() != 10*time.Minute || c.ProcessTableSize != 1024 ||
					c.CRISocket != "/run/test/cri.sock" || c.CRITimeout.D() != 500*time.Millisecond ||
					c.CRICacheTTL.D() != 30*time.Second {
					t.Errorf("scalars: got %+v", c)
				}
				if !reflect.DeepEqual(c.ContainerCgroupRegex, []string{"^/simctr-"}) {
					t.Errorf("container_cgroup_regex: got %v", c.ContainerCgroupRegex)
				}
				if !reflect.DeepEqual(c.NodeIPs, []string{"10.200.1.1", "10.200.3.1"}) {
					t.Errorf("node_ips: got %v", c.NodeIPs)
				}
				if !reflect.DeepEqual(c.MetadataAddrs, []string{"169.254.169.254"}) {
					t.Errorf("metadata_addrs: got %v", c.MetadataAddrs)
				}
			},
		},
		{name: "cri off", yaml: "context: {cri_socket: \"off\"}"},
		{name: "relative socket", yaml: "context: {cri_socket: run/cri.sock}", wantErr: "context.cri_socket"},
		{name: "table too small", yaml: "context: {process_table_size: 3}", wantErr: "context.process_table_size"},
		{name: "negative retention", yaml: "context: {process_retention: -1s}", wantErr: "context.process_retention"},
		{name: "zero timeout", yaml: "context: {cri_timeout: 0s}", wantErr: "context.cri_timeout"},
		{name: "huge timeout", yaml: "context: {cri_timeout: 2h}", wantErr: "context.cri_timeout"},
		{name: "zero ttl", yaml: "context: {cri_cache_ttl: 0s}", wantErr: "context.cri_cache_ttl"},
		{name: "bad regex", yaml: "context: {container_cgroup_regex: ['^/simctr-(']}", wantErr: "context.container_cgroup_regex[0]"},
		{name: "bad pod cidr", yaml: "context: {pod_cidrs: ['10.0.0.0/33']}", wantErr: "context.pod_cidrs[0]"},
		{name: "bad service cidr", yaml: "context: {service_cidrs: ['10.0.0.0/8', 'nope']}", wantErr: "context.service_cidrs[1]"},
		{name: "bad node ip", yaml: "context: {node_ips: ['10.0.0.0/8']}", wantErr: "context.node_ips[0]"},
		{name: "bad metadata", yaml: "context: {metadata_addrs: ['metadata.google.internal']}", wantErr: "context.metadata_addrs[0]"},
		{name: "unknown key", yaml: "context: {cri_sock: /x}", wantErr: "cri_sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(strings.NewReader(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if tt.check != nil {
				tt.check(t, cfg.Context)
			}
		})
	}
}

func TestParseCIDROrAddr(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"10.244.1.7/16", "10.244.0.0/16", false},
		{"10.0.0.1", "10.0.0.1/32", false},
		{"fd00:ec2::254", "fd00:ec2::254/128", false},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8", false},
		{"::ffff:10.0.0.1", "10.0.0.1/32", false},
		{"::ffff:0.0.0.0/64", "", true},
		{"10.0.0.0/40", "", true},
		{"", "", true},
		{"host", "", true},
	}
	for _, tt := range tests {
		got, err := ParseCIDROrAddr(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseCIDROrAddr(%q): error %v; want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && got != netip.MustParsePrefix(tt.want) {
			t.Errorf("ParseCIDROrAddr(%q) = %s; want %s", tt.in, got, tt.want)
		}
	}
}
