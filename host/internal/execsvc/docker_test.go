package execsvc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
	"github.com/labelbackup/label-backup/host/internal/labels"
	"github.com/labelbackup/label-backup/sdk"
)

// startBox runs a placeholder container with env and returns its ID.
func startBox(t *testing.T, env ...string) string {
	t.Helper()
	var extra []string
	for _, e := range env {
		extra = append(extra, "-e", e)
	}
	return strings.TrimSpace(itest.RunLabeled(t, itest.UniqueName("lbit-exec"), map[string]string{"lbit.execsvc": "1"}, extra...))
}

func service(t *testing.T, id string) *Service {
	t.Helper()
	cli, err := DefaultClient()
	if err != nil {
		t.Fatal(err)
	}
	return New(cli, id)
}

// TestDockerExec runs commands in a real container: output is demultiplexed,
// exit codes come back, stdin reaches the command and its EOF ends it,
// env entries are added, and large outputs stream through intact.
func TestDockerExec(t *testing.T) {
	id := startBox(t, "FROM_CONTAINER=yes")
	s := service(t, id)
	ctx := context.Background()
	run := func(spec sdk.ExecSpec, stdin io.Reader) (string, string, int) {
		t.Helper()
		spec.ContainerID = id
		var out, errb bytes.Buffer
		code, err := s.Exec(ctx, spec, stdin, &out, &errb)
		if err != nil {
			t.Fatalf("%v: %v", spec.Argv, err)
		}
		return out.String(), errb.String(), code
	}

	out, errs, code := run(sdk.ExecSpec{Argv: []string{"sh", "-c", `echo "out $FROM_CONTAINER $ADDED"; echo err >&2; exit 3`}, Env: []string{"ADDED=x y"}}, nil)
	if out != "out yes x y\n" || errs != "err\n" || code != 3 {
		t.Errorf("out %q err %q code %d", out, errs, code)
	}

	input := bytes.Repeat([]byte("stdin \x00\xff line\n"), 200_000)
	out, _, code = run(sdk.ExecSpec{Argv: []string{"cat"}}, bytes.NewReader(input))
	if code != 0 || out != string(input) {
		t.Errorf("cat: code %d, %d bytes back of %d", code, len(out), len(input))
	}

	// 64 MiB out, checked by digest.
	var outHash, errb bytes.Buffer
	h := sha256.New()
	start := time.Now()
	code, err := s.Exec(ctx, sdk.ExecSpec{ContainerID: id, Argv: []string{"head", "-c", "67108864", "/dev/zero"}}, nil, io.MultiWriter(h, &countWriter{}), &errb)
	if err != nil || code != 0 {
		t.Fatalf("head: code %d err %v %s", code, err, errb.String())
	}
	want := sha256.Sum256(make([]byte, 64<<20))
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Errorf("64 MiB of zeros arrived altered")
	}
	t.Logf("64 MiB through docker exec in %v", time.Since(start).Round(time.Millisecond))
	_ = outHash

	_, errs, code = run(sdk.ExecSpec{Argv: []string{"no-such-tool"}}, nil)
	if code != 126 && code != 127 {
		t.Errorf("missing tool: code %d, stderr %q", code, errs)
	}
}

func TestDockerExecRefusesOtherContainers(t *testing.T) {
	mine := startBox(t)
	other := startBox(t)
	s := service(t, mine)
	_, err := s.Exec(context.Background(), sdk.ExecSpec{ContainerID: other, Argv: []string{"true"}}, nil, io.Discard, io.Discard)
	if !errors.Is(err, sdk.ErrPermission) {
		t.Fatalf("err = %v, want a permission error", err)
	}
}

func TestDockerExecCancel(t *testing.T) {
	id := startBox(t)
	s := service(t, id)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Exec(ctx, sdk.ExecSpec{ContainerID: id, Argv: []string{"sh", "-c", "while :; do echo lbcancel-loop; done"}}, nil, io.Discard, io.Discard)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
	itest.WaitFor(t, 10*time.Second, "the exec'd loop to end", func() bool {
		out, err := exec2(id)
		return err == nil && !strings.Contains(out, "lbcancel-loop")
	})

	// A command that writes nothing (a tool waiting on a lock, say) is
	// killed too: by the time Exec returns it is gone.
	ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = s.Exec(ctx, sdk.ExecSpec{ContainerID: id, Argv: []string{"sleep", "313"}}, nil, io.Discard, io.Discard)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if out, err := exec2(id); err != nil || strings.Contains(out, "sleep 313") {
		t.Fatalf("the cancelled command still runs (err %v):\n%s", err, out)
	}
}

// exec2 lists the container's processes through a second exec.
func exec2(id string) (string, error) {
	cli, err := DefaultClient()
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	_, err = New(cli, id).Exec(context.Background(), sdk.ExecSpec{ContainerID: id, Argv: []string{"ps", "-eo", "args"}}, nil, &out, io.Discard)
	return out.String(), err
}

func TestPrepare(t *testing.T) {
	id := startBox(t, "POSTGRES_PASSWORD=pw", "PGPORT=5433")
	target := sdk.Target{Connection: "postgresql://u:${POSTGRES_PASSWORD}@h:${PGPORT}/app", Container: sdk.ContainerRef{ID: id, Name: "x"}}
	ctx, err := Prepare(context.Background(), labels.Spec{Mode: labels.ModeNetwork}, &target)
	if err != nil || target.Connection != "postgresql://u:pw@h:5433/app" || target.ContainerEnv != nil {
		t.Fatalf("target %+v err %v", target, err)
	}
	if ctx.Value(struct{}{}) != nil {
		t.Fatal("unexpected")
	}

	target = sdk.Target{Container: sdk.ContainerRef{ID: id, Name: "x"}, Options: map[string]string{"clean": "true"}}
	_, err = Prepare(context.Background(), labels.Spec{Mode: labels.ModeExec}, &target)
	if err != nil || target.ContainerEnv["POSTGRES_PASSWORD"] != "pw" || target.Options[sdk.OptionMode] != sdk.ModeExec || target.Options["clean"] != "true" {
		t.Fatalf("target %+v err %v", target, err)
	}

	// Nothing to do: no Docker call, the target unchanged.
	target = sdk.Target{Connection: "postgresql://h/app"}
	if _, err := Prepare(context.Background(), labels.Spec{Mode: labels.ModeNetwork}, &target); err != nil || target.Options != nil {
		t.Fatalf("target %+v err %v", target, err)
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
