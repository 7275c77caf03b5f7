package labels

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func base() map[string]string {
	return map[string]string{
		Enabled: "true",
		Type:    "postgres",
		Cron:    "0 2 * * *",
		Conn:    "postgresql://app:s3cret-pw@db:5432/app",
	}
}

func with(kv ...string) map[string]string {
	l := base()
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "<unset>" {
			delete(l, kv[i])
			continue
		}
		l[kv[i]] = kv[i+1]
	}
	return l
}

func TestDecodeValid(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		want   Spec
	}{
		{"minimal", base(), Spec{Enabled: true, Mode: ModeNetwork, Type: "postgres", Cron: "0 2 * * *", Conn: "postgresql://app:s3cret-pw@db:5432/app", Dest: DestLocal}},
		{"enabled is case-insensitive", with(Enabled, "TRUE"), Spec{Enabled: true, Mode: ModeNetwork, Type: "postgres", Cron: "0 2 * * *", Conn: "postgresql://app:s3cret-pw@db:5432/app", Dest: DestLocal}},
		{"all labels", with(Database, "other", Dest, "remote", NamePrefix, "/production/postgres/", Retention, "14d", Webhook, "https://hooks.example/x", Compression, "zstd", Keep, "5"),
			Spec{Enabled: true, Mode: ModeNetwork, Type: "postgres", Cron: "0 2 * * *", Conn: "postgresql://app:s3cret-pw@db:5432/app", Database: "other", Dest: DestRemote, Prefix: "production/postgres", Retention: 14 * 24 * time.Hour, Webhook: "https://hooks.example/x", Compression: "zstd", Keep: 5}},
		{"s3 is remote", with(Dest, "s3"), Spec{Enabled: true, Mode: ModeNetwork, Type: "postgres", Cron: "0 2 * * *", Conn: "postgresql://app:s3cret-pw@db:5432/app", Dest: DestRemote}},
		{"type alias", with(Type, "MariaDB"), Spec{Enabled: true, Mode: ModeNetwork, Type: "mysql", Cron: "0 2 * * *", Conn: "postgresql://app:s3cret-pw@db:5432/app", Dest: DestLocal}},
		{"seconds cron", with(Cron, "*/5 * * * * *"), Spec{Enabled: true, Mode: ModeNetwork, Type: "postgres", Cron: "*/5 * * * * *", Conn: "postgresql://app:s3cret-pw@db:5432/app", Dest: DestLocal}},
		{"descriptor", with(Cron, "@daily"), Spec{Enabled: true, Mode: ModeNetwork, Type: "postgres", Cron: "@daily", Conn: "postgresql://app:s3cret-pw@db:5432/app", Dest: DestLocal}},
		{"every", with(Cron, "@every 1h"), Spec{Enabled: true, Mode: ModeNetwork, Type: "postgres", Cron: "@every 1h", Conn: "postgresql://app:s3cret-pw@db:5432/app", Dest: DestLocal}},
		{"timezone prefix", with(Cron, "CRON_TZ=Europe/Paris 0 2 * * *"), Spec{Enabled: true, Mode: ModeNetwork, Type: "postgres", Cron: "CRON_TZ=Europe/Paris 0 2 * * *", Conn: "postgresql://app:s3cret-pw@db:5432/app", Dest: DestLocal}},
		{"unknown key warns", with("backup.retension", "3d"), Spec{Enabled: true, Mode: ModeNetwork, Type: "postgres", Cron: "0 2 * * *", Conn: "postgresql://app:s3cret-pw@db:5432/app", Dest: DestLocal, Warnings: []string{`unknown label "backup.retension" is ignored`}}},
		{"disabled ignores the rest", map[string]string{Enabled: "false", Cron: "garbage"}, Spec{}},
		{"no labels", map[string]string{}, Spec{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.labels)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	tests := []struct {
		name      string
		labels    map[string]string
		wantLabel string
		wantMsg   string
	}{
		{"enabled garbage", with(Enabled, "yes"), Enabled, `must be "true" or "false"`},
		{"missing type", with(Type, "<unset>"), Type, "is required"},
		{"bad type", with(Type, "../../bin/sh"), Type, "not a valid type"},
		{"missing cron", with(Cron, "<unset>"), Cron, "is required"},
		{"bad cron", with(Cron, "61 * * * *"), Cron, "not a valid schedule"},
		{"too many fields", with(Cron, "0 0 0 0 0 0 0"), Cron, "not a valid schedule"},
		{"bad mode", with(Mode, "ssh"), Mode, `must be "network" or "exec"`},
		{"empty conn", with(Conn, " "), Conn, "is empty"},
		{"empty conn in exec mode", with(Mode, "exec", Conn, ""), Conn, "is empty"},
		{"bad dest", with(Dest, "ftp"), Dest, `must be "local", "remote" or "s3"`},
		{"prefix traversal", with(NamePrefix, "a/../../etc"), NamePrefix, "clean relative path"},
		{"prefix chars", with(NamePrefix, "a b"), NamePrefix, "may contain only"},
		{"bad retention", with(Retention, "7 days"), Retention, "not a duration"},
		{"bad webhook", with(Webhook, "ftp://x"), Webhook, "http:// or https://"},
		{"bad compression", with(Compression, "lz4"), Compression, `"gzip", "zstd" or "none"`},
		{"database slash", with(Database, "a/b"), Database, "forbidden character"},
		{"keep zero", with(Keep, "0"), Keep, "at least 1"},
		{"keep words", with(Keep, "three"), Keep, "at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.labels)
			var le *Error
			if !errors.As(err, &le) {
				t.Fatalf("Decode err = %v, want *Error", err)
			}
			found := false
			for _, p := range le.Problems {
				if p.Label == tt.wantLabel && strings.Contains(p.Message, tt.wantMsg) {
					found = true
				}
			}
			if !found {
				t.Errorf("problems %+v lack %s: %q", le.Problems, tt.wantLabel, tt.wantMsg)
			}
			if strings.Contains(err.Error(), "s3cret-pw") {
				t.Errorf("error leaks the connection password: %v", err)
			}
		})
	}
}

