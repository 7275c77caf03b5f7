package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/plugins/redis/internal/redistest"
	"github.com/labelbackup/label-backup/plugins/redis/internal/resp"
	"github.com/labelbackup/label-backup/sdk"
)

// One source server, with a password, ACL users and data of every type,
// serves every integration test of the package. It starts on first use
// (unit tests alone need no server) and TestMain stops it. A missing
// redis-server fails the tests that need it; nothing is skipped.
var (
	sourceOnce sync.Once
	source     *sourceServer
	sourceErr  error
)

// sourceServer is the shared server and its credentials.
type sourceServer struct {
	*redistest.Server
	// BackupPW is the password of the ACL user "backup", which has just
	// the permissions the package documentation lists.
	BackupPW string
	// LimitedPW is the password of "limited", which may PING and INFO but
	// not replicate.
	LimitedPW string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if source != nil {
		if err := source.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the test server:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

func testServer(t *testing.T) *sourceServer {
	t.Helper()
	sourceOnce.Do(func() { source, sourceErr = startSource() })
	if sourceErr != nil {
		t.Fatalf("integration tests need redis-server: %v", sourceErr)
	}
	return source
}

func startSource() (*sourceServer, error) {
	// A password with characters that must be percent-encoded in a URI.
	srv, err := redistest.Start(redistest.Options{Password: redistest.RandomPassword("Redis-Test:p@ss/w%rd?+")})
	if err != nil {
		return nil, err
	}
	s := &sourceServer{Server: srv, BackupPW: redistest.RandomPassword("backup-pw-"), LimitedPW: redistest.RandomPassword("limited-pw-")}
	if err := s.setUp(); err != nil {
		srv.Stop()
		return nil, err
	}
	return s, nil
}

func (s *sourceServer) setUp() error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	cmds := [][]string{
		// The default 5 s wait for more replicas would slow every dump.
		{"CONFIG", "SET", "repl-diskless-sync-delay", "0"},
		{"ACL", "SETUSER", "backup", "on", ">" + s.BackupPW, "+ping", "+info", "+replconf", "+sync", "+select"},
		{"ACL", "SETUSER", "limited", "on", ">" + s.LimitedPW, "+ping", "+info"},
	}
	cmds = append(cmds, seedCommands()...)
	replies, err := c.Pipeline(cmds)
	if err != nil {
		return err
	}
	for i, r := range replies {
		if r.IsError() {
			return fmt.Errorf("seeding: %s: %s", cmds[i][0], r.Str)
		}
	}
	return nil
}

// bigValueSize makes the dump several MiB: the conformance suite's
// cancellation needs a dump longer than one 1 MiB chunk.
const bigValueSize = 4 << 20

// seedCommands fill databases 0 and 3 with every type: strings (binary, a
// big incompressible one), small and big hashes, lists, sets (intset,
// listpack, hashtable), sorted sets, a stream with a consumer group and
// pending entries, a key with a TTL, 20000 keys from DEBUG POPULATE, and a
// function library.
func seedCommands() [][]string {
	rng := rand.New(rand.NewChaCha8([32]byte{42}))
	big := make([]byte, bigValueSize)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	cmds := [][]string{
		{"SET", "str:plain", "hello"},
		{"SET", "str:binary", "a\r\nb\x00c\xff"},
		{"SET", "str:int", "12345"},
		{"SET", "str:big", string(big)},
		{"SET", "ttl:key", "expires later", "EX", "3600"},
		{"HSET", "hash:small", "a", "1", "b", "2"},
		{"RPUSH", "list:small", "x", "y", "z"},
		{"SADD", "set:int", "1", "2", "3", "1000000"},
		{"SADD", "set:str", "alpha", "beta"},
		{"ZADD", "zset:small", "1.5", "one", "-2", "two"},
		{"DEBUG", "POPULATE", "20000", "pop", "64"},
		{"FUNCTION", "LOAD", "#!lua name=lbtest\nredis.register_function('lbtest_echo', function(keys, args) return args[1] end)"},
	}
	hash := []string{"HSET", "hash:big"}
	set := []string{"SADD", "set:big"}
	zset := []string{"ZADD", "zset:big"}
	list := []string{"RPUSH", "list:big"}
	for i := range 2000 {
		hash = append(hash, "field"+strconv.Itoa(i), strings.Repeat("v", i%50)+strconv.Itoa(i))
		set = append(set, "member-"+strconv.Itoa(i))
		zset = append(zset, strconv.Itoa(i*7%1000), "m"+strconv.Itoa(i))
		list = append(list, "item-"+strconv.Itoa(i), strconv.Itoa(i))
	}
	cmds = append(cmds, hash, set, zset, list)
	for i := range 200 {
		cmds = append(cmds, []string{"XADD", "stream:s", "*", "n", strconv.Itoa(i), "payload", strings.Repeat("s", i%20)})
	}
	cmds = append(cmds,
		[]string{"XGROUP", "CREATE", "stream:s", "g1", "0"},
		[]string{"XREADGROUP", "GROUP", "g1", "consumer-1", "COUNT", "10", "STREAMS", "stream:s", ">"},
		[]string{"SELECT", "3"},
		[]string{"SET", "db3:key", "in database 3"},
		[]string{"RPUSH", "db3:list", "p", "q"},
		[]string{"SELECT", "0"},
	)
	return cmds
}

// uri is a connection string to the server; user "" is the default user.
func (s *sourceServer) uri(user, password string, suffix ...string) string {
	return fmt.Sprintf("redis://%s:%s@%s%s", escape(user), escape(password), s.Addr(), strings.Join(suffix, ""))
}

// escape percent-encodes everything but RFC 3986's unreserved characters.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func (s *sourceServer) client(t *testing.T) *redistest.Client {
	t.Helper()
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustDo(t *testing.T, c *redistest.Client, args ...string) resp.Reply {
	t.Helper()
	r, err := c.Do(args...)
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(args[:min(len(args), 3)], " "), err)
	}
	return r
}

