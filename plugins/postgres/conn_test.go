package postgres

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/toolexec"
)

func TestParseConn(t *testing.T) {
	tests := []struct {
		name       string
		conn       string
		db         string // Target.Database
		wantURI    string
		wantPW     string
		wantSSLPW  string
		wantHosts  []string
		wantUser   string
		wantDB     string
		wantTimeo  bool // connect_timeout given
		secretBits []string
	}{
		{
			name:    "userinfo password",
			conn:    "postgresql://app:s3cretPW@db.example:5432/shop",
			wantURI: "postgresql://app@db.example:5432/shop", wantPW: "s3cretPW",
			wantHosts: []string{"db.example:5432"}, wantUser: "app", wantDB: "shop",
		},
		{
			name:    "short scheme, no port",
			conn:    "postgres://app:s3cretPW@db/shop",
			wantURI: "postgresql://app@db/shop", wantPW: "s3cretPW",
			wantHosts: []string{"db"}, wantUser: "app", wantDB: "shop",
		},
		{
			name:    "scheme is case-insensitive",
			conn:    "PostgreSQL://app:s3cretPW@db/shop",
			wantURI: "postgresql://app@db/shop", wantPW: "s3cretPW",
			wantHosts: []string{"db"}, wantUser: "app", wantDB: "shop",
		},
		{
			name:    "percent-encoded user and password",
			conn:    "postgresql://us%40er:p%40ss%3Aw%2Frd%25+x@db:5432/shop",
			wantURI: "postgresql://us%40er@db:5432/shop", wantPW: "p@ss:w/rd%+x",
			wantHosts: []string{"db:5432"}, wantUser: "us@er", wantDB: "shop",
			secretBits: []string{"p%40ss%3Aw%2Frd%25+x"},
		},
		{
			name:    "unescaped @ in password: last @ ends the userinfo",
			conn:    "postgresql://app:p@ss@db/shop",
			wantURI: "postgresql://app@db/shop", wantPW: "p@ss",
			wantHosts: []string{"db"}, wantUser: "app", wantDB: "shop",
		},
		{
			name:    "password in query",
			conn:    "postgresql://app@db/shop?sslmode=require&password=qu%26ryPW&application_name=lb",
			wantURI: "postgresql://app@db/shop?sslmode=require&application_name=lb", wantPW: "qu&ryPW",
			wantHosts: []string{"db"}, wantUser: "app", wantDB: "shop",
			secretBits: []string{"qu%26ryPW"},
		},
		{
			name:    "query password wins over userinfo, both removed",
			conn:    "postgresql://app:firstPW@db/shop?password=secondPW",
			wantURI: "postgresql://app@db/shop", wantPW: "secondPW",
			wantHosts: []string{"db"}, wantUser: "app", wantDB: "shop",
			secretBits: []string{"firstPW"},
		},
		{
			name:    "query options kept verbatim",
			conn:    "postgresql://app:s3cretPW@db:5432/shop?sslmode=verify-full&sslrootcert=/certs/root%20ca.pem&sslcert=/c/cl.crt&sslkey=/c/cl.key&options=-c%20search_path%3Dfoo&target_session_attrs=read-write&application_name=lb&connect_timeout=3&keepalives=1",
			wantURI: "postgresql://app@db:5432/shop?sslmode=verify-full&sslrootcert=/certs/root%20ca.pem&sslcert=/c/cl.crt&sslkey=/c/cl.key&options=-c%20search_path%3Dfoo&target_session_attrs=read-write&application_name=lb&connect_timeout=3&keepalives=1",
			wantPW:  "s3cretPW", wantHosts: []string{"db:5432"}, wantUser: "app", wantDB: "shop", wantTimeo: true,
		},
		{
			name:    "database override replaces the path",
			conn:    "postgresql://app:s3cretPW@db/shop?sslmode=disable",
			db:      "other db/ü",
			wantURI: "postgresql://app@db/other%20db%2F%C3%BC?sslmode=disable", wantPW: "s3cretPW",
			wantHosts: []string{"db"}, wantUser: "app", wantDB: "other db/ü",
		},
		{
			name:    "database override drops a dbname parameter",
			conn:    "postgresql://app:s3cretPW@db/shop?dbname=fromquery&sslmode=disable",
			db:      "wanted",
			wantURI: "postgresql://app@db/wanted?sslmode=disable", wantPW: "s3cretPW",
			wantHosts: []string{"db"}, wantUser: "app", wantDB: "wanted",
		},
		{
			name:    "database override without a path",
			conn:    "postgresql://app:s3cretPW@db:6432",
			db:      "wanted",
			wantURI: "postgresql://app@db:6432/wanted", wantPW: "s3cretPW",
			wantHosts: []string{"db:6432"}, wantUser: "app", wantDB: "wanted",
		},
		{
			name:      "dbname parameter without override",
			conn:      "postgresql://app@db/?dbname=q",
			wantURI:   "postgresql://app@db/?dbname=q",
			wantHosts: []string{"db"}, wantUser: "app", wantDB: "q",
		},
		{
			name:      "no path: a slash is added so an @ in the query stays in the query",
			conn:      "postgresql://db?application_name=a@b",
			wantURI:   "postgresql://db/?application_name=a@b",
			wantHosts: []string{"db"}, wantDB: "",
		},
		{
			name:    "no database: defaults to the user",
			conn:    "postgresql://app:s3cretPW@db",
			wantURI: "postgresql://app@db/", wantPW: "s3cretPW",
			wantHosts: []string{"db"}, wantUser: "app", wantDB: "app",
		},
		{
			name:      "user from the query",
			conn:      "postgresql://db/shop?user=qu",
			wantURI:   "postgresql://db/shop?user=qu",
			wantHosts: []string{"db"}, wantUser: "qu", wantDB: "shop",
		},
		{
			name:    "multiple hosts and IPv6",
			conn:    "postgresql://app:s3cretPW@h1:5432,[::1]:5433,h3/shop?target_session_attrs=primary",
			wantURI: "postgresql://app@h1:5432,[::1]:5433,h3/shop?target_session_attrs=primary", wantPW: "s3cretPW",
			wantHosts: []string{"h1:5432", "[::1]:5433", "h3"}, wantUser: "app", wantDB: "shop",
		},
		{
			name:      "Unix socket as an encoded host",
			conn:      "postgresql://app@%2Frun%2Fpostgresql:5432/shop",
			wantURI:   "postgresql://app@%2Frun%2Fpostgresql:5432/shop",
			wantHosts: []string{"/run/postgresql:5432"}, wantUser: "app", wantDB: "shop",
		},
		{
			name:    "host from the query",
			conn:    "postgresql://app:s3cretPW@/shop?host=/run/postgresql",
			wantURI: "postgresql://app@/shop?host=/run/postgresql", wantPW: "s3cretPW",
			wantUser: "app", wantDB: "shop",
		},
		{
			name:      "empty password",
			conn:      "postgresql://app:@db/shop",
			wantURI:   "postgresql://app@db/shop",
			wantHosts: []string{"db"}, wantUser: "app", wantDB: "shop",
		},
		{
			name:      "empty query segments dropped",
			conn:      "postgresql://db/shop?&sslmode=disable&&",
			wantURI:   "postgresql://db/shop?sslmode=disable",
			wantHosts: []string{"db"}, wantDB: "shop",
		},
		{
			name:    "sslpassword goes to a service file",
			conn:    "postgresql://app:s3cretPW@db/shop?sslkey=/k.pem&sslpassword=k3yPASS",
			wantURI: "postgresql://app@db/shop?sslkey=/k.pem", wantPW: "s3cretPW", wantSSLPW: "k3yPASS",
			wantHosts: []string{"db"}, wantUser: "app", wantDB: "shop",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ci, err := parseConn(tc.conn, tc.db)
			if err != nil {
				t.Fatalf("parseConn: %v", err)
			}
			if ci.uri != tc.wantURI {
				t.Errorf("uri\n got %s\nwant %s", ci.uri, tc.wantURI)
			}
			if ci.password != tc.wantPW {
				t.Errorf("password %q, want %q", ci.password, tc.wantPW)
			}
			if ci.sslPassword != tc.wantSSLPW {
				t.Errorf("sslpassword %q, want %q", ci.sslPassword, tc.wantSSLPW)
			}
			if !slices.Equal(ci.hosts, tc.wantHosts) {
				t.Errorf("hosts %q, want %q", ci.hosts, tc.wantHosts)
			}
			if ci.user != tc.wantUser {
				t.Errorf("user %q, want %q", ci.user, tc.wantUser)
			}
			if ci.database != tc.wantDB {
				t.Errorf("database %q, want %q", ci.database, tc.wantDB)
			}
			if ci.hasConnectTimeout != tc.wantTimeo {
				t.Errorf("hasConnectTimeout %v, want %v", ci.hasConnectTimeout, tc.wantTimeo)
			}

			secrets := append([]string{}, tc.secretBits...)
			for _, s := range []string{tc.wantPW, tc.wantSSLPW} {
				if s != "" {
					secrets = append(secrets, s)
				}
			}
			for _, s := range secrets {
				if !slices.Contains(ci.secrets, s) {
					t.Errorf("secret %q not in Secrets %q", s, ci.secrets)
				}
			}

			// No argv any tool gets may carry a secret.
			argvs := map[string][]string{
				"psql":       ci.psqlArgs(),
				"pg_dump":    ci.dumpArgs(),
				"pg_restore": ci.restoreArgs(restoreOptions{clean: true, noOwner: true}),
			}
			for tool, argv := range argvs {
				joined := strings.Join(argv, " ")
				for _, s := range secrets {
					if strings.Contains(joined, s) {
						t.Errorf("%s argv contains secret %q: %q", tool, s, argv)
					}
				}
				if !slices.Contains(argv, "--dbname="+tc.wantURI) {
					t.Errorf("%s argv lacks --dbname=<uri>: %q", tool, argv)
				}
				if !slices.Contains(argv, "--no-password") {
					t.Errorf("%s argv lacks --no-password: %q", tool, argv)
				}
			}
			for _, s := range secrets {
				if strings.Contains(ci.where(), s) || strings.Contains(ci.hostList(), s) {
					t.Errorf("where/hostList shows secret %q", s)
				}
			}

			env, cleanup, err := ci.env()
			defer cleanup()
			if err != nil {
				t.Fatal(err)
			}
			wantEnv := []string{}
			if tc.wantPW != "" {
				wantEnv = append(wantEnv, "PGPASSWORD="+tc.wantPW)
			}
			if !tc.wantTimeo {
				wantEnv = append(wantEnv, "PGCONNECT_TIMEOUT=10")
			}
			for _, e := range wantEnv {
				if !slices.Contains(env, e) {
					t.Errorf("env %q lacks %q", env, e)
				}
			}
			if tc.wantPW == "" && slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "PGPASSWORD=") }) {
				t.Errorf("env %q sets PGPASSWORD without a password", env)
			}
			if tc.wantSSLPW != "" {
				var file string
				for _, e := range env {
					if f, ok := strings.CutPrefix(e, "PGSERVICEFILE="); ok {
						file = f
					}
				}
				if !slices.Contains(env, "PGSERVICE=labelbackup") || file == "" {
					t.Fatalf("env %q lacks the service file", env)
				}
				b, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				if string(b) != "[labelbackup]\nsslpassword="+tc.wantSSLPW+"\n" {
					t.Errorf("service file %q", b)
				}
				if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
					t.Errorf("service file mode %v", fi.Mode())
				}
				cleanup()
				if _, err := os.Stat(file); !os.IsNotExist(err) {
					t.Errorf("service file not removed by cleanup")
				}
			}
		})
	}
}

