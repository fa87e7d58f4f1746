package lab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ServiceCIDRs are the API server's --service-cluster-ip-range, dual stack.
const ServiceCIDRs = "10.96.0.0/16,fd96::/112"

const apiServerPort = "6443"

func (c Config) pkiDir() string { return filepath.Join(c.StateDir, "pki") }
func (c Config) pki(name string) string {
	return filepath.Join(c.pkiDir(), name)
}

// controlPlaneProcs are etcd and the API server, in start order.
func controlPlaneProcs(cfg Config) []procSpec {
	return []procSpec{
		{name: "etcd", ns: NSControlPlane, argv: []string{
			cfg.bin("etcd"),
			"--name", "lab",
			"--data-dir", filepath.Join(cfg.StateDir, "etcd"),
			"--listen-client-urls", "http://127.0.0.1:2379",
			"--advertise-client-urls", "http://127.0.0.1:2379",
			"--listen-peer-urls", "http://127.0.0.1:2380",
			"--initial-advertise-peer-urls", "http://127.0.0.1:2380",
			"--initial-cluster", "lab=http://127.0.0.1:2380",
			"--unsafe-no-fsync", // the lab's data is thrown away; fsync only slows tests
			"--log-level", "warn",
		}},
		apiServerProc(cfg),
	}
}

func apiServerProc(cfg Config) procSpec {
	return procSpec{name: "kube-apiserver", ns: NSControlPlane, argv: []string{
		cfg.bin("kube-apiserver"),
		"--etcd-servers", "http://127.0.0.1:2379",
		// All of the control-plane namespace: the LAN and the host link.
		"--bind-address", "0.0.0.0",
		"--advertise-address", ControlPlaneIPv4.String(),
		"--secure-port", apiServerPort,
		"--cert-dir", filepath.Join(cfg.StateDir, "apiserver"),
		"--tls-cert-file", cfg.pki("apiserver.crt"),
		"--tls-private-key-file", cfg.pki("apiserver.key"),
		"--token-auth-file", cfg.pki("tokens.csv"),
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", cfg.pki("sa.pub"),
		"--service-account-signing-key-file", cfg.pki("sa.key"),
		"--service-cluster-ip-range", ServiceCIDRs,
		"--profiling=false",
	}}
}

// startControlPlane starts etcd and the API server and waits until both are ready.
func startControlPlane(ctx context.Context, cfg Config) error {
	procs := controlPlaneProcs(cfg)
	etcd := procs[0]
	if err := startProc(cfg, etcd); err != nil {
		return err
	}
	err := waitReady(ctx, cfg, etcd, 30*time.Second, func(ctx context.Context) error {
		_, err := execIn(ctx, NSControlPlane, "curl", "-sS", "--fail", "--noproxy", "*", "--max-time", "1", "http://127.0.0.1:2379/health")
		return err
	})
	if err != nil {
		return err
	}
	return startAPIServer(ctx, cfg)
}

func startAPIServer(ctx context.Context, cfg Config) error {
	p := apiServerProc(cfg)
	if _, err := ensureProc(cfg, p); err != nil {
		return err
	}
	rc, err := restConfig(cfg)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("building the Kubernetes client: %w", err)
	}
	return waitReady(ctx, cfg, p, 60*time.Second, func(ctx context.Context) error { return apiReady(ctx, cs) })
}

// StopAPIServer kills the API server and waits until it is gone; etcd keeps
// running. It uses SIGKILL, so clients lose their connections at once, as when the
// control plane fails: after SIGTERM the API server waits up to a minute for the
// watches of kube-proxy and others to drain.
func (l *Lab) StopAPIServer() error {
	return stopProc(l.cfg, "kube-apiserver", syscall.SIGKILL)
}

// StartAPIServer starts the API server again and waits until it is ready. It does
// nothing but wait when the API server is running.
func (l *Lab) StartAPIServer(ctx context.Context) error {
	return startAPIServer(ctx, l.cfg)
}

func (l *Lab) apiReady(ctx context.Context) error { return apiReady(ctx, l.cs) }

func apiReady(ctx context.Context, cs kubernetes.Interface) error {
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("GET /readyz: %w (%s)", err, body)
	}
	return nil
}

// KubeconfigPath returns the admin kubeconfig, which works from the host and from
// every lab namespace.
func (l *Lab) KubeconfigPath() string { return l.cfg.KubeconfigPath() }

// Client returns a Kubernetes client for the lab, as admin.
func (l *Lab) Client() kubernetes.Interface { return l.cs }

func restConfig(cfg Config) (*rest.Config, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.KubeconfigPath())
	if err != nil {
		return nil, fmt.Errorf("loading the lab's kubeconfig: %w", err)
	}
	rc.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil } // never through a proxy
	rc.QPS, rc.Burst = 100, 200
	rc.Timeout = 30 * time.Second
	return rc, nil
}

// writeCredentials writes the API server's CA and serving certificate, the service
// account key pair, the token file and the admin kubeconfig, all made with Go's
// crypto so no openssl is needed.
func writeCredentials(cfg Config) error {
	if err := os.MkdirAll(cfg.pkiDir(), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", cfg.pkiDir(), err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating the CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "herald-lab-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("creating the CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("parsing the CA certificate: %w", err)
	}

	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating the API server key: %w", err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{
			ControlPlaneIPv4.AsSlice(), ControlPlaneIPv6.AsSlice(), cpHostLinkIP.Addr().AsSlice(),
			net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.96.0.1"), net.ParseIP("fd96::1"),
		},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("creating the API server certificate: %w", err)
	}
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return fmt.Errorf("encoding the API server key: %w", err)
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generating the service account key: %w", err)
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return fmt.Errorf("encoding the service account public key: %w", err)
	}

	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return fmt.Errorf("generating the admin token: %w", err)
	}
	token := hex.EncodeToString(tok)

	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	files := []struct {
		name string
		data []byte
	}{
		{"ca.crt", caPEM},
		{"apiserver.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER})},
		{"apiserver.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: srvKeyDER})},
		{"sa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)})},
		{"sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub})},
		// token,user,uid,"groups": system:masters passes every authorization check.
		{"tokens.csv", fmt.Appendf(nil, "%s,admin,admin,\"system:masters\"\n", token)},
	}
	for _, f := range files {
		if err := os.WriteFile(cfg.pki(f.name), f.data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
	}

	kc := clientcmdapi.NewConfig()
	kc.Clusters["herald-lab"] = &clientcmdapi.Cluster{
		Server:                   "https://" + net.JoinHostPort(ControlPlaneIPv4.String(), apiServerPort),
		CertificateAuthorityData: caPEM,
	}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["herald-lab"] = &clientcmdapi.Context{Cluster: "herald-lab", AuthInfo: "admin"}
	kc.CurrentContext = "herald-lab"
	if err := clientcmd.WriteToFile(*kc, cfg.KubeconfigPath()); err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	return nil
}
