package sdktest

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/containerenv"
	"github.com/labelbackup/label-backup/sdk/toolexec"
)

// execDumper dumps by running "cat" on Options["file"] through the host's
// executor, after reading a password the zero-config way.
type execDumper struct{}

func (execDumper) Info() sdk.Info { return sdk.Info{Name: "execdumper", Kind: sdk.KindDumper} }

func (execDumper) Validate(ctx context.Context, t sdk.Target) (sdk.ValidateResult, error) {
	pw, ok, err := containerenv.Lookup(ctx, t.ContainerEnv, "APP_PASSWORD")
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	if !ok || pw != "s3cret" {
		return sdk.ValidateResult{}, sdk.ErrUnauthenticated
	}
	return sdk.ValidateResult{ServerVersion: "1"}, nil
}

func (execDumper) Dump(ctx context.Context, t sdk.Target, w io.Writer) (sdk.DumpResult, error) {
	ex, ok := sdk.Exec(ctx)
	if !ok {
		return sdk.DumpResult{}, sdk.ErrUnsupported
	}
	_, err := toolexec.RunWith(ctx, ex, toolexec.Command{Path: "cat", Args: []string{"--", t.Options["file"]}, Stdout: w})
	return sdk.DumpResult{Extension: "txt"}, err
}

func TestLocalExecThroughBroker(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(data, []byte(strings.Repeat("row\n", 100000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := DumperClient(t, execDumper{})
	ctx := sdk.WithExecHandler(context.Background(), &LocalExec{})
	target := sdk.Target{
		Container:    sdk.ContainerRef{ID: "c1", Name: "db"},
		ContainerEnv: map[string]string{"APP_PASSWORD_FILE": pwFile},
		Options:      map[string]string{"file": data},
	}
	if _, err := c.Validate(ctx, target); err != nil {
		t.Fatalf("validate reading the password file through exec: %v", err)
	}
	var out strings.Builder
	if _, err := c.Dump(ctx, target, &out); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 400000 {
		t.Fatalf("dumped %d bytes, want 400000", out.Len())
	}

	// A failing command is an exit error with its stderr, as for local tools.
	target.Options["file"] = filepath.Join(dir, "missing")
	_, err := c.Dump(ctx, target, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "cat exited with status 1") || !strings.Contains(err.Error(), "No such file") {
		t.Fatalf("err = %v", err)
	}

	// Without a handler the plugin is told no executor is offered.
	if _, err := c.Dump(context.Background(), target, io.Discard); !errors.Is(err, sdk.ErrUnsupported) {
		t.Fatalf("without exec: %v", err)
	}
}

func TestLocalExecCancellation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	code, err := (&LocalExec{}).Exec(ctx, sdk.ExecSpec{Argv: []string{"sleep", "30"}}, nil, io.Discard, io.Discard)
	if !errors.Is(err, context.DeadlineExceeded) || code != -1 {
		t.Fatalf("code %d err %v", code, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	code, err = (&LocalExec{}).Exec(context.Background(), sdk.ExecSpec{Argv: []string{"no-such-tool-xyz"}}, nil, io.Discard, io.Discard)
	if code != 127 || err != nil {
		t.Fatalf("missing tool: code %d err %v", code, err)
	}
}
