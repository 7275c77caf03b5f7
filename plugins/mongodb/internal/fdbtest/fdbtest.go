// Package fdbtest runs a throw-away FerretDB server for tests: the MongoDB
// wire protocol over a SQLite directory, on 127.0.0.1, with SCRAM
// authentication (FerretDB's --test-enable-new-auth) and one setup user,
// "root" in the admin database.
//
// No mongod can be installed on the test machines; FerretDB v1.24.2 stands
// in for it. scripts/install-deps.sh --with-mongo builds the binary.
package fdbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Version is the FerretDB release the tests use.
const Version = "v1.24.2"

// installHint is what to do when the binary is missing.
const installHint = "run scripts/install-deps.sh --with-mongo (or set LB_FERRETDB to a FerretDB " + Version + " binary)"

// Server is a running FerretDB.
type Server struct {
	// Port is the MongoDB wire-protocol port on 127.0.0.1.
	Port int
	// User and Password log in as the setup user (authSource admin).
	User, Password string
	// Dir holds the data, the state and the log.
	Dir string

	cmd  *exec.Cmd
	done chan error
	log  string
}

// FindBinary finds FerretDB: $LB_FERRETDB, else the tool cache
// ($LB_TOOLS or ~/.cache/label-backup/tools)/ferretdb@<Version>/ferretdb,
// else "ferretdb" in PATH.
func FindBinary() (string, error) {
	if p := os.Getenv("LB_FERRETDB"); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("LB_FERRETDB=%s is not an executable file: %s", p, installHint)
	}
	tools := os.Getenv("LB_TOOLS")
	if tools == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no home directory to find FerretDB in: %s", installHint)
		}
		tools = filepath.Join(home, ".cache", "label-backup", "tools")
	}
	p := filepath.Join(tools, "ferretdb@"+Version, "ferretdb")
	if isExecutable(p) {
		return p, nil
	}
	if lp, err := exec.LookPath("ferretdb"); err == nil {
		return lp, nil
	}
	return "", fmt.Errorf("FerretDB %s not found at %s nor in PATH: %s", Version, p, installHint)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// FreePort returns a TCP port on 127.0.0.1 nobody listens on right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts a server in a new temporary directory and waits until the
// setup user can log in.
func Start() (*Server, error) {
	bin, err := FindBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "lb-ferretdb-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, User: "root", Password: randomPassword(), log: filepath.Join(dir, "ferretdb.log")}
	if err := s.start(bin); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// randomPassword has characters that must be percent-encoded in a URI.
func randomPassword() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "Pw@:/%?#&=+ " + hex.EncodeToString(b)
}

func (s *Server) start(bin string) error {
	for _, d := range []string{"data", "state"} {
		if err := os.Mkdir(filepath.Join(s.Dir, d), 0o700); err != nil {
			return err
		}
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	debugPort, err := FreePort()
	if err != nil {
		return err
	}
	s.Port = port
	logFile, err := os.Create(s.log)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(bin,
		"--handler=sqlite",
		"--sqlite-url=file:"+filepath.Join(s.Dir, "data")+"/",
		"--state-dir="+filepath.Join(s.Dir, "state"),
		fmt.Sprintf("--listen-addr=127.0.0.1:%d", port),
		fmt.Sprintf("--debug-addr=127.0.0.1:%d", debugPort),
		"--telemetry=disable",
		"--log-level=warn",
		"--test-enable-new-auth",
		"--setup-database=admin",
		"--setup-username="+s.User,
	)
	// The password goes through the environment, not argv.
	cmd.Env = append(os.Environ(), "FERRETDB_SETUP_PASSWORD="+s.Password)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	s.cmd = cmd
	s.done = make(chan error, 1)
	go func() { s.done <- cmd.Wait() }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		err := s.ping()
		if err == nil {
			return nil
		}
		select {
		case werr := <-s.done:
			s.done <- werr
			return fmt.Errorf("ferretdb exited at start-up (%v):\n%s", werr, s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ferretdb not ready after 60 s: %v\n%s", err, s.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Server) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(s.URI("")).SetServerSelectionTimeout(time.Second))
	if err != nil {
		return err
	}
	defer c.Disconnect(ctx)
	return c.Ping(ctx, nil)
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// URI is a connection string logging in as the setup user, with the
// database path db (may be empty) and extra query parameters.
func (s *Server) URI(db string, params ...string) string {
	q := append([]string{"authSource=admin"}, params...)
	return fmt.Sprintf("mongodb://%s:%s@127.0.0.1:%d/%s?%s", s.User, Escape(s.Password), s.Port, db, strings.Join(q, "&"))
}

// Client connects as the setup user.
func (s *Server) Client() (*mongo.Client, error) {
	return mongo.Connect(options.Client().ApplyURI(s.URI("")))
}

// Stop stops the server and removes its directory.
func (s *Server) Stop() error {
	var err error
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case werr := <-s.done:
			var ee *exec.ExitError
			if werr != nil && !errors.As(werr, &ee) {
				err = werr
			}
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
			err = errors.New("ferretdb did not stop within 10 s of SIGTERM; killed")
		}
	}
	if rerr := os.RemoveAll(s.Dir); err == nil {
		err = rerr
	}
	return err
}

// Escape percent-encodes everything but RFC 3986's unreserved characters.
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
