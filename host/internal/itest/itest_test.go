package itest

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPostgresTrust starts a server without a password, round-trips rows
// through a table, and checks the container's labels and Stop/Remove.
func TestPostgresTrust(t *testing.T) {
	t.Parallel()
	start := time.Now()
	p := StartPostgres(t, PostgresOptions{
		Labels: map[string]string{"backup.enabled": "true", "backup.type": "postgres"},
	})
	t.Logf("postgres %s ready on port %d in %v", p.Name, p.Port, time.Since(start))

	p.CreateDatabase(t, "app")
	p.Psql(t, "app", `
		CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
		INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three');
	`)
	if got, want := p.Psql(t, "app", "SELECT id, name FROM items ORDER BY id"), "1|one\n2|two\n3|three"; got != want {
		t.Fatalf("rows = %q, want %q", got, want)
	}
	if got := p.Psql(t, "postgres", "SHOW server_version"); !strings.HasPrefix(got, "15") {
		t.Errorf("server_version = %q, want 15.x", got)
	}

	labels := Docker(t, "container", "inspect", "--format",
		`{{index .Config.Labels "backup.type"}} {{index .Config.Labels "labelbackup.itest"}}`, p.Name)
	if labels != "postgres 1" {
		t.Errorf("labels = %q, want %q", labels, "postgres 1")
	}
	if want := "postgresql://postgres@127.0.0.1:" + strconv.Itoa(p.Port) + "/app?sslmode=disable"; p.ConnString("app") != want {
		t.Errorf("ConnString = %q, want %q", p.ConnString("app"), want)
	}
	if _, err := p.psql("app", "SELECT nosuchcolumn FROM items", ""); err == nil {
		t.Error("psql with a bad query succeeded")
	}

	Stop(t, p.Name)
	if state := Docker(t, "container", "inspect", "--format", "{{.State.Running}}", p.Name); state != "false" {
		t.Errorf("after Stop: running = %q", state)
	}
	Remove(t, p.Name)
	Remove(t, p.Name) // a missing container is fine
}

// TestPostgresPassword checks scram-sha-256 authentication over TCP.
func TestPostgresPassword(t *testing.T) {
	t.Parallel()
	p := StartPostgres(t, PostgresOptions{Password: "s3cret p@ss/word"})

	if got := p.Psql(t, "postgres", "SELECT current_user"); got != "postgres" {
		t.Fatalf("current_user = %q", got)
	}
	if _, err := p.psql("postgres", "SELECT 1", "wrong"); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("wrong password: err = %v, want password authentication failure", err)
	}
	if _, err := p.psql("postgres", "SELECT 1", ""); err == nil {
		t.Error("no password: connection succeeded")
	}
	want := "postgresql://postgres:s3cret%20p%40ss%2Fword@127.0.0.1:" + strconv.Itoa(p.Port) + "/postgres?sslmode=disable"
	if got := p.ConnString("postgres"); got != want {
		t.Errorf("ConnString = %q, want %q", got, want)
	}
}

// TestFixedNameReplacesLeftover: a container left behind by a crashed run
// (same name, itest label) must not break the next run.
func TestFixedNameReplacesLeftover(t *testing.T) {
	t.Parallel()
	name := "lbit-pg-fixed-" + randomHex(3)
	port := FreePort(t)
	StartPostgres(t, PostgresOptions{Name: name, Port: port})
	p := StartPostgres(t, PostgresOptions{Name: name, Port: port})
	if got := p.Psql(t, "postgres", "SELECT 1"); got != "1" {
		t.Fatalf("SELECT 1 = %q", got)
	}
}

func TestFreePort(t *testing.T) {
	if p := FreePort(t); p <= 0 || p > 65535 {
		t.Fatalf("FreePort = %d", p)
	}
}
