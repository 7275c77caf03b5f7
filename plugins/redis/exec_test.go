package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
)

// fakeContainer is an sdk.Executor standing in for the host's Docker exec,
// with the semantics the SDK documents: stdout goes to Command.Stdout (in
// chunks of chunk bytes, when set), a non-zero exit is an *sdk.ExitError
// with the scrubbed stderr, and no output is ErrEmptyDump unless allowed.
// run answers each command; cat reads files.
type fakeContainer struct {
	run   func(c sdk.Command) (stdout []byte, stderr string, code int)
	files map[string]string
	chunk int

	mu   sync.Mutex
	cmds []sdk.Command
}

func (f *fakeContainer) Run(ctx context.Context, c sdk.Command) (sdk.ExecResult, error) {
	f.mu.Lock()
	f.cmds = append(f.cmds, c)
	f.mu.Unlock()
	var out []byte
	var stderr string
	code := 0
	switch {
	case c.Argv[0] == "cat":
		content, ok := f.files[c.Argv[len(c.Argv)-1]]
		if !ok {
			stderr, code = "cat: "+c.Argv[len(c.Argv)-1]+": No such file or directory", 1
		}
		out = []byte(content)
	case f.run != nil:
		out, stderr, code = f.run(c)
	default:
		stderr, code = "sh: exec: "+c.Argv[0]+": not found", 127
	}
	res := sdk.ExecResult{Stderr: scrub(stderr, c.Secrets)}
	w := c.Stdout
	if w == nil {
		w = io.Discard
	}
	for len(out) > 0 {
		if ctx.Err() != nil {
			return res, fmt.Errorf("%s cancelled: %w", c.Argv[0], ctx.Err())
		}
		n := len(out)
		if f.chunk > 0 {
			n = min(n, f.chunk)
		}
		if _, err := w.Write(out[:n]); err != nil {
			return res, fmt.Errorf("writing %s output: %w", c.Argv[0], err)
		}
		res.StdoutBytes += int64(n)
		out = out[n:]
	}
	if code != 0 {
		return res, &sdk.ExitError{Tool: c.Argv[0], ExitCode: code, Stderr: res.Stderr}
	}
	if res.StdoutBytes == 0 && !c.AllowEmptyOutput {
		return res, fmt.Errorf("%s wrote no output: %w", c.Argv[0], sdk.ErrEmptyDump)
	}
	return res, nil
}

// commands returns the commands run so far.
func (f *fakeContainer) commands() []sdk.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cmds)
}

func execTarget(conn string) sdk.Target {
	return sdk.Target{Connection: conn, Options: map[string]string{sdk.OptionMode: sdk.ModeExec},
		Container: sdk.ContainerRef{ID: "abc", Name: "cache"}}
}

// testRDB is a small valid RDB file.
var testRDB = makeRDB("0010", []byte("\xfa\x09redis-ver\x067.0.15\xfe\x00\xfb\x01\x00\x00\x01k\x01v"))

// rdbCLI answers redis-cli --rdb - like redis-cli 7.0: a diskless
// transfer leaves the end marker on stdout.
func rdbCLI(payload []byte, diskless bool) func(sdk.Command) ([]byte, string, int) {
	return func(c sdk.Command) ([]byte, string, int) {
		if !slices.Contains(c.Argv, "--rdb") {
			return []byte("PONG\n"), "", 0
		}
		head := "sending REPLCONF capa eof\nsending REPLCONF rdb-only 1\n"
		if diskless {
			return append(slices.Clone(payload), testMark...), head +
				"SYNC sent to master, writing bytes of bulk transfer until EOF marker to '-'\n" +
				fmt.Sprintf("Transfer finished with success after %d bytes\n", len(payload)), 0
		}
		return slices.Clone(payload), head + fmt.Sprintf("SYNC sent to master, writing %d bytes to '-'\nTransfer finished with success.\n", len(payload)), 0
	}
}

func TestExecDumpTransferForms(t *testing.T) {
	for _, diskless := range []bool{true, false} {
		// Every chunking around the held-back tail.
		for _, chunk := range []int{0, 1, 3, 39, 40, 41, 50, len(testRDB) - 1} {
			t.Run(fmt.Sprintf("diskless=%v/chunk=%d", diskless, chunk), func(t *testing.T) {
				fc := &fakeContainer{run: rdbCLI(testRDB, diskless), chunk: chunk}
				ctx := sdk.WithExecutor(context.Background(), fc)
				var out bytes.Buffer
				res, err := New().Dump(ctx, execTarget("redis://:s3cret@127.0.0.1:6380"), &out)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out.Bytes(), testRDB) {
					t.Fatalf("dumped %d bytes %q, want the %d-byte RDB", out.Len(), out.Bytes(), len(testRDB))
				}
				if res.Bytes != int64(len(testRDB)) || res.Format != FormatRDB || len(res.Warnings) != 0 {
					t.Errorf("result %+v", res)
				}
			})
		}
	}
}

