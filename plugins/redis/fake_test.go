package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/plugins/redis/internal/resp"
	"github.com/labelbackup/label-backup/sdk"
)

// fakeServer is a scripted Redis on a loopback port: handle gets each
// command and returns the raw bytes to answer ("" answers nothing); with
// closeConn at their end, the connection is closed after them.
type fakeServer struct {
	addr string
	mu   sync.Mutex
	cmds [][]string
}

func newFakeServer(t *testing.T, handle func(args []string) string) *fakeServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{addr: l.Addr().String()}
	var wg sync.WaitGroup
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		f.mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		f.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			conns = append(conns, c)
			f.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				rd := resp.NewReader(bufio.NewReader(c))
				for {
					r, err := rd.ReadReply()
					if err != nil {
						return
					}
					var args []string
					for _, e := range r.Elems {
						args = append(args, e.Str)
					}
					f.mu.Lock()
					f.cmds = append(f.cmds, args)
					f.mu.Unlock()
					out, closing := strings.CutSuffix(handle(args), closeConn)
					if _, err := io.WriteString(c, out); err != nil || closing {
						return
					}
				}
			}()
		}
	}()
	return f
}

func (f *fakeServer) commands() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s []string
	for _, c := range f.cmds {
		s = append(s, strings.Join(c, " "))
	}
	return strings.Join(s, "|")
}

const fakePW = "fake-Secret-pw"

const closeConn = "\x00close"

func bulk(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }

// redis7 answers like a Redis 7 server with requirepass fakePW.
func redis7(args []string) string {
	switch strings.ToUpper(args[0]) {
	case "AUTH":
		if args[len(args)-1] == fakePW {
			return "+OK\r\n"
		}
		return "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
	case "PING":
		return "+PONG\r\n"
	case "SELECT":
		return "+OK\r\n"
	case "INFO":
		return bulk("# Server\r\nredis_version:7.0.99\r\nredis_mode:standalone\r\n")
	case "REPLCONF":
		return "+OK\r\n"
	case "SYNC":
		p := makeRDB("0010", []byte("\xfe\x00\x00\x01k\x01v"))
		return "\n\n$EOF:" + testMark + "\r\n" + string(p) + testMark
	}
	return "-ERR unknown command\r\n"
}

// with overrides some commands' answers.
func with(over map[string]string) func([]string) string {
	return func(args []string) string {
		if out, ok := over[strings.ToUpper(args[0])]; ok {
			return out
		}
		return redis7(args)
	}
}

