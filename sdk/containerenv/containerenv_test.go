package containerenv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/toolexec"
)

// localExecutor runs commands on this machine, standing in for a container.
type localExecutor struct{ runs int }

func (l *localExecutor) Run(ctx context.Context, c sdk.Command) (sdk.ExecResult, error) {
	l.runs++
	r, err := toolexec.Run(ctx, toolexec.Command{Path: c.Argv[0], Args: c.Argv[1:], Env: c.Env, Stdin: c.Stdin,
		Stdout: c.Stdout, AllowEmptyOutput: c.AllowEmptyOutput, Secrets: c.Secrets})
	return sdk.ExecResult{StdoutBytes: r.StdoutBytes, Stderr: r.Stderr}, err
}

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("from-file\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("x", 100<<10)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		exec    bool
		want    string
		wantOK  bool
		wantErr error
		errText string
	}{
		{name: "unset", env: map[string]string{"OTHER": "x"}},
		{name: "plain", env: map[string]string{"PW": "p"}, want: "p", wantOK: true},
		{name: "empty is set", env: map[string]string{"PW": ""}, want: "", wantOK: true},
		{name: "file", env: map[string]string{"PW_FILE": pw}, exec: true, want: "from-file", wantOK: true},
		{name: "file capped", env: map[string]string{"PW_FILE": big}, exec: true, want: strings.Repeat("x", maxSecretFile), wantOK: true},
		{name: "both", env: map[string]string{"PW": "p", "PW_FILE": pw}, exec: true, wantErr: sdk.ErrInvalidArgument, errText: "sets both PW and PW_FILE"},
		{name: "file without exec", env: map[string]string{"PW_FILE": pw}, wantErr: sdk.ErrUnsupported, errText: "PW_FILE, a file only readable inside the container"},
		{name: "missing file", env: map[string]string{"PW_FILE": filepath.Join(dir, "nope")}, exec: true, errText: "reading PW_FILE in the container: cat exited with status 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.exec {
				ctx = sdk.WithExecutor(ctx, &localExecutor{})
			}
			got, ok, err := Lookup(ctx, tt.env, "PW")
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("err = %v, want %q (%v)", err, tt.errText, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want || ok != tt.wantOK {
				t.Fatalf("got %q, %v, %v; want %q, %v", got, ok, err, tt.want, tt.wantOK)
			}
		})
	}
}