// A redis-cli that already strips the marker (as a file it truncates)
// reports the size it wrote: nothing is dropped.
func TestExecDumpMarkerAlreadyStripped(t *testing.T) {
	fc := &fakeContainer{run: func(sdk.Command) ([]byte, string, int) {
		return testRDB, fmt.Sprintf("SYNC sent to master, writing bytes of bulk transfer until EOF marker to '-'\nTransfer finished with success after %d bytes\n", len(testRDB)), 0
	}}
	var out bytes.Buffer
	if _, err := New().Dump(sdk.WithExecutor(context.Background(), fc), execTarget("redis://127.0.0.1"), &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), testRDB) {
		t.Fatalf("dumped %q", out.Bytes())
	}
}

func TestExecDumpCommandLine(t *testing.T) {
	const pw = "pa ss'w\"ord$x"
	fc := &fakeContainer{run: rdbCLI(testRDB, true)}
	ctx := sdk.WithExecutor(context.Background(), fc)
	conn := "rediss://backup:" + escape(pw) + "@db.internal:6390/2?tls_ca=/certs/ca.pem&tls_cert=/certs/c.pem&tls_key=/certs/k.pem&tls_server_name=redis.example&insecure_skip_verify=true"
	res, err := New().Dump(ctx, execTarget(conn), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"the dump holds every database of the server, not only database 2"}; !slices.Equal(res.Warnings, want) {
		t.Errorf("warnings %q, want %q", res.Warnings, want)
	}
	c := fc.commands()[0]
	want := []string{"redis-cli", "-h", "db.internal", "-p", "6390", "--user", "backup", "--tls", "--cacert", "/certs/ca.pem",
		"--cert", "/certs/c.pem", "--key", "/certs/k.pem", "--sni", "redis.example", "--insecure", "--rdb", "-"}
	if !slices.Equal(c.Argv, want) {
		t.Errorf("argv\n got %q\nwant %q", c.Argv, want)
	}
	if !slices.Equal(c.Env, []string{"REDISCLI_AUTH=" + pw}) || !slices.Contains(c.Secrets, pw) {
		t.Errorf("env %q secrets %q", c.Env, c.Secrets)
	}
	// Without credentials: no REDISCLI_AUTH at all.
	fc = &fakeContainer{run: rdbCLI(testRDB, false)}
	if _, err := New().Dump(sdk.WithExecutor(context.Background(), fc), execTarget("redis://127.0.0.1"), io.Discard); err != nil {
		t.Fatal(err)
	}
	if c := fc.commands()[0]; c.Env != nil || !slices.Equal(c.Argv, []string{"redis-cli", "-h", "127.0.0.1", "-p", "6379", "--rdb", "-"}) {
		t.Errorf("argv %q env %q", c.Argv, c.Env)
	}
}

