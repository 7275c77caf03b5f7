package execsvc

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"PW": "s3cr$t", "PORT": "5432", "EMPTY": ""}
	got, err := Expand("postgresql://u:${PW}@db:${PORT}/app?x=${EMPTY}&y=$PW", env)
	if err != nil || got != "postgresql://u:s3cr$t@db:5432/app?x=&y=$PW" {
		t.Fatalf("got %q err %v", got, err)
	}
	_, err = Expand("postgresql://u:${MISSING}@db:${ALSO_MISSING}/${PW}", env)
	if !errors.Is(err, sdk.ErrInvalidArgument) || !strings.Contains(err.Error(), "MISSING, ALSO_MISSING") || strings.Contains(err.Error(), "s3cr") {
		t.Fatalf("err = %v", err)
	}
}

func TestEnvMap(t *testing.T) {
	got := EnvMap([]string{"A=1", "B=x=y", "C=", "NOVALUE", "=bad"})
	want := map[string]string{"A": "1", "B": "x=y", "C": "", "NOVALUE": ""}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
}

func TestDatabaseHint(t *testing.T) {
	cases := []struct {
		typ  string
		t    sdk.Target
		want string
	}{
		{"postgres", sdk.Target{Database: "over", Connection: "postgresql://h/app"}, "over"},
		{"postgres", sdk.Target{Connection: "postgresql://u:p@h:1/app?sslmode=disable"}, "app"},
		{"postgres", sdk.Target{ContainerEnv: map[string]string{"POSTGRES_DB": "shop", "POSTGRES_USER": "u"}}, "shop"},
		{"postgres", sdk.Target{ContainerEnv: map[string]string{"POSTGRES_USER": "u"}}, "u"},
		{"postgres", sdk.Target{ContainerEnv: map[string]string{"POSTGRES_PASSWORD": "x"}}, "postgres"},
		{"postgres", sdk.Target{ContainerEnv: map[string]string{"POSTGRES_DB_FILE": "/f"}}, ""},
		{"mysql", sdk.Target{ContainerEnv: map[string]string{"MYSQL_DATABASE": "m"}}, "m"},
		{"mysql", sdk.Target{ContainerEnv: map[string]string{"MYSQL_ROOT_PASSWORD": "m"}}, ""},
		{"redis", sdk.Target{ContainerEnv: map[string]string{"POSTGRES_DB": "x"}}, ""},
	}
	for _, c := range cases {
		if got := DatabaseHint(c.typ, c.t); got != c.want {
			t.Errorf("DatabaseHint(%s, %+v) = %q, want %q", c.typ, c.t, got, c.want)
		}
	}
}