// setConfig sets a server setting for the rest of the test.
func setConfig(t *testing.T, c *redistest.Client, name, value string) {
	t.Helper()
	old := mustDo(t, c, "CONFIG", "GET", name)
	mustDo(t, c, "CONFIG", "SET", name, value)
	if len(old.Elems) == 2 {
		t.Cleanup(func() {
			if _, err := c.Do("CONFIG", "SET", name, old.Elems[1].Str); err != nil {
				t.Errorf("restoring %s: %v", name, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := c.WaitNoChild(ctx); err != nil {
				t.Error(err)
			}
		})
	}
}

func waitNoChild(t *testing.T, c *redistest.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.WaitNoChild(ctx); err != nil {
		t.Fatal(err)
	}
}

func assertNoSecret(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && (strings.Contains(text, s) || strings.Contains(text, escape(s))) {
			t.Errorf("text contains a password: %q", text)
		}
	}
}

func TestValidate(t *testing.T) {
	s := testServer(t)
	freePort, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	const wrongPW = "wr0ng-Passw0rd-XYZ"
	tests := []struct {
		name     string
		conn     string
		db       string
		wantErr  error // nil: success
		wantText string
		timeout  time.Duration // default 30 s
	}{
		{name: "password only", conn: s.uri("", s.Password)},
		{name: "default user by name", conn: s.uri("default", s.Password)},
		{name: "ACL user", conn: s.uri("backup", s.BackupPW)},
		{name: "ACL user without replication rights", conn: s.uri("limited", s.LimitedPW)},
		{name: "database in the path", conn: s.uri("", s.Password, "/3")},
		{name: "database override", conn: s.uri("", s.Password, "/0"), db: "15"},
		{name: "wrong password", conn: s.uri("", wrongPW), wantErr: sdk.ErrUnauthenticated, wantText: "WRONGPASS"},
		{name: "ACL user, wrong password", conn: s.uri("backup", wrongPW), wantErr: sdk.ErrUnauthenticated, wantText: "WRONGPASS"},
		{name: "ACL user, another user's password", conn: s.uri("backup", s.Password), wantErr: sdk.ErrUnauthenticated},
		{name: "unknown ACL user", conn: s.uri("nobody", s.BackupPW), wantErr: sdk.ErrUnauthenticated},
		{name: "no password", conn: "redis://" + s.Addr(), wantErr: sdk.ErrUnauthenticated, wantText: "NOAUTH"},
		{name: "database out of range", conn: s.uri("", s.Password, "/16"), wantErr: sdk.ErrNotFound},
		{name: "closed port", conn: fmt.Sprintf("redis://:%s@127.0.0.1:%d", escape(s.Password), freePort), wantErr: sdk.ErrUnavailable, wantText: "connection refused"},
		// A plain server reads the ClientHello as an unfinished inline
		// command and never answers: the handshake must give up with ctx.
		{name: "TLS to a plain server", conn: "rediss://:" + escape(s.Password) + "@" + s.Addr(), wantErr: context.DeadlineExceeded, wantText: "TLS handshake", timeout: 500 * time.Millisecond},
		{name: "bad connection string", conn: "redis://" + s.Password + "@" + s.Addr(), wantErr: sdk.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 30 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			res, err := New().Validate(ctx, sdk.Target{Connection: tc.conn, Database: tc.db})
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if !strings.HasPrefix(res.ServerVersion, "7.") {
					t.Errorf("ServerVersion %q", res.ServerVersion)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate succeeded (version %q), want an error", res.ServerVersion)
			}
			if tc.wantErr != errAny && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %q does not wrap %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not mention %q", err, tc.wantText)
			}
			assertNoSecret(t, err.Error(), s.Password, s.BackupPW, s.LimitedPW, wrongPW)
		})
	}
}