func TestDecodeModeAndOptionalConn(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		mode   string
	}{
		{"exec without conn", with(Mode, "EXEC", Conn, "<unset>"), ModeExec},
		{"exec with any type", with(Type, "redis", Mode, "exec", Conn, "<unset>"), ModeExec},
		{"mysql in exec mode", with(Type, "mariadb", Mode, "exec", Conn, "<unset>"), ModeExec},
		{"exec mode with conn", with(Mode, "exec"), ModeExec},
		{"explicit network", with(Mode, "network"), ModeNetwork},
		{"network without conn", with(Conn, "<unset>"), ModeNetwork},
		{"mongodb without conn", with(Type, "mongo", Conn, "<unset>"), ModeNetwork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Decode(tt.labels)
			if err != nil {
				t.Fatal(err)
			}
			if s.Mode != tt.mode {
				t.Errorf("Mode = %q, want %q", s.Mode, tt.mode)
			}
			if len(s.Warnings) != 0 {
				t.Errorf("warnings %v", s.Warnings)
			}
		})
	}
}

func TestDecodeReportsEveryProblem(t *testing.T) {
	_, err := Decode(with(Cron, "nope", Dest, "ftp", Retention, "x"))
	var le *Error
	if !errors.As(err, &le) || len(le.Problems) != 3 {
		t.Fatalf("err = %v, want 3 problems", err)
	}
}

func TestWebhookErrorHidesToken(t *testing.T) {
	_, err := Decode(with(Webhook, "ftp://hooks.example/services/T000/SECRETTOKEN"))
	if err == nil || strings.Contains(err.Error(), "SECRETTOKEN") {
		t.Fatalf("err = %v: want an error without the token", err)
	}
	if got := RedactURL("https://user:pw@hooks.slack.com/services/T0/B0/XYZ?x=1"); got != "https://hooks.slack.com/…" {
		t.Errorf("RedactURL = %q", got)
	}
}