func TestExecDumpFailures(t *testing.T) {
	const pw = "Secret-pw-42"
	sized := func(n int) string {
		return fmt.Sprintf("SYNC sent to master, writing %d bytes to '-'\nTransfer finished with success.\n", n)
	}
	badCRC := bytes.Clone(testRDB)
	badCRC[len(badCRC)-1] ^= 1
	cases := []struct {
		name   string
		stdout []byte
		stderr string
		code   int
		is     error
		wants  []string
	}{
		{"wrong password", nil, "AUTH failed: WRONGPASS invalid username-password pair or user is disabled.\n", 1,
			sdk.ErrUnauthenticated, []string{"redis-cli exited with status 1", "WRONGPASS"}},
		{"password needed", nil, "sending REPLCONF capa eof\nREPLCONF capa error: NOAUTH Authentication required.\nSYNC with master failed: -NOAUTH Authentication required.\n", 1,
			sdk.ErrUnauthenticated, []string{"exited with status 1", "SYNC with master failed: -NOAUTH"}},
		{"acl refuses SYNC", nil, "SYNC with master failed: -NOPERM User backup has no permissions to run the 'sync' command\n", 1,
			sdk.ErrPermission, []string{"NOPERM"}},
		{"server down", nil, "Could not connect to Redis at 127.0.0.1:6379: Connection refused\n", 1,
			sdk.ErrUnavailable, []string{"Connection refused", "(inside the container)"}},
		{"cut off", testRDB[:20], "SYNC sent to master, writing 99 bytes to '-'\nI/O Error reading RDB payload from socket\n", 1,
			sdk.ErrIntegrity, []string{"I/O Error reading RDB payload"}},
		{"no redis-cli", nil, "sh: 1: exec: redis-cli: not found", 127,
			sdk.ErrNotFound, []string{"status 127", "redis-cli: not found", "network mode"}},
		{"old redis-cli", nil, "Unrecognized option or bad number of args for: '--user'\n", 1,
			sdk.ErrUnsupported, []string{"'--user'"}},
		{"not an RDB", []byte("hello, this is not a snapshot at all........................"), sized(60), 0,
			sdk.ErrIntegrity, []string{"not an RDB file"}},
		{"short", testRDB, sized(len(testRDB) + 5), 0,
			sdk.ErrIntegrity, []string{fmt.Sprintf("reported a payload of %d bytes, but %d bytes arrived", len(testRDB)+5, len(testRDB))}},
		{"marker missing", testRDB, fmt.Sprintf("Transfer finished with success after %d bytes\n", len(testRDB)-3), 0,
			sdk.ErrIntegrity, []string{"reported a payload"}},
		{"bad checksum", badCRC, sized(len(badCRC)), 0, sdk.ErrIntegrity, []string{"CRC-64 does not match"}},
		{"no report", testRDB, "", 0, sdk.ErrIntegrity, []string{"did not report the size"}},
		{"no output", nil, "SYNC sent to master, writing 0 bytes to '-'\n", 0, sdk.ErrEmptyDump, []string{"wrote no output"}},
		{"password echoed", nil, "SYNC with master failed: -ERR something about " + pw + "\n", 1,
			nil, []string{"***"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fc := &fakeContainer{run: func(sdk.Command) ([]byte, string, int) { return c.stdout, c.stderr, c.code }}
			var out bytes.Buffer
			_, err := New().Dump(sdk.WithExecutor(context.Background(), fc), execTarget("redis://:"+pw+"@127.0.0.1"), &out)
			if err == nil {
				t.Fatal("dump succeeded")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("err = %v, want %v", err, c.is)
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("the error shows the password: %v", err)
			}
			if c.name == "not an RDB" && out.Len() != 0 {
				t.Errorf("%d bytes of garbage went out", out.Len())
			}
		})
	}
}

// redis-cli 6.2.0-6.2.4 streamed the whole payload and then failed on
// fsync of its standard output: the payload is good.
func TestExecDumpFsyncBug(t *testing.T) {
	fc := &fakeContainer{run: func(sdk.Command) ([]byte, string, int) {
		return append(slices.Clone(testRDB), testMark...),
			"SYNC sent to master, writing bytes of bulk transfer until EOF marker to '-'\nftruncate failed: Invalid argument.\n" +
				fmt.Sprintf("Transfer finished with success after %d bytes\nFail to fsync '-': Invalid argument\n", len(testRDB)), 1
	}}
	var out bytes.Buffer
	if _, err := New().Dump(sdk.WithExecutor(context.Background(), fc), execTarget("redis://127.0.0.1"), &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), testRDB) {
		t.Fatalf("dumped %q", out.Bytes())
	}
}

// A password given to a server that has none: redis-cli --rdb gives up,
// the plugin dumps again without it and warns, like its network client.
func TestExecDumpNoPasswordNeeded(t *testing.T) {
	fc := &fakeContainer{run: func(c sdk.Command) ([]byte, string, int) {
		if len(c.Env) > 0 {
			return nil, "AUTH failed: ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\n", 1
		}
		return rdbCLI(testRDB, true)(c)
	}}
	var out bytes.Buffer
	res, err := New().Dump(sdk.WithExecutor(context.Background(), fc), execTarget("redis://:unneeded@127.0.0.1"), &out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), testRDB) || !slices.Equal(res.Warnings, []string{noPasswordWarning}) {
		t.Fatalf("out %d bytes, warnings %q", out.Len(), res.Warnings)
	}
	if n := len(fc.commands()); n != 2 {
		t.Errorf("%d runs, want 2", n)
	}
}