func TestFakeServer(t *testing.T) {
	tests := []struct {
		name    string
		handle  func([]string) string
		conn    string // %s: the fake's address
		dump    bool   // Dump instead of Validate
		want    error  // nil: success
		wantMsg string
		wantCmd string // the commands the server saw
	}{
		{name: "password only", handle: redis7, conn: "redis://:" + fakePW + "@%s", wantCmd: "AUTH " + fakePW + "|PING|INFO server"},
		{name: "ACL user", handle: redis7, conn: "redis://backup:" + fakePW + "@%s/3", wantCmd: "AUTH backup " + fakePW + "|PING|SELECT 3|INFO server"},
		{name: "no credentials, no AUTH", handle: redis7, conn: "redis://%s", wantCmd: "PING|INFO server"},
		{name: "dump", handle: redis7, conn: "redis://:" + fakePW + "@%s", dump: true, wantCmd: "AUTH " + fakePW + "|REPLCONF capa eof|REPLCONF rdb-only 1|SYNC"},
		{name: "wrong password", handle: redis7, conn: "redis://:wrong-" + fakePW + "@%s", want: sdk.ErrUnauthenticated, wantMsg: "WRONGPASS"},
		{name: "wrong password, dump", handle: redis7, conn: "redis://:wrong-" + fakePW + "@%s", dump: true, want: sdk.ErrUnauthenticated, wantMsg: "WRONGPASS", wantCmd: "AUTH wrong-" + fakePW},
		{name: "old server: invalid password", handle: with(map[string]string{"AUTH": "-ERR invalid password\r\n"}), conn: "redis://:" + fakePW + "@%s", want: sdk.ErrUnauthenticated, wantMsg: "invalid password"},
		{name: "AUTH refused, quoting the password", handle: with(map[string]string{"AUTH": "-ERR unknown command 'AUTH', with args beginning with: '" + fakePW + "'\r\n"}), conn: "redis://:" + fakePW + "@%s", want: sdk.ErrUnauthenticated, wantMsg: "'***'"},
		{name: "password needed but none given", handle: with(map[string]string{"PING": "-NOAUTH Authentication required.\r\n"}), conn: "redis://%s", want: sdk.ErrUnauthenticated, wantMsg: "NOAUTH"},
		{name: "server without a password", handle: with(map[string]string{"AUTH": "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"}), conn: "redis://:" + fakePW + "@%s"},
		{name: "PING not answered PONG", handle: with(map[string]string{"PING": "+NOPE\r\n"}), conn: "redis://%s", want: errAny, wantMsg: "unexpected reply"},
		{name: "INFO not allowed", handle: with(map[string]string{"INFO": "-NOPERM this user has no permissions to run the 'info' command\r\n"}), conn: "redis://:" + fakePW + "@%s", want: sdk.ErrPermission, wantMsg: "NOPERM"},
		{name: "protected mode", handle: with(map[string]string{"PING": "-DENIED Redis is running in protected mode\r\n"}), conn: "redis://%s", want: sdk.ErrPermission},
		{name: "loading", handle: with(map[string]string{"PING": "-LOADING Redis is loading the dataset in memory\r\n"}), conn: "redis://%s", want: sdk.ErrUnavailable},
		{name: "too many clients", handle: with(map[string]string{"AUTH": "-ERR max number of clients reached\r\n"}), conn: "redis://:" + fakePW + "@%s", want: sdk.ErrUnavailable},
		{name: "database out of range", handle: with(map[string]string{"SELECT": "-ERR DB index is out of range\r\n"}), conn: "redis://:" + fakePW + "@%s/99", want: sdk.ErrNotFound},
		{name: "sentinel", handle: with(map[string]string{"INFO": bulk("# Server\r\nredis_version:7.0.0\r\nredis_mode:sentinel\r\n")}), conn: "redis://%s", want: sdk.ErrInvalidArgument, wantMsg: "Sentinel"},
		{name: "INFO without a version", handle: with(map[string]string{"INFO": bulk("# Server\r\n")}), conn: "redis://%s", want: errAny, wantMsg: "no redis_version"},
		{name: "REPLCONF rdb-only unknown (Redis 6)", handle: func(args []string) string {
			if strings.ToUpper(args[0]) == "REPLCONF" && args[1] == "rdb-only" {
				return "-ERR Unrecognized REPLCONF option: rdb-only\r\n"
			}
			return redis7(args)
		}, conn: "redis://:" + fakePW + "@%s", dump: true},
		{name: "REPLCONF not allowed", handle: with(map[string]string{"REPLCONF": "-NOPERM this user has no permissions to run the 'replconf' command\r\n"}), conn: "redis://:" + fakePW + "@%s", dump: true, want: sdk.ErrPermission, wantCmd: "AUTH " + fakePW + "|REPLCONF capa eof"},
		{name: "SYNC not allowed", handle: with(map[string]string{"SYNC": "-NOPERM this user has no permissions to run the 'sync' command\r\n"}), conn: "redis://:" + fakePW + "@%s", dump: true, want: sdk.ErrPermission},
		{name: "echo server", handle: func(args []string) string { return string(resp.AppendCommand(nil, args...)) }, conn: "redis://:" + fakePW + "@%s", want: errAny, wantMsg: "Redis server"},
		{name: "echo server, dump", handle: func(args []string) string { return string(resp.AppendCommand(nil, args...)) }, conn: "redis://:" + fakePW + "@%s", dump: true, want: errAny, wantMsg: "Redis server"},
		{name: "server closes at once", handle: func([]string) string { return closeConn }, conn: "redis://%s", want: sdk.ErrUnavailable, wantMsg: "EOF"},
		{name: "server closes during the transfer", handle: with(map[string]string{"SYNC": "\n\n$EOF:" + testMark + "\r\nREDIS0010\xfe\x00" + closeConn}), conn: "redis://%s", dump: true, want: sdk.ErrIntegrity},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t, tc.handle)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			target := sdk.Target{Connection: fmt.Sprintf(tc.conn, f.addr)}
			var err error
			var warnings []string
			if tc.dump {
				var res sdk.DumpResult
				res, err = New().Dump(ctx, target, io.Discard)
				warnings = res.Warnings
			} else {
				var res sdk.ValidateResult
				res, err = New().Validate(ctx, target)
				if err == nil && res.ServerVersion != "7.0.99" {
					t.Errorf("ServerVersion %q", res.ServerVersion)
				}
			}
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("failed: %v", err)
			case tc.want != nil && err == nil:
				t.Fatalf("succeeded, want %v", tc.want)
			case tc.want != nil && tc.want != errAny && !errors.Is(err, tc.want):
				t.Errorf("error %q does not wrap %v", err, tc.want)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("error %q does not mention %q", err, tc.wantMsg)
				}
				if strings.Contains(err.Error(), fakePW) {
					t.Errorf("error text contains the password: %q", err)
				}
			}
			for _, w := range warnings {
				if strings.Contains(w, fakePW) {
					t.Errorf("warning contains the password: %q", w)
				}
			}
			if tc.wantCmd != "" {
				// The server may still be reading the last command when
				// the client gives up: wait a little for it.
				for i := 0; i < 100 && f.commands() != tc.wantCmd; i++ {
					time.Sleep(5 * time.Millisecond)
				}
				if got := f.commands(); got != tc.wantCmd {
					t.Errorf("server saw %q, want %q", got, tc.wantCmd)
				}
			}
		})
	}
}