func TestDumpErrors(t *testing.T) {
	s := testServer(t)
	freePort, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	const wrongPW = "wr0ng-Dump-Passw0rd"
	tests := []struct {
		name    string
		conn    string
		wantErr error
	}{
		{"wrong password", s.uri("", wrongPW), sdk.ErrUnauthenticated},
		{"ACL user, wrong password", s.uri("backup", wrongPW), sdk.ErrUnauthenticated},
		{"no password", "redis://" + s.Addr(), sdk.ErrUnauthenticated},
		{"ACL user without replication rights", s.uri("limited", s.LimitedPW), sdk.ErrPermission},
		{"closed port", fmt.Sprintf("redis://:%s@127.0.0.1:%d", escape(s.Password), freePort), sdk.ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out bytes.Buffer
			_, err := New().Dump(ctx, sdk.Target{Connection: tc.conn}, &out)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v does not wrap %v", err, tc.wantErr)
			}
			if out.Len() != 0 {
				t.Errorf("a failed dump wrote %d bytes", out.Len())
			}
			assertNoSecret(t, err.Error(), s.Password, s.BackupPW, s.LimitedPW, wrongPW)
		})
	}
}

// TestDumpRoundTrip dumps with both transfer forms, checks each file with
// redis-check-rdb, loads it into a fresh server and compares every key.
func TestDumpRoundTrip(t *testing.T) {
	s := testServer(t)
	admin := s.client(t)
	for _, tc := range []struct {
		name     string
		diskless string
		conn     string
	}{
		{"diskless", "yes", s.uri("", s.Password)},
		// The minimal ACL user of the package documentation.
		{"disk", "no", s.uri("backup", s.BackupPW)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setConfig(t, admin, "repl-diskless-sync", tc.diskless)
			waitNoChild(t, admin)
			dir := t.TempDir()
			file := filepath.Join(dir, "backup.rdb")
			f, err := os.Create(file)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			start := time.Now()
			st, warnings, err := New().dump(ctx, sdk.Target{Connection: tc.conn}, f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatalf("dump: %v", err)
			}
			t.Logf("%s dump: %d bytes in %v, RDB version %d", tc.name, st.bytes, time.Since(start).Round(time.Millisecond), st.version)
			if st.diskless != (tc.diskless == "yes") {
				t.Errorf("transfer diskless=%v, want %s", st.diskless, tc.diskless)
			}
			if !st.checked || len(warnings) != 0 {
				t.Errorf("checksum verified %v, warnings %q", st.checked, warnings)
			}
			fi, err := os.Stat(file)
			if err != nil || fi.Size() != st.bytes || st.bytes < bigValueSize {
				t.Fatalf("file: %v, %d bytes; stats say %d", err, fi.Size(), st.bytes)
			}
			if _, err := redistest.CheckRDB(file); err != nil {
				t.Fatal(err)
			}
			restored := redistest.New(t, redistest.Options{Dir: dir, Args: []string{"--dbfilename", "backup.rdb"}})
			compareServers(t, s.Server, restored)
		})
	}
}

