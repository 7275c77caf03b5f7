package toolexec

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
)

type recordingExecutor struct {
	got sdk.Command
	err error
}

func (r *recordingExecutor) Run(_ context.Context, c sdk.Command) (sdk.ExecResult, error) {
	r.got = c
	return sdk.ExecResult{StdoutBytes: 7, Stderr: "w"}, r.err
}

func TestRunWithExecutor(t *testing.T) {
	ex := &recordingExecutor{err: &sdk.ExitError{Tool: "pg_dump", ExitCode: 1, Stderr: "bad"}}
	var out strings.Builder
	res, err := RunWith(context.Background(), ex, Command{
		Path: "pg_dump", Args: []string{"-Fc"}, Env: []string{"PGPASSWORD=x"},
		Stdout: &out, Secrets: []string{"x"}, AllowEmptyOutput: true, StderrLimit: 9,
	})
	var xe *ExitError // toolexec's name for the same type
	if !errors.As(err, &xe) || xe.ExitCode != 1 {
		t.Fatalf("err = %v", err)
	}
	if res.StdoutBytes != 7 || res.Stderr != "w" {
		t.Errorf("res = %+v", res)
	}
	want := sdk.Command{Argv: []string{"pg_dump", "-Fc"}, Env: []string{"PGPASSWORD=x"}, Stdout: &out,
		Secrets: []string{"x"}, AllowEmptyOutput: true, StderrLimit: 9}
	if !reflect.DeepEqual(ex.got, want) {
		t.Errorf("executor got %+v", ex.got)
	}
}

func TestRunWithNilRunsLocally(t *testing.T) {
	var out strings.Builder
	res, err := RunWith(context.Background(), nil, Command{Path: "sh", Args: []string{"-c", "printf hi"}, Stdout: &out})
	if err != nil || out.String() != "hi" || res.StdoutBytes != 2 {
		t.Fatalf("res %+v out %q err %v", res, out.String(), err)
	}
	_, err = RunWith(context.Background(), nil, Command{Path: "sh", Args: []string{"-c", "echo oops >&2; exit 4"}, Stdout: &out})
	var xe *sdk.ExitError
	if !errors.As(err, &xe) || xe.ExitCode != 4 || err.Error() != "sh exited with status 4: oops" {
		t.Fatalf("err = %v", err)
	}
}