// errAny stands for "some error" in tables.
var errAny = errors.New("any error")

func TestNoPasswordWarning(t *testing.T) {
	f := newFakeServer(t, with(map[string]string{"AUTH": "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"}))
	res, err := New().Dump(context.Background(), sdk.Target{Connection: "redis://:" + fakePW + "@" + f.addr + "/5"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 2 || !strings.Contains(res.Warnings[0], "requires no password") || !strings.Contains(res.Warnings[1], "every database") {
		t.Errorf("warnings %q", res.Warnings)
	}
	if res.Format != FormatRDB || res.Extension != Extension {
		t.Errorf("result %+v", res)
	}
}

func TestSilentServerHonoursContext(t *testing.T) {
	f := newFakeServer(t, func([]string) string { return "" })
	for _, dump := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		var err error
		if dump {
			_, err = New().Dump(ctx, sdk.Target{Connection: "redis://:" + fakePW + "@" + f.addr}, io.Discard)
		} else {
			_, err = New().Validate(ctx, sdk.Target{Connection: "redis://:" + fakePW + "@" + f.addr})
		}
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("dump=%v: err = %v, want DeadlineExceeded", dump, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("dump=%v: took %v", dump, d)
		}
	}
}

func TestClassifyNet(t *testing.T) {
	ci := &connInfo{host: "cache", port: 6379}
	bg := context.Background()
	cancelled, cancel := context.WithCancel(bg)
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want error // nil: no sentinel
	}{
		{"DNS", bg, &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "cache", IsNotFound: true}}, sdk.ErrUnavailable},
		{"timeout", bg, &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, sdk.ErrUnavailable},
		{"EOF", bg, io.EOF, sdk.ErrUnavailable},
		{"unexpected EOF", bg, io.ErrUnexpectedEOF, sdk.ErrUnavailable},
		{"cancelled", cancelled, net.ErrClosed, context.Canceled},
		{"protocol", bg, &resp.ProtocolError{Msg: "x"}, nil},
		{"other", bg, errors.New("weird"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := classifyNet(tc.ctx, ci, "connecting", tc.err)
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("%v does not wrap %v", err, tc.want)
			}
			if tc.want == nil && (errors.Is(err, sdk.ErrUnavailable) || errors.Is(err, sdk.ErrUnauthenticated)) {
				t.Errorf("%v got a sentinel", err)
			}
		})
	}
}
