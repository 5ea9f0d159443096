package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tunelab/trainer"
)

func envMap(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigRefusesBadSettings(t *testing.T) {
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	badPlans := filepath.Join(t.TempDir(), "plans.json")
	if err := os.WriteFile(badPlans, []byte(`{"plans": [{"id": "pro", "name": "Pro", "included_gpu_seconds": 0,
		"monthly_usd": "29", "annual_usd": "290", "stripe_monthly_price": "price_m", "stripe_annual_price": "yearly"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	badTOML := filepath.Join(t.TempDir(), "plans.toml")
	if err := os.WriteFile(badTOML, []byte("[[plans]]\nid = \"pro\"\nname = \"Pro\"\nincluded_gpu_seconds = 0\nmonthly_usd = \"29\"\n"+
		"annual_usd = \"290\"\nstripe_monthly_price = \"price_m\"\nstripe_annual_price = \"yearly\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"production without key", map[string]string{"TUNELAB_ENV": "production"}, nil, "TUNELAB_SECRET_KEY is required"},
		{"short key", map[string]string{"TUNELAB_SECRET_KEY": "c2hvcnQ="}, nil, "want 32"},
		{"key not base64", map[string]string{"TUNELAB_SECRET_KEY": "not base64!"}, nil, "not valid base64"},
		{"unknown env", map[string]string{"TUNELAB_ENV": "staging"}, nil, "use development or production"},
		{"unknown backend", map[string]string{"TUNELAB_BACKEND": "k8s"}, nil, `"k8s" is not a backend`},
		{"backend named twice", map[string]string{"TUNELAB_BACKEND": "local, local"}, nil, "local is named twice"},
		{"http backend without settings", map[string]string{"TUNELAB_BACKEND": "local,http"}, nil, "TUNELAB_HTTP_TOKEN is required"},
		{"http backend without a worker URL", map[string]string{"TUNELAB_BACKEND": "http", "TUNELAB_HTTP_URL": "https://gpus.example", "TUNELAB_HTTP_TOKEN": "t", "TUNELAB_HTTP_GPU_TYPES": "a100"}, nil, "TUNELAB_WORKER_URL"},
		{"http backend without GPU types", map[string]string{"TUNELAB_BACKEND": "http", "TUNELAB_HTTP_URL": "https://gpus.example"}, nil, "TUNELAB_HTTP_GPU_TYPES is required"},
		{"slurm backend without GPU types", map[string]string{"TUNELAB_BACKEND": "slurm"}, nil, "TUNELAB_SLURM_GPU_TYPES is required"},
		{"slurm GPU type with a colon", map[string]string{"TUNELAB_BACKEND": "slurm", "TUNELAB_SLURM_GPU_TYPES": "a100=gpu:a100"}, nil, "type=gres-type"},
		{"slurm time limit", map[string]string{"TUNELAB_BACKEND": "slurm", "TUNELAB_SLURM_GPU_TYPES": "a100", "TUNELAB_SLURM_TIME_LIMIT": "10s"}, nil, "TUNELAB_SLURM_TIME_LIMIT"},
		{"backend settings disagree", map[string]string{"TUNELAB_BACKEND": "local", "TUNELAB_BACKENDS": "k8s"}, nil, "disagree"},
		{"cert without key", map[string]string{"TUNELAB_TLS_CERT": "c.pem"}, nil, "set both"},
		{"bad base url", map[string]string{"TUNELAB_BASE_URL": "example.com"}, nil, "http:// or https://"},
		{"bad bool", map[string]string{"TUNELAB_TRUST_PROXY": "maybe"}, nil, "true or false"},
		{"unknown flag", nil, []string{"--port", "1"}, "flags: --addr"},
		{"bad upload cap", map[string]string{"TUNELAB_MAX_UPLOAD_MB": "0"}, nil, "from 1 to 100000"},
		{"bad slots", map[string]string{"TUNELAB_LOCAL_SLOTS": "0"}, nil, "from 1 to 64"},
		{"bad worker url", map[string]string{"TUNELAB_WORKER_URL": "127.0.0.1:8080"}, nil, "TUNELAB_WORKER_URL"},
		{"bad heartbeat", map[string]string{"TUNELAB_HEARTBEAT_INTERVAL": "often"}, nil, "such as 30s"},
		{"timeout below twice the interval", map[string]string{"TUNELAB_HEARTBEAT_INTERVAL": "10s", "TUNELAB_HEARTBEAT_TIMEOUT": "15s"}, nil, "at least twice"},
		{"bad dataset retention", map[string]string{"TUNELAB_DATASET_RETENTION": "forever"}, nil, "TUNELAB_DATASET_RETENTION"},
		{"bad queued runs quota", map[string]string{"TUNELAB_QUOTA_QUEUED_RUNS": "-1"}, nil, "TUNELAB_QUOTA_QUEUED_RUNS"},
		{"bad streams quota", map[string]string{"TUNELAB_QUOTA_STREAMS": "many"}, nil, "TUNELAB_QUOTA_STREAMS"},
		{"bad dataset quota", map[string]string{"TUNELAB_QUOTA_DATASET_BYTES": "5 gigs"}, nil, "such as 5GB"},
		{"bad plans file", map[string]string{"TUNELAB_PLANS": badPlans}, nil, "plans[0].stripe_annual_price"},
		{"bad TOML plans file", map[string]string{"TUNELAB_PLANS": badTOML}, nil, "plans[0].stripe_annual_price"},
		{"missing plans file", map[string]string{"TUNELAB_PLANS": "/nonexistent/plans.json"}, nil, "TUNELAB_PLANS"},
		{"bad meter interval", map[string]string{"TUNELAB_METER_INTERVAL": "5s"}, nil, "TUNELAB_METER_INTERVAL"},
		{"bad billing grace", map[string]string{"TUNELAB_BILLING_GRACE": "3 days"}, nil, "TUNELAB_BILLING_GRACE"},
		{"stripe without webhook secret", map[string]string{"TUNELAB_STRIPE_SECRET_KEY": "sk_test_1"}, nil, "TUNELAB_STRIPE_WEBHOOK_SECRET"},
		{"production over plain HTTP", map[string]string{"TUNELAB_ENV": "production", "TUNELAB_SECRET_KEY": key}, nil, "production needs HTTPS"},
		{"production with an http base URL", map[string]string{"TUNELAB_ENV": "production", "TUNELAB_SECRET_KEY": key, "TUNELAB_BASE_URL": "http://tune.example"}, nil, "production needs HTTPS"},
		{"bad series quota", map[string]string{"TUNELAB_QUOTA_SERIES_PER_RUN": "0"}, nil, "TUNELAB_QUOTA_SERIES_PER_RUN"},
		{"bad points quota", map[string]string{"TUNELAB_QUOTA_POINTS_PER_RUN": "lots"}, nil, "TUNELAB_QUOTA_POINTS_PER_RUN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig("serve", tc.args, envMap(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	c, err := loadConfig("serve", []string{"--addr", "127.0.0.1:9", "--data", "/d"}, envMap(map[string]string{
		"TUNELAB_ENV": "production", "TUNELAB_SECRET_KEY": key, "TUNELAB_ADDR": ":1", "TUNELAB_BASE_URL": "https://tune.example/"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9" || c.DataDir != "/d" || c.BaseURL != "https://tune.example" || !c.secure() || !c.production() {
		t.Fatalf("config = %+v", c)
	}
	// TLS served directly is HTTPS too.
	if _, err := loadConfig("serve", nil, envMap(map[string]string{"TUNELAB_ENV": "production", "TUNELAB_SECRET_KEY": key,
		"TUNELAB_TLS_CERT": "c.pem", "TUNELAB_TLS_KEY": "k.pem"})); err != nil {
		t.Fatalf("production with TLS refused: %v", err)
	}
}

func TestQuotaSettings(t *testing.T) {
	c, err := loadConfig("serve", nil, envMap(nil))
	if err != nil || c.QuotaQueuedRuns != 20 || c.QuotaDatasetBytes != 5_000_000_000 || c.QuotaStreams != 32 {
		t.Fatalf("defaults: %d queued runs, %d bytes, %v", c.QuotaQueuedRuns, c.QuotaDatasetBytes, err)
	}
	for v, want := range map[string]int64{"0": 0, "123": 123, "500MB": 500_000_000, "2 GB": 2_000_000_000, "1tb": 1_000_000_000_000, "10kB": 10_000} {
		c, err := loadConfig("serve", nil, envMap(map[string]string{"TUNELAB_QUOTA_DATASET_BYTES": v, "TUNELAB_QUOTA_QUEUED_RUNS": "3"}))
		if err != nil || c.QuotaDatasetBytes != want || c.QuotaQueuedRuns != 3 {
			t.Errorf("TUNELAB_QUOTA_DATASET_BYTES=%q: %d bytes, %d runs, %v; want %d", v, c.QuotaDatasetBytes, c.QuotaQueuedRuns, err, want)
		}
	}
}

func TestMetricQuotaSettings(t *testing.T) {
	c, err := loadConfig("serve", nil, envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.QuotaSeriesPerRun != 1_000 || c.QuotaPointsPerRun != 50_000_000 {
		t.Fatalf("default quotas: %d series, %d points", c.QuotaSeriesPerRun, c.QuotaPointsPerRun)
	}
	c, err = loadConfig("serve", nil, envMap(map[string]string{"TUNELAB_QUOTA_SERIES_PER_RUN": "20", "TUNELAB_QUOTA_POINTS_PER_RUN": "5000"}))
	if err != nil || c.QuotaSeriesPerRun != 20 || c.QuotaPointsPerRun != 5000 {
		t.Fatalf("quotas: %d series, %d points, %v", c.QuotaSeriesPerRun, c.QuotaPointsPerRun, err)
	}
}

func TestDevelopmentSecretKeyIsGeneratedOnceWithMode0600(t *testing.T) {
	dir := t.TempDir()
	c, _ := loadConfig("serve", []string{"--data", dir}, envMap(nil))
	k1, gen, err := loadSecretKey(c)
	if err != nil || !gen || len(k1) != 32 {
		t.Fatalf("first start: %v %v %d", err, gen, len(k1))
	}
	fi, err := os.Stat(secretKeyPath(dir))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, err %v", fi.Mode().Perm(), err)
	}
	k2, gen, err := loadSecretKey(c)
	if err != nil || gen || !bytes.Equal(k1, k2) {
		t.Fatal("second start did not reuse the generated key")
	}
}

func TestServeHealthAndGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	addr, stop := startServerWith(t, nil, dir)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"ok"`) {
		t.Fatalf("healthz: %d %s", resp.StatusCode, b)
	}
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for _, f := range []string{"tunelab.db", "secret.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("first start did not create %s", f)
		}
	}
}

func TestTLSOnlyOffersTLS13AndSecureCookies(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	addr, _ := startServerWith(t, map[string]string{"TUNELAB_TLS_CERT": certFile, "TUNELAB_TLS_KEY": keyFile}, dir)

	old := &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}
	if conn, err := tls.Dial("tcp", addr, old); err == nil {
		conn.Close()
		t.Fatal("a TLS 1.2 handshake succeeded")
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm("https://"+addr+"/signup", url.Values{"email": {"tls@example.com"}, "password": {"a quiet orange giraffe"}, "accept_terms": {"yes"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
		t.Fatalf("negotiated %v, want TLS 1.3", resp.TLS)
	}
	if !strings.Contains(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Fatal("no HSTS over TLS")
	}
	ck := resp.Header.Get("Set-Cookie")
	if !strings.HasPrefix(ck, "__Host-tunelab_session=") || !strings.Contains(ck, "Secure") || !strings.Contains(ck, "HttpOnly") {
		t.Fatalf("Set-Cookie = %q", ck)
	}
}

func TestAdminCreateUser(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	args := []string{"admin", "create-user", "--email", "Ops@Example.com", "--password-stdin", "--admin", "--data", dir}
	if err := run(context.Background(), args, envMap(nil), strings.NewReader("an operator passphrase\n"), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "created admin ops@example.com") {
		t.Fatalf("output %q", out.String())
	}
	err := run(context.Background(), args, envMap(nil), strings.NewReader("an operator passphrase\n"), &out)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate: %v", err)
	}
	err = run(context.Background(), []string{"admin", "create-user", "--email", "weak@example.com", "--password-stdin", "--data", dir}, envMap(nil), strings.NewReader("password\n"), &out)
	if err == nil || !strings.Contains(err.Error(), "commonly used") {
		t.Fatalf("weak password: %v", err)
	}
	err = run(context.Background(), []string{"admin", "create-user", "--email", "x@example.com", "--data", dir}, envMap(nil), strings.NewReader(""), &out)
	if err == nil || !strings.Contains(err.Error(), "--password-stdin") {
		t.Fatalf("missing --password-stdin: %v", err)
	}

	// The admin signs in to the running server and sees the admin area.
	addr, _ := startServerWith(t, nil, dir)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	resp, err := client.PostForm("http://"+addr+"/signin", url.Values{"email": {"ops@example.com"}, "password": {"an operator passphrase"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = client.Get("http://" + addr + "/admin")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `data-testid="admin"`) {
		t.Fatalf("admin page: %d", resp.StatusCode)
	}
}

func TestUnknownCommand(t *testing.T) {
	err := run(context.Background(), []string{"frobnicate"}, envMap(nil), nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("err = %v", err)
	}
}

func writeSelfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// The local backend offers the built-in trainer's catalogue and defaults, handed to it here.
func TestBuiltinCatalogueIsTheTrainers(t *testing.T) {
	models, d := builtinCatalogue()
	if len(models) != len(trainer.BaseModels) {
		t.Fatalf("%d models, the trainer has %d", len(models), len(trainer.BaseModels))
	}
	for i, m := range trainer.BaseModels {
		if models[i].ID != m.ID || models[i].Name != m.Name || models[i].About != m.About {
			t.Errorf("model %d = %+v, want %s", i, models[i], m.ID)
		}
	}
	c := trainer.DefaultConfig()
	if d.Epochs != c.Epochs || d.LearningRate != c.LearningRate || d.LoRARank != c.LoRARank || d.ValidationSplit != c.EvalFraction*100 {
		t.Fatalf("defaults %+v from %+v", d, c)
	}
}