func TestParseConnRejects(t *testing.T) {
	const pw = "Sup3rSecretPW"
	tests := []struct {
		name string
		conn string
		db   string
	}{
		{"empty", "", ""},
		{"blank", "   ", ""},
		{"wrong scheme", "mysql://root:" + pw + "@db/x", ""},
		{"key/value form", "host=db user=app password=" + pw, ""},
		{"no scheme", "app:" + pw + "@db/x", ""},
		{"no host", "postgresql://app:" + pw + "@/x", ""},
		{"no host, query only", "postgresql://app:" + pw + "@?sslmode=disable", ""},
		{"empty host in list", "postgresql://app:" + pw + "@h1,,h2/x", ""},
		{"port only", "postgresql://app:" + pw + "@:5432/x", ""},
		{"bad port", "postgresql://app:" + pw + "@db:54x2/x", ""},
		{"port out of range", "postgresql://app:" + pw + "@db:70000/x", ""},
		{"unescaped slash in password", "postgresql://app:Sup3r/" + pw + "@db/x", ""},
		{"bad escape in password", "postgresql://app:" + pw + "%zz@db/x", ""},
		{"encoded NUL in password", "postgresql://app:" + pw + "%00@db/x", ""},
		{"bad escape in user", "postgresql://a%zpp:" + pw + "@db/x", ""},
		{"bad escape in database", "postgresql://app:" + pw + "@db/x%z", ""},
		{"bad escape in query password", "postgresql://app@db/x?password=" + pw + "%q", ""},
		{"query parameter without =", "postgresql://app@db/x?" + pw, ""},
		{"unclosed IPv6", "postgresql://app:" + pw + "@[::1/x", ""},
		{"junk after IPv6", "postgresql://app:" + pw + "@[::1]x/x", ""},
		{"NUL byte", "postgresql://app:" + pw + "\x00@db/x", ""},
		{"NUL in database override", "postgresql://app:" + pw + "@db/x", "a\x00b"},
		{"sslpassword with newline", "postgresql://app@db/x?sslpassword=" + pw + "%0Asslmode=disable", ""},
		{"sslpassword with service", "postgresql://app@db/x?service=s&sslpassword=" + pw, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ci, err := parseConn(tc.conn, tc.db)
			if err == nil {
				t.Fatalf("parseConn accepted it: uri %q", ci.uri)
			}
			if !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Errorf("error %q does not wrap ErrInvalidArgument", err)
			}
			for _, s := range []string{pw, "Sup3r", "zz", "54x2"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains %q from the connection string", err, s)
				}
			}
		})
	}
}