// compareServers checks that dst holds exactly src's data: the same keys
// in every database, each with the same value (DUMP payload, or the same
// content when a hash table's order differs) and the same TTL presence,
// and the same function libraries.
func compareServers(t *testing.T, src, dst *redistest.Server) {
	t.Helper()
	a, err := src.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := dst.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	total := 0
	for db := range 16 {
		sel := []string{"SELECT", strconv.Itoa(db)}
		mustDo(t, a, sel...)
		mustDo(t, b, sel...)
		sa, sb := mustDo(t, a, "DBSIZE").Int, mustDo(t, b, "DBSIZE").Int
		if sa != sb {
			t.Fatalf("db %d: %d keys in the source, %d restored", db, sa, sb)
		}
		if sa == 0 {
			continue
		}
		keys := scanAll(t, a)
		if int64(len(keys)) != sa {
			t.Fatalf("db %d: SCAN found %d keys, DBSIZE says %d", db, len(keys), sa)
		}
		for chunk := range slices.Chunk(keys, 2000) {
			var cmds [][]string
			for _, k := range chunk {
				cmds = append(cmds, []string{"DUMP", k}, []string{"PTTL", k})
			}
			ra, err := a.Pipeline(cmds)
			if err != nil {
				t.Fatal(err)
			}
			rb, err := b.Pipeline(cmds)
			if err != nil {
				t.Fatal(err)
			}
			for i, k := range chunk {
				da, db := ra[2*i], rb[2*i]
				if db.Null || db.IsError() {
					t.Fatalf("key %q missing from the restored server", k)
				}
				if da.Str != db.Str && !sameContent(t, a, b, k) {
					t.Errorf("key %q differs after the restore", k)
				}
				if ta, tb := ra[2*i+1].Int, rb[2*i+1].Int; (ta > 0) != (tb > 0) || tb > ta+60_000 {
					t.Errorf("key %q: PTTL %d in the source, %d restored", k, ta, tb)
				}
			}
		}
		total += len(keys)
	}
	if total < 20000 {
		t.Errorf("compared only %d keys", total)
	}
	mustDo(t, b, "SELECT", "0")
	if ttl := mustDo(t, b, "PTTL", "ttl:key").Int; ttl <= 0 {
		t.Errorf("ttl:key restored with PTTL %d", ttl)
	}
	if got := mustDo(t, b, "GET", "str:big").Str; len(got) != bigValueSize {
		t.Errorf("str:big restored with %d bytes", len(got))
	}
	if got := mustDo(t, b, "FCALL", "lbtest_echo", "0", "hi").Str; got != "hi" {
		t.Errorf("restored function answered %q", got)
	}
	if got := mustDo(t, b, "XINFO", "GROUPS", "stream:s"); len(got.Elems) != 1 {
		t.Errorf("restored stream has %d consumer groups", len(got.Elems))
	}
}

