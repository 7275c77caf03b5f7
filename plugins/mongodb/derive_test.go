package mongodb

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
)

// secretFiles is an sdk.Executor that answers "cat -- <path>" from a map,
// standing in for the database container.
type secretFiles map[string]string

func (f secretFiles) Run(_ context.Context, c sdk.Command) (sdk.ExecResult, error) {
	content, ok := f[c.Argv[len(c.Argv)-1]]
	if c.Argv[0] != "cat" || !ok {
		return sdk.ExecResult{}, &sdk.ExitError{Tool: c.Argv[0], ExitCode: 1, Stderr: "No such file or directory"}
	}
	n, _ := io.WriteString(c.Stdout, content)
	return sdk.ExecResult{StdoutBytes: int64(n)}, nil
}

func TestDeriveConn(t *testing.T) {
	files := sdk.WithExecutor(context.Background(), secretFiles{"/run/secrets/pw": "file-pw\n"})
	tests := []struct {
		name    string
		ctx     context.Context
		target  sdk.Target
		want    string
		wantErr error
		errText string
	}{
		{name: "official image credentials", target: sdk.Target{Options: map[string]string{"host": "10.0.0.4"},
			ContainerEnv: map[string]string{"MONGO_INITDB_ROOT_USERNAME": "root", "MONGO_INITDB_ROOT_PASSWORD": "p@ss/word"}},
			want: "mongodb://root:p%40ss%2Fword@10.0.0.4:27017/?authSource=admin"},
		{name: "password file", ctx: files, target: sdk.Target{Options: map[string]string{"host": "10.0.0.4"},
			ContainerEnv: map[string]string{"MONGO_INITDB_ROOT_USERNAME": "root", "MONGO_INITDB_ROOT_PASSWORD_FILE": "/run/secrets/pw"}},
			want: "mongodb://root:file-pw@10.0.0.4:27017/?authSource=admin"},
		{name: "no access control", target: sdk.Target{Options: map[string]string{"host": "127.0.0.1"},
			ContainerCommand: []string{"docker-entrypoint.sh", "mongod", "--port", "27018"}},
			want: "mongodb://127.0.0.1:27018/"},
		{name: "port=", target: sdk.Target{Options: map[string]string{"host": "h"}, ContainerCommand: []string{"mongod", "--port=1234"}},
			want: "mongodb://h:1234/"},
		{name: "ferretdb listen addr", target: sdk.Target{Options: map[string]string{"host": "h"},
			ContainerCommand: []string{"/ferretdb", "--listen-addr=127.0.0.1:40001"}}, want: "mongodb://h:40001/"},
		{name: "ferretdb env", target: sdk.Target{Options: map[string]string{"host": "h"},
			ContainerEnv: map[string]string{"FERRETDB_LISTEN_ADDR": ":27019"}}, want: "mongodb://h:27019/"},
		{name: "ipv6 host", target: sdk.Target{Options: map[string]string{"host": "fd00::2"}}, want: "mongodb://[fd00::2]:27017/"},
		{name: "user without password", target: sdk.Target{Options: map[string]string{"host": "h"},
			ContainerEnv: map[string]string{"MONGO_INITDB_ROOT_USERNAME": "root"}},
			wantErr: sdk.ErrInvalidArgument, errText: "are not both set"},
		{name: "file without executor", target: sdk.Target{Options: map[string]string{"host": "h"},
			ContainerEnv: map[string]string{"MONGO_INITDB_ROOT_USERNAME": "root", "MONGO_INITDB_ROOT_PASSWORD_FILE": "/f"}},
			wantErr: sdk.ErrUnsupported, errText: "MONGO_INITDB_ROOT_PASSWORD_FILE"},
		{name: "no address", target: sdk.Target{}, wantErr: sdk.ErrInvalidArgument, errText: "container's address"},
		{name: "bad port", target: sdk.Target{Options: map[string]string{"host": "h"}, ContainerCommand: []string{"mongod", "--port", "x"}},
			wantErr: sdk.ErrInvalidArgument, errText: `--port sets the port to "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			got, err := deriveConn(ctx, tt.target)
			if tt.errText != "" {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err = %v, want %v mentioning %q", err, tt.wantErr, tt.errText)
				}
				if strings.Contains(err.Error(), "p@ss") {
					t.Fatalf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestExecModeRefused(t *testing.T) {
	_, err := New().Dump(context.Background(), sdk.Target{Connection: "mongodb://h/", Options: map[string]string{sdk.OptionMode: sdk.ModeExec}}, io.Discard)
	if !errors.Is(err, sdk.ErrUnsupported) || !strings.Contains(err.Error(), "remove backup.mode") {
		t.Fatalf("err = %v", err)
	}
}