func TestParseRestoreOptions(t *testing.T) {
	tests := []struct {
		opts    map[string]string
		want    restoreOptions
		wantErr bool
	}{
		{nil, restoreOptions{}, false},
		{map[string]string{"clean": "true"}, restoreOptions{clean: true}, false},
		{map[string]string{"no_owner": "1", "clean": "false"}, restoreOptions{noOwner: true}, false},
		{map[string]string{"clean": "", "other": "x"}, restoreOptions{}, false},
		{map[string]string{"clean": "yes please"}, restoreOptions{}, true},
	}
	for _, tc := range tests {
		got, err := parseRestoreOptions(tc.opts)
		if (err != nil) != tc.wantErr {
			t.Errorf("%v: error %v, want error %v", tc.opts, err, tc.wantErr)
			continue
		}
		if err != nil {
			if !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Errorf("%v: %v is not ErrInvalidArgument", tc.opts, err)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("%v: got %+v, want %+v", tc.opts, got, tc.want)
		}
		args := (&connInfo{uri: "postgresql://db/"}).restoreArgs(got)
		if slices.Contains(args, "--clean") != got.clean || slices.Contains(args, "--if-exists") != got.clean {
			t.Errorf("%v: args %q", tc.opts, args)
		}
		if slices.Contains(args, "--no-owner") != got.noOwner {
			t.Errorf("%v: args %q", tc.opts, args)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		stderr string
		want   error // nil: no sentinel
	}{
		{`psql: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "app"`, sdk.ErrUnauthenticated},
		{`psql: error: connection to server at "127.0.0.1", port 5432 failed: fe_sendauth: no password supplied`, sdk.ErrUnauthenticated},
		{`psql: error: connection to server on socket "/run/postgresql/.s.PGSQL.5432" failed: FATAL:  role "bob" does not exist`, sdk.ErrUnauthenticated},
		{`pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  database "nope" does not exist`, sdk.ErrNotFound},
		{`psql: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  permission denied for database "x"`, sdk.ErrPermission},
		{`pg_dump: error: query failed: ERROR:  permission denied for table secrets`, sdk.ErrPermission},
		{`psql: error: connection to server at "10.0.0.1", port 5432 failed: FATAL:  no pg_hba.conf entry for host "10.0.0.2"`, sdk.ErrPermission},
		{"psql: error: connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?", sdk.ErrUnavailable},
		{`psql: error: could not translate host name "db.invalid" to address: Name or service not known`, sdk.ErrUnavailable},
		{`psql: error: connection to server at "10.1.1.1", port 5432 failed: timeout expired`, sdk.ErrUnavailable},
		{`psql: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  the database system is starting up`, sdk.ErrUnavailable},
		{`psql: error: connection to server at "127.0.0.1", port 5432 failed: server does not support SSL, but SSL was required`, nil},
		{`psql: error: connection to server at "db", port 5432 failed: root certificate file "/x" does not exist`, nil},
		{`pg_restore: error: could not execute query: ERROR:  role "bob" does not exist`, nil},
		{`pg_restore: error: could not execute query: ERROR:  relation "t" already exists`, nil},
	}
	for _, tc := range tests {
		in := &toolexec.ExitError{Tool: "psql", ExitCode: 2, Stderr: tc.stderr}
		err := classify(in)
		for _, s := range []error{sdk.ErrUnauthenticated, sdk.ErrNotFound, sdk.ErrPermission, sdk.ErrUnavailable} {
			if got := errors.Is(err, s); got != (s == tc.want) {
				t.Errorf("%q: errors.Is(%v) = %v", tc.stderr, s, got)
			}
		}
		var xe *toolexec.ExitError
		if !errors.As(err, &xe) || !strings.Contains(err.Error(), tc.stderr) {
			t.Errorf("%q: classified error %q lost the tool's error", tc.stderr, err)
		}
	}
	// Errors that are not a tool's exit pass through unchanged.
	plain := errors.New("x")
	if classify(plain) != plain {
		t.Error("classify changed a plain error")
	}
	if err := classify(context.Canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("classify lost context.Canceled: %v", err)
	}
}

func TestInfo(t *testing.T) {
	i := New().Info()
	if i.Name != "postgres" || i.Version != "0.1.0" || i.Kind != sdk.KindDumper ||
		!i.Has(sdk.CapRestore) || i.DefaultExtension != ".dump" {
		t.Errorf("Info %+v", i)
	}
	if len(i.Options) != 1 || i.Options[0].Name != "bin_dir" || i.Options[0].Secret {
		t.Errorf("Options %+v", i.Options)
	}
}

func TestConfigure(t *testing.T) {
	good := t.TempDir()
	for _, tool := range tools {
		if err := os.WriteFile(good+"/"+tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	partial := t.TempDir()
	if err := os.WriteFile(partial+"/psql", []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		settings map[string]string
		wantTool string // path of psql after Configure; "" means an error
	}{
		{"none", nil, "psql"},
		{"empty bin_dir", map[string]string{"bin_dir": ""}, "psql"},
		{"good bin_dir", map[string]string{"bin_dir": good + "/"}, good + "/psql"},
		{"relative bin_dir", map[string]string{"bin_dir": "bin"}, ""},
		{"missing dir", map[string]string{"bin_dir": good + "/nope"}, ""},
		{"dir lacks tools", map[string]string{"bin_dir": partial}, ""},
		{"unknown setting", map[string]string{"bindir": good}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New()
			err := p.Configure(context.Background(), tc.settings)
			if tc.wantTool == "" {
				if !errors.Is(err, sdk.ErrInvalidArgument) {
					t.Fatalf("Configure: %v, want ErrInvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := p.tool("psql"); got != tc.wantTool {
				t.Errorf("tool path %q, want %q", got, tc.wantTool)
			}
		})
	}
}

func TestRestoreRejectsFormat(t *testing.T) {
	for _, f := range []string{"sql", "pg_dump-plain", "PG_DUMP-CUSTOM", "tar"} {
		_, err := New().Restore(context.Background(), sdk.Target{Connection: "postgresql://db/x"}, f, strings.NewReader(""))
		if !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Errorf("format %q: %v, want ErrInvalidArgument", f, err)
		}
	}
}

func TestBadConnectionNeverReachesTools(t *testing.T) {
	// A plugin whose tools do not exist: a bad connection string must be
	// rejected before any tool would run.
	p := New()
	p.binDir = "/nonexistent"
	const conn = "mysql://root:Sup3rSecretPW@db/x"
	ctx := context.Background()
	_, errV := p.Validate(ctx, sdk.Target{Connection: conn})
	_, errD := p.Dump(ctx, sdk.Target{Connection: conn}, &strings.Builder{})
	_, errR := p.Restore(ctx, sdk.Target{Connection: conn}, "", strings.NewReader("x"))
	for _, err := range []error{errV, errD, errR} {
		if !errors.Is(err, sdk.ErrInvalidArgument) || strings.Contains(err.Error(), "Sup3rSecretPW") {
			t.Errorf("got %v", err)
		}
	}
}
