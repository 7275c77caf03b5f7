// Package mytest runs throw-away MariaDB servers for tests:
// mariadb-install-db into a temporary directory, then mariadbd on
// 127.0.0.1 with a free port and a private Unix socket. The superuser
// "root" has no password and is used over the socket; a user "app" with a
// password full of awkward characters and every privilege connects over
// TCP, as the plugin does.
//
// mariadbd refuses to run as root: when the tests run as root, the server
// runs as the "mysql" user, so the server's directory is created under
// /var/tmp (its parents must be traversable by that user) and handed to
// it. The server gets the parent-death signal, so a test binary that dies
// does not leave it running; directories of dead test runs are removed by
// the next Start.
package mytest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// installHint is what to do when MariaDB is missing.
const installHint = "run scripts/install-deps.sh (or set LB_MARIADB_BINDIR to a directory holding mariadbd, mariadb-install-db, mariadb and mariadb-dump)"

// required are the binaries a server and the tests need.
var required = []string{"mariadbd", "mariadb-install-db", "mariadb", "mariadb-dump"}

// AppUser is the name of the TCP user with a password.
const AppUser = "app"

// Options configure Start.
type Options struct {
	// TLS gives the server a certificate for 127.0.0.1 signed by a test CA
	// (TLSFiles.CA).
	TLS bool
}

// TLSFiles are the PEM files of a TLS server.
type TLSFiles struct {
	// CA signed the server's certificate.
	CA string
	// OtherCA signed nothing the server has.
	OtherCA string
}

