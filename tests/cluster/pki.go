// Package cluster runs a real Kubernetes control plane (etcd,
// kube-apiserver, kube-controller-manager) on 127.0.0.1 for tests and for
// `make cluster-up`. No kubelet: pods are scheduled nowhere.
package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

type keyPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA() (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cairn-test-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return &keyPair{cert, key}, err
}

var serial int64 = 1

// issue signs a leaf certificate: a server certificate when hosts are given,
// else a client certificate for user cn in groups orgs.
func (ca *keyPair) issue(cn string, orgs []string, hosts []string) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(hosts) > 0 {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return &keyPair{cert, key}, err
}

func (kp *keyPair) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kp.cert.Raw})
}

func (kp *keyPair) keyPEM() ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(kp.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func (kp *keyPair) write(dir, name string) error {
	k, err := kp.keyPEM()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), kp.certPEM(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".key"), k, 0o600)
}

// writeServiceAccountKey makes the RSA key that signs service account tokens.
func writeServiceAccountKey(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

// kubeconfig writes a kubeconfig for a client certificate.
func kubeconfig(path, server, caFile, certFile, keyFile, user string) error {
	s := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: cairn-test
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: cairn-test
  context:
    cluster: cairn-test
    user: %s
current-context: cairn-test
`, server, caFile, user, certFile, keyFile, user)
	return os.WriteFile(path, []byte(s), 0o600)
}

// IssueClient signs a client certificate for user cn in groups orgs with
// the cluster's CA and writes DIR/pki/<name>.crt and .key; hosts, if
// given, make it a serving certificate too. Only for clusters this
// process started.
func (c *Cluster) IssueClient(name, cn string, orgs, hosts []string) (certFile, keyFile string, err error) {
	if c.ca == nil {
		return "", "", fmt.Errorf("cluster in %s was not started by this process: its CA key is not loaded", c.Dir)
	}
	kp, err := c.ca.issue(cn, orgs, hosts)
	if err != nil {
		return "", "", err
	}
	pki := filepath.Join(c.Dir, "pki")
	if err := kp.write(pki, name); err != nil {
		return "", "", err
	}
	return filepath.Join(pki, name+".crt"), filepath.Join(pki, name+".key"), nil
}

// CAFile is the cluster CA's certificate.
func (c *Cluster) CAFile() string { return filepath.Join(c.Dir, "pki", "ca.crt") }

// WriteKubeconfig writes a kubeconfig for a client certificate that
// reaches the API server at server.
func WriteKubeconfig(path, server, caFile, certFile, keyFile, user string) error {
	return kubeconfig(path, server, caFile, certFile, keyFile, user)
}