func scanAll(t *testing.T, c *redistest.Client) []string {
	t.Helper()
	var keys []string
	cursor := "0"
	for {
		r := mustDo(t, c, "SCAN", cursor, "COUNT", "5000")
		cursor = r.Elems[0].Str
		for _, k := range r.Elems[1].Elems {
			keys = append(keys, k.Str)
		}
		if cursor == "0" {
			break
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// sameContent compares one key's value by type, order-insensitively for
// hashes and sets (a hash table's iteration order, and so DUMP's bytes,
// depends on the process's hash seed).
func sameContent(t *testing.T, a, b *redistest.Client, key string) bool {
	t.Helper()
	typ := mustDo(t, a, "TYPE", key).Str
	if got := mustDo(t, b, "TYPE", key).Str; got != typ {
		t.Logf("key %q: type %s, restored as %s", key, typ, got)
		return false
	}
	read := func(c *redistest.Client) []string {
		var r resp.Reply
		switch typ {
		case "string":
			return []string{mustDo(t, c, "GET", key).Str}
		case "list":
			r = mustDo(t, c, "LRANGE", key, "0", "-1")
		case "set":
			r = mustDo(t, c, "SMEMBERS", key)
		case "zset":
			r = mustDo(t, c, "ZRANGE", key, "0", "-1", "WITHSCORES")
		case "hash":
			r = mustDo(t, c, "HGETALL", key)
			var pairs []string
			for i := 0; i+1 < len(r.Elems); i += 2 {
				pairs = append(pairs, r.Elems[i].Str+"\x00"+r.Elems[i+1].Str)
			}
			slices.Sort(pairs)
			return pairs
		case "stream":
			r = mustDo(t, c, "XRANGE", key, "-", "+")
			return []string{fmt.Sprint(r)}
		default:
			t.Fatalf("key %q has unexpected type %s", key, typ)
		}
		var out []string
		for _, e := range r.Elems {
			out = append(out, e.Str)
		}
		if typ == "set" {
			slices.Sort(out)
		}
		return out
	}
	return reflect.DeepEqual(read(a), read(b))
}

// TestDumpCancel cancels a dump while the server streams it slowly, and
// while the server still waits to start the snapshot: both must return
// promptly, and the server must stay healthy.
func TestDumpCancel(t *testing.T) {
	s := testServer(t)
	admin := s.client(t)
	t.Run("mid-stream", func(t *testing.T) {
		setConfig(t, admin, "repl-diskless-sync", "yes")
		// 100 µs per key: the 20000-key dump takes seconds.
		setConfig(t, admin, "rdb-key-save-delay", "100")
		waitNoChild(t, admin)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var cancelled time.Time
		var once sync.Once
		_, err := New().Dump(ctx, sdk.Target{Connection: s.uri("", s.Password)}, writerFunc(func(p []byte) (int, error) {
			once.Do(func() { cancelled = time.Now(); cancel() })
			return len(p), nil
		}))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if cancelled.IsZero() {
			t.Fatal("the dump wrote nothing before it was cancelled")
		}
		if d := time.Since(cancelled); d > 2*time.Second {
			t.Errorf("the dump took %v to stop after cancellation", d)
		}
	})
	t.Run("before the snapshot starts", func(t *testing.T) {
		setConfig(t, admin, "repl-diskless-sync", "yes")
		setConfig(t, admin, "repl-diskless-sync-delay", "5")
		waitNoChild(t, admin)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := New().Dump(ctx, sdk.Target{Connection: s.uri("", s.Password)}, io.Discard)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the dump took %v to stop", d)
		}
	})
	if r := mustDo(t, admin, "PING"); r.Str != "PONG" {
		t.Errorf("PING after the cancelled dumps: %+v", r)
	}
}
