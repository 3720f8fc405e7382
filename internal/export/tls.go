package export

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
)

// certLoader serves the TCP listener's TLS configuration and re-reads the
// certificate, key and client CA when any of the files changes on disk (a
// rotated Kubernetes Secret swaps its symlinks). Each handshake gets one
// consistent snapshot. A reload that fails keeps the previous snapshot and
// is logged.
type certLoader struct {
	certPath, keyPath, caPath string
	names                     []string
	log                       *slog.Logger

	mu     sync.Mutex
	stamps [3]fileStamp
	snap   *tls.Config
}

type fileStamp struct {
	mtime time.Time
	size  int64
	ino   uint64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	s := fileStamp{mtime: fi.ModTime(), size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s, nil
}

func newCertLoader(c config.TLSConfig, log *slog.Logger) (*certLoader, error) {
	l := &certLoader{certPath: c.Cert, keyPath: c.Key, caPath: c.ClientCA, names: slices.Clone(c.ClientNames), log: log}
	if err := l.reload(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *certLoader) paths() [3]string { return [3]string{l.certPath, l.keyPath, l.caPath} }

// reload reads all three files and builds a new snapshot. Callers hold no
// lock; reload takes it.
func (l *certLoader) reload() error {
	var stamps [3]fileStamp
	for i, p := range l.paths() {
		s, err := stampOf(p)
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		stamps[i] = s
	}
	cert, err := tls.LoadX509KeyPair(l.certPath, l.keyPath)
	if err != nil {
		return fmt.Errorf("load server certificate %s / %s: %w", l.certPath, l.keyPath, err)
	}
	caPEM, err := os.ReadFile(l.caPath)
	if err != nil {
		return fmt.Errorf("read client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("client CA %s: no PEM certificate found", l.caPath)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{"h2"},
	}
	if len(l.names) > 0 {
		names := l.names
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no client certificate")
			}
			return checkClientName(cs.PeerCertificates[0], names)
		}
	}
	l.mu.Lock()
	l.stamps, l.snap = stamps, cfg
	l.mu.Unlock()
	return nil
}

func checkClientName(c *x509.Certificate, names []string) error {
	if slices.Contains(names, c.Subject.CommonName) {
		return nil
	}
	for _, n := range c.DNSNames {
		if slices.Contains(names, n) {
			return nil
		}
	}
	for _, u := range c.URIs {
		if slices.Contains(names, u.String()) {
			return nil
		}
	}
	return fmt.Errorf("client certificate %q is not in export.tls.client_names", c.Subject.CommonName)
}

func (l *certLoader) changed() bool {
	l.mu.Lock()
	old := l.stamps
	l.mu.Unlock()
	for i, p := range l.paths() {
		s, err := stampOf(p)
		if err != nil || s != old[i] {
			return true
		}
	}
	return false
}

// configForClient is tls.Config.GetConfigForClient.
func (l *certLoader) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	if l.changed() {
		if err := l.reload(); err != nil {
			l.log.Warn("TLS files changed but could not be reloaded; keeping the previous certificates", "err", err)
		} else {
			l.log.Info("reloaded TLS certificates", "cert", l.certPath, "client_ca", l.caPath)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.snap, nil
}

// serverTLSConfig returns the base config handed to gRPC's credentials.
func (l *certLoader) serverTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		ClientAuth:         tls.RequireAndVerifyClientCert,
		GetConfigForClient: l.configForClient,
	}
}