// Server is a running MariaDB server.
type Server struct {
	// ClientBinDir holds mariadb and mariadb-dump.
	ClientBinDir string
	// Dir is the server's temporary directory.
	Dir string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// Socket is the Unix socket, for root without a password.
	Socket string
	// Password is AppUser's password.
	Password string
	// TLS is set when the server was started with TLS.
	TLS *TLSFiles

	tools   map[string]string
	runAs   *user.User // nil: the server runs as the current user
	dataDir string
	logFile string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// findTools finds the binaries: in $LB_MARIADB_BINDIR when set, else in
// PATH, /usr/sbin and /usr/bin.
func findTools() (map[string]string, error) {
	var dirs []string
	if d := os.Getenv("LB_MARIADB_BINDIR"); d != "" {
		dirs = []string{d}
	} else {
		dirs = append(filepath.SplitList(os.Getenv("PATH")), "/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")
	}
	tools := map[string]string{}
	var missing []string
	for _, name := range required {
		for _, d := range dirs {
			p := filepath.Join(d, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
				tools[name] = p
				break
			}
		}
		if tools[name] == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("mytest: MariaDB binaries not found (%s): %s", strings.Join(missing, ", "), installHint)
	}
	if filepath.Dir(tools["mariadb"]) != filepath.Dir(tools["mariadb-dump"]) {
		return nil, fmt.Errorf("mytest: mariadb and mariadb-dump are in different directories (%s, %s)", tools["mariadb"], tools["mariadb-dump"])
	}
	return tools, nil
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listened on a moment
// ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// New starts a server that is stopped and removed when t ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// baseDir is where server directories go: $LB_MYTEST_DIR, else /var/tmp,
// whose parents any user can traverse (TMPDIR may be private to root).
func baseDir() string {
	if d := os.Getenv("LB_MYTEST_DIR"); d != "" {
		return d
	}
	if fi, err := os.Stat("/var/tmp"); err == nil && fi.IsDir() {
		return "/var/tmp"
	}
	return os.TempDir()
}

const dirPrefix = "lbmytest-"

// Start initializes and starts a server. The caller must Stop it.
func Start(opts Options) (*Server, error) {
	tools, err := findTools()
	if err != nil {
		return nil, err
	}
	s := &Server{
		ClientBinDir: filepath.Dir(tools["mariadb"]),
		tools:        tools,
		// Everything the option-file and URI parsers must get right:
		// a leading space, quotes, backslash, "#", ";", "%", "@", "/", ":".
		Password: ` lb-Test:p@ss/w%rd+#;"q'\x ` + randomHex(6),
	}
	if os.Geteuid() == 0 {
		if s.runAs, err = user.Lookup("mysql"); err != nil {
			return nil, fmt.Errorf("mytest: running as root needs a mysql user (%v): %s", err, installHint)
		}
	}
	base := baseDir()
	reapStale(base)
	if s.Dir, err = os.MkdirTemp(base, dirPrefix); err != nil {
		return nil, fmt.Errorf("mytest: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			s.kill()
			os.RemoveAll(s.Dir)
		}
	}()
	if err := os.WriteFile(filepath.Join(s.Dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, fmt.Errorf("mytest: %w", err)
	}
	if err := os.Chmod(s.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("mytest: %w", err)
	}
	if err := s.chown(s.Dir); err != nil {
		return nil, err
	}
	if err := s.checkTraversable(); err != nil {
		return nil, err
	}
	s.dataDir = filepath.Join(s.Dir, "data")
	s.logFile = filepath.Join(s.Dir, "error.log")
	s.Socket = filepath.Join(s.Dir, "sock")

	args := []string{"--no-defaults", "--datadir=" + s.dataDir, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve"}
	if s.runAs != nil {
		args = append(args, "--user="+s.runAs.Username)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, tools["mariadb-install-db"], args...)
	install.Dir = s.Dir
	install.Env = cleanEnv()
	if out, err := install.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mytest: mariadb-install-db: %w\n%s\n(the parents of %s must be traversable by the mysql user)", err, out, s.Dir)
	}

	var serverArgs []string
	if opts.TLS {
		if s.TLS, err = s.writeTLSFiles(); err != nil {
			return nil, err
		}
		tlsDir := filepath.Join(s.Dir, "tls")
		serverArgs = append(serverArgs, "--ssl-ca="+s.TLS.CA,
			"--ssl-cert="+filepath.Join(tlsDir, "server.pem"), "--ssl-key="+filepath.Join(tlsDir, "server-key.pem"))
	}
	// The free port may be taken between FreePort and the server's bind:
	// try a few.
	for attempt := 0; ; attempt++ {
		if s.Port, err = FreePort(); err != nil {
			return nil, fmt.Errorf("mytest: %w", err)
		}
		err = s.startServer(serverArgs)
		if err == nil {
			break
		}
		if attempt == 2 || !strings.Contains(err.Error(), "Address already in use") {
			return nil, err
		}
	}
	if _, err := s.SQL("", fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY %s;\nGRANT ALL PRIVILEGES ON *.* TO '%s'@'127.0.0.1';",
		AppUser, QuoteString(s.Password), AppUser)); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// startServer starts mariadbd and waits until it answers on its socket.
func (s *Server) startServer(extra []string) error {
	args := append([]string{"--no-defaults", "--datadir=" + s.dataDir,
		"--port=" + strconv.Itoa(s.Port), "--bind-address=127.0.0.1", "--socket=" + s.Socket,
		"--pid-file=" + filepath.Join(s.Dir, "mariadbd.pid"), "--log-error=" + s.logFile,
		"--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=32M",
		"--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", "--max-connections=60",
	}, extra...)
	var cmd *exec.Cmd
	if s.runAs != nil {
		// setpriv sets the parent-death signal after dropping privileges,
		// which mariadbd's own --user would clear.
		cmd = exec.Command("setpriv", append([]string{"--reuid=" + s.runAs.Uid, "--regid=" + s.runAs.Gid,
			"--init-groups", "--pdeathsig=KILL", "--", s.tools["mariadbd"]}, args...)...)
	} else {
		cmd = exec.Command(s.tools["mariadbd"], args...)
	}
	cmd.Dir = s.Dir
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	os.Remove(s.logFile)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("mytest: starting mariadbd: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			log, _ := os.ReadFile(s.logFile)
			s.cmd = nil
			return fmt.Errorf("mytest: mariadbd exited at start-up: %s\nserver log:\n%s%s", cmd.ProcessState, log, out.String())
		default:
		}
		if _, err := s.SQL("", "SELECT 1"); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(s.logFile)
			s.kill()
			return fmt.Errorf("mytest: mariadbd did not answer within 60 s\nserver log:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills the server and removes its directory.
func (s *Server) Stop() error {
	s.kill()
	if s.Dir == "" {
		return nil
	}
	return os.RemoveAll(s.Dir)
}

func (s *Server) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
	}
	s.cmd = nil
}

// reapStale removes the directories of test runs whose process is gone,
// killing a server still running in one.
func reapStale(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner"))
		if err != nil {
			continue
		}
		owner, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || owner <= 0 || processAlive(owner) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(d, "mariadbd.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				// Only a mariadbd of that directory, not a reused pid.
				if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && bytes.Contains(cmdline, []byte(d)) {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		os.RemoveAll(d)
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func (s *Server) chown(path string) error {
	if s.runAs == nil {
		return nil
	}
	uid, _ := strconv.Atoi(s.runAs.Uid)
	gid, _ := strconv.Atoi(s.runAs.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("mytest: %w", err)
	}
	return nil
}

// checkTraversable fails early, with a clear message, when the server's
// user could not reach its directory.
func (s *Server) checkTraversable() error {
	if s.runAs == nil {
		return nil
	}
	for d := filepath.Dir(s.Dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("mytest: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("mytest: %s is not traversable by the mysql user (mode %v): set LB_MYTEST_DIR to a directory whose parents are", d, fi.Mode().Perm())
		}
		if d == "/" {
			return nil
		}
	}
}

// writeTLSFiles writes a CA, a server certificate for 127.0.0.1 signed by
// it, and a second, unrelated CA.
func (s *Server) writeTLSFiles() (*TLSFiles, error) {
	dir := filepath.Join(s.Dir, "tls")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("mytest: %w", err)
	}
	caKey, caCert, caPEM, err := newCA("Label Backup test CA")
	if err != nil {
		return nil, err
	}
	_, _, otherPEM, err := newCA("Label Backup unrelated CA")
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("mytest: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"db.lbtest.invalid"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("mytest: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("mytest: %w", err)
	}
	files := &TLSFiles{CA: filepath.Join(dir, "ca.pem"), OtherCA: filepath.Join(dir, "other-ca.pem")}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{files.CA, caPEM, 0o644},
		{files.OtherCA, otherPEM, 0o644},
		{filepath.Join(dir, "server.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644},
		{filepath.Join(dir, "server-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
	} {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			return nil, fmt.Errorf("mytest: %w", err)
		}
		if err := s.chown(f.path); err != nil {
			return nil, err
		}
	}
	return files, nil
}

func newCA(name string) (*ecdsa.PrivateKey, *x509.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("mytest: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("mytest: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("mytest: %w", err)
	}
	return key, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// URI is a mysql:// connection string for db over TCP as AppUser, with the
// password percent-encoded and extra query parameters.
func (s *Server) URI(db string, query ...string) string {
	return s.URIFor(AppUser, s.Password, db, query...)
}

// URIFor is a mysql:// connection string for another user.
func (s *Server) URIFor(user, password, db string, query ...string) string {
	u := url.URL{
		Scheme: "mysql",
		User:   url.UserPassword(user, password),
		Host:   net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)),
		Path:   "/" + db,
	}
	str := u.String()
	if len(query) > 0 {
		str += "?" + strings.Join(query, "&")
	}
	return str
}

// Tool is the path of one of the binaries the package found.
func (s *Server) Tool(name string) string { return s.tools[name] }

// Client is the mariadb client as root over the socket, with utf8mb4, in
// db when it is not empty, with more arguments. It is what a person
// restoring by hand runs.
func (s *Server) Client(ctx context.Context, db string, args ...string) *exec.Cmd {
	all := []string{"--no-defaults", "--socket=" + s.Socket, "--user=root", "--default-character-set=utf8mb4"}
	all = append(all, args...)
	if db != "" {
		all = append(all, db)
	}
	cmd := exec.CommandContext(ctx, s.tools["mariadb"], all...)
	cmd.Env = cleanEnv()
	return cmd
}

// SQL runs a script in db (none when empty) as root over the socket and
// returns its tab-separated output without column names. It stops at the
// first error.
func (s *Server) SQL(db, script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := s.Client(ctx, db, "--batch", "--skip-column-names")
	cmd.Stdin = strings.NewReader(script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("mytest: mariadb in %q: %w: %s", db, err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// CreateDB creates an empty utf8mb4 database.
func (s *Server) CreateDB(name string) error {
	_, err := s.SQL("", fmt.Sprintf("CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;", QuoteIdent(name)))
	return err
}

// QuoteIdent quotes an identifier with backquotes.
func QuoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// QuoteString quotes a string literal.
func QuoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func cleanEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	if env[0] == "PATH=" {
		env[0] = "PATH=/usr/local/bin:/usr/bin:/bin"
	}
	return env
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("mytest: no randomness"))
	}
	return hex.EncodeToString(b)
}
