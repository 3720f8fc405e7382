package export

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/kestrel-sec/kestrel/internal/config"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial int64 = 1

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM cert and key for a leaf signed by ca.
func (ca *testCA) issue(t *testing.T, cn string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"kestrel.test"}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames = []string{cn}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	// Write then rename, as a Secret update does, so readers never see a
	// half-written file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Must show 3, first half: server reflection lists the service over the
// unix socket.
func TestReflectionListsService(t *testing.T) {
	ts := startServer(t, 16, nil, Sources{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc := reflectionpb.NewServerReflectionClient(rawConn(t, ts.sock))
	st, err := rc.ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range r.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	t.Logf("services by reflection: %v", names)
	for _, want := range []string{ServiceName, "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v; want %s among them", names, want)
		}
	}
	// The file descriptor of the service resolves too.
	if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: ServiceName}}); err != nil {
		t.Fatal(err)
	}
	if r, err = st.Recv(); err != nil || len(r.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Fatalf("file containing %s: %v %v", ServiceName, r, err)
	}
}

// Must show 3, second half: the TCP port refuses a client without a
// certificate (or with one from another CA, or below TLS 1.3) and accepts
// one with a certificate; a rotated server certificate is picked up without
// a restart.
func TestTCPRequiresMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "kestrel test CA")
	srvCert, srvKey := ca.issue(t, "kestrel.test", true)
	cliCert, cliKey := ca.issue(t, "siem", false)
	paths := map[string]string{"cert": filepath.Join(dir, "tls.crt"), "key": filepath.Join(dir, "tls.key"), "ca": filepath.Join(dir, "ca.crt")}
	writeFile(t, paths["cert"], srvCert)
	writeFile(t, paths["key"], srvKey)
	writeFile(t, paths["ca"], ca.pem)

	ts := startServer(t, 16, func(c *config.ExportConfig) {
		c.TCPListen = "127.0.0.1:0"
		c.TLS = config.TLSConfig{Cert: paths["cert"], Key: paths["key"], ClientCA: paths["ca"], ClientNames: []string{"siem"}}
	}, Sources{})
	addr := ts.srv.TCPAddr().String()

	cliPair, err := tls.X509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	otherCA := newCA(t, "other CA")
	otherCert, otherKey := otherCA.issue(t, "siem", false)
	otherPair, _ := tls.X509KeyPair(otherCert, otherKey)
	wrongNameCert, wrongNameKey := ca.issue(t, "intruder", false)
	wrongNamePair, _ := tls.X509KeyPair(wrongNameCert, wrongNameKey)

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	call := func(cfg *tls.Config) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err = sensorv1.NewSensorServiceClient(conn).GetStatus(ctx, &sensorv1.GetStatusRequest{})
		return err
	}
	tests := []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"no client certificate", &tls.Config{RootCAs: roots, ServerName: "kestrel.test"}, false},
		{"certificate from another CA", &tls.Config{RootCAs: roots, ServerName: "kestrel.test", Certificates: []tls.Certificate{otherPair}}, false},
		{"certificate not in client_names", &tls.Config{RootCAs: roots, ServerName: "kestrel.test", Certificates: []tls.Certificate{wrongNamePair}}, false},
		{"TLS 1.2 only", &tls.Config{RootCAs: roots, ServerName: "kestrel.test", Certificates: []tls.Certificate{cliPair}, MaxVersion: tls.VersionTLS12}, false},
		{"valid client certificate", &tls.Config{RootCAs: roots, ServerName: "kestrel.test", Certificates: []tls.Certificate{cliPair}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := call(tt.cfg)
			if tt.ok && err != nil {
				t.Fatalf("got %v; want success", err)
			}
			if !tt.ok && err == nil {
				t.Fatal("got success; want the connection refused")
			}
			t.Logf("result: %v", err)
		})
	}

	// Plain-text gRPC against the TLS port fails.
	t.Run("plaintext", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		if n > 0 && string(buf[:3]) != "\x15\x03\x01" && string(buf[:3]) != "\x15\x03\x03" {
			t.Fatalf("plaintext got %q; want a TLS alert or a closed connection", buf[:n])
		}
	})

	// Rotate the server certificate to one from a new CA: a client that
	// trusts only the new CA connects once the files change.
	t.Run("reload", func(t *testing.T) {
		ca2 := newCA(t, "rotated CA")
		c2, k2 := ca2.issue(t, "kestrel.test", true)
		roots2 := x509.NewCertPool()
		roots2.AddCert(ca2.cert)
		cfg2 := &tls.Config{RootCAs: roots2, ServerName: "kestrel.test", Certificates: []tls.Certificate{cliPair}}
		if err := call(cfg2); err == nil {
			t.Fatal("client trusting only the new CA connected before rotation")
		}
		writeFile(t, paths["key"], k2)
		writeFile(t, paths["cert"], c2)
		if err := call(cfg2); err != nil {
			t.Fatalf("after rotation: %v", err)
		}
	})
}

func TestNewServerBadTLSFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default().Export
	cfg.UnixSocket = filepath.Join(dir, "s.sock")
	cfg.TCPListen = "127.0.0.1:0"
	cfg.TLS = config.TLSConfig{Cert: filepath.Join(dir, "missing.crt"), Key: filepath.Join(dir, "missing.key"), ClientCA: filepath.Join(dir, "ca.crt")}
	if _, err := NewServer(cfg, NewRing(16), Sources{}, nil); err == nil {
		t.Fatal("NewServer with missing certificate files succeeded")
	}
	ca := newCA(t, "ca")
	c, k := ca.issue(t, "kestrel.test", true)
	writeFile(t, cfg.TLS.Cert, c)
	writeFile(t, cfg.TLS.Key, k)
	writeFile(t, cfg.TLS.ClientCA, []byte("not a certificate"))
	if _, err := NewServer(cfg, NewRing(16), Sources{}, nil); err == nil {
		t.Fatal("NewServer with a client CA file holding no certificate succeeded")
	}
}