func TestExecDumpCancelFake(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	fc := &fakeContainer{run: rdbCLI(testRDB, true), chunk: 10}
	_, err := New().Dump(sdk.WithExecutor(ctx, fc), execTarget("redis://127.0.0.1"), writerFunc(func(p []byte) (int, error) {
		cancel()
		return len(p), nil
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// cliServer answers the short commands of Validate like redis-cli
// against a server described by the fields.
type cliServer struct {
	password string // requirepass; "" for none
	dbs      int
	version  string
	mode     string
}

func (s cliServer) run(c sdk.Command) ([]byte, string, int) {
	var stderr string
	authed := s.password == ""
	if len(c.Env) > 0 {
		pw := strings.TrimPrefix(c.Env[0], "REDISCLI_AUTH=")
		switch {
		case s.password == "":
			stderr += "AUTH failed: ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\n"
		case pw != s.password:
			stderr += "AUTH failed: WRONGPASS invalid username-password pair or user is disabled.\n"
		default:
			authed = true
		}
	}
	if i := slices.Index(c.Argv, "-n"); i > 0 && authed {
		if db, _ := strconv.Atoi(c.Argv[i+1]); db >= s.dbs {
			stderr += fmt.Sprintf("SELECT %d failed: ERR DB index is out of range\n", db)
		}
	}
	if !authed {
		return []byte("NOAUTH Authentication required.\n"), stderr, 0
	}
	switch c.Argv[len(c.Argv)-1] {
	case "PING":
		return []byte("PONG\n"), stderr, 0
	case "server":
		return []byte(fmt.Sprintf("# Server\r\nredis_version:%s\r\nredis_mode:%s\r\n\n", s.version, s.mode)), stderr, 0
	}
	return []byte("ERR unknown command\n"), stderr, 0
}

func TestExecValidate(t *testing.T) {
	srv := cliServer{password: "right-pw", dbs: 16, version: "7.0.15", mode: "standalone"}
	cases := []struct {
		name    string
		srv     cliServer
		conn    string
		version string
		is      error
		wants   []string
	}{
		{"ok", srv, "redis://:right-pw@127.0.0.1:6379/3", "7.0.15", nil, nil},
		{"wrong password", srv, "redis://:wrong-pw@127.0.0.1:6379", "", sdk.ErrUnauthenticated, []string{"AUTH", "WRONGPASS"}},
		{"no password", srv, "redis://127.0.0.1:6379", "", sdk.ErrUnauthenticated, []string{"PING", "NOAUTH Authentication required."}},
		{"no such database", srv, "redis://:right-pw@127.0.0.1:6379/16", "", sdk.ErrNotFound, []string{"database 16 does not exist", "out of range"}},
		{"sentinel", cliServer{dbs: 16, version: "7.0.15", mode: "sentinel"}, "redis://127.0.0.1:26379", "", sdk.ErrInvalidArgument, []string{"Sentinel"}},
		{"password not needed", cliServer{dbs: 16, version: "6.2.14", mode: "standalone"}, "redis://:x@127.0.0.1", "6.2.14", nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fc := &fakeContainer{run: c.srv.run}
			res, err := New().Validate(sdk.WithExecutor(context.Background(), fc), execTarget(c.conn))
			if c.is == nil {
				if err != nil || res.ServerVersion != c.version {
					t.Fatalf("res %+v err %v", res, err)
				}
			} else if !errors.Is(err, c.is) {
				t.Fatalf("err = %v, want %v", err, c.is)
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to mention %q", err, w)
				}
			}
			for _, cmd := range fc.commands() {
				if cmd.Argv[0] != "redis-cli" || strings.Contains(strings.Join(cmd.Argv, " "), "pw") {
					t.Errorf("ran %q", cmd.Argv)
				}
			}
		})
	}
}

func TestModeErrors(t *testing.T) {
	_, err := New().Validate(context.Background(), execTarget("redis://127.0.0.1"))
	if !errors.Is(err, sdk.ErrUnsupported) || !strings.Contains(err.Error(), "no exec service") {
		t.Errorf("exec mode without an executor: %v", err)
	}
	_, err = New().Dump(context.Background(), sdk.Target{Connection: "redis://127.0.0.1", Options: map[string]string{"mode": "ssh"}}, io.Discard)
	if !errors.Is(err, sdk.ErrInvalidArgument) || !strings.Contains(err.Error(), `"ssh"`) {
		t.Errorf("unknown mode: %v", err)
	}
}

func TestTailHolder(t *testing.T) {
	data := make([]byte, 200)
	for i := range data {
		data[i] = byte(i)
	}
	for _, size := range []int{0, 1, 39, 40, 41, 100, 200} {
		for _, chunk := range []int{1, 2, 39, 40, 41, 77, 200} {
			var out bytes.Buffer
			h := &tailHolder{w: &out}
			for p := data[:size]; len(p) > 0; {
				n := min(chunk, len(p))
				if k, err := h.Write(p[:n]); err != nil || k != n {
					t.Fatalf("Write = %d, %v", k, err)
				}
				p = p[n:]
			}
			if want := data[:max(size-eofMarkLen, 0)]; !bytes.Equal(out.Bytes(), want) || h.n != int64(size) {
				t.Fatalf("size %d chunk %d: passed %d bytes, want %d", size, chunk, out.Len(), len(want))
			}
			if err := h.flush(); err != nil || !bytes.Equal(out.Bytes(), data[:size]) {
				t.Fatalf("size %d chunk %d: after flush %d bytes, want %d", size, chunk, out.Len(), size)
			}
		}
	}
	boom := errors.New("boom")
	h := &tailHolder{w: writerFunc(func([]byte) (int, error) { return 0, boom })}
	if _, err := h.Write(make([]byte, 100)); !errors.Is(err, boom) {
		t.Errorf("err = %v", err)
	}
}
