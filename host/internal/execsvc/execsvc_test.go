package execsvc

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

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

func TestContainerHost(t *testing.T) {
	nets := func(m map[string]string) *container.NetworkSettings {
		ns := &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{}}
		for n, ip := range m {
			ns.Networks[n] = &network.EndpointSettings{IPAddress: ip}
		}
		return ns
	}
	cases := []struct {
		name  string
		ins   container.InspectResponse
		agent map[string]bool
		want  string
	}{
		{"host network", container.InspectResponse{
			ContainerJSONBase: &container.ContainerJSONBase{HostConfig: &container.HostConfig{NetworkMode: "host"}},
			NetworkSettings:   nets(map[string]string{"host": ""}),
		}, nil, "127.0.0.1"},
		{"first by name", container.InspectResponse{NetworkSettings: nets(map[string]string{"zeta": "10.0.2.5", "bridge": "172.17.0.3"})}, nil, "172.17.0.3"},
		{"shared with the agent", container.InspectResponse{NetworkSettings: nets(map[string]string{"zeta": "10.0.2.5", "bridge": "172.17.0.3"})},
			map[string]bool{"zeta": true}, "10.0.2.5"},
		{"skips networks without an address", container.InspectResponse{NetworkSettings: nets(map[string]string{"a": "", "b": "10.1.1.1"})}, nil, "10.1.1.1"},
		{"no network", container.InspectResponse{NetworkSettings: nets(nil)}, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := containerHost(c.ins, c.agent); got != c.want {
				t.Fatalf("containerHost = %q, want %q", got, c.want)
			}
		})
	}
}
