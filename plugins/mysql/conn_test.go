package mysql

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/labelbackup/label-backup/sdk"
)

func TestParseConn(t *testing.T) {
	tests := []struct {
		name       string
		conn       string
		db         string // Target.Database
		want       connInfo
		secretBits []string // raw forms that must be registered as secrets too
	}{
		{
			name: "full URI",
			conn: "mysql://app:s3cretPW@db.example:3307/shop",
			want: connInfo{user: "app", password: "s3cretPW", hasPassword: true, host: "db.example", port: 3307, database: "shop"},
		},
		{
			name: "mariadb scheme, default port",
			conn: "mariadb://app:s3cretPW@db/shop",
			want: connInfo{user: "app", password: "s3cretPW", hasPassword: true, host: "db", port: 3306, database: "shop"},
		},
		{
			name: "scheme is case-insensitive",
			conn: "MySQL://app:s3cretPW@db/shop",
			want: connInfo{user: "app", password: "s3cretPW", hasPassword: true, host: "db", port: 3306, database: "shop"},
		},
		{
			name:       "percent-encoded user, password and database",
			conn:       "mysql://us%40er:p%40ss%3Aw%2Frd%25+x%23y@db:3306/my%20db",
			want:       connInfo{user: "us@er", password: "p@ss:w/rd%+x#y", hasPassword: true, host: "db", port: 3306, database: "my db"},
			secretBits: []string{"p%40ss%3Aw%2Frd%25+x%23y"},
		},
		{
			name: "unescaped @ and # in the password: the last @ ends the userinfo",
			conn: "mysql://app:p@ss#1@db/shop",
			want: connInfo{user: "app", password: "p@ss#1", hasPassword: true, host: "db", port: 3306, database: "shop"},
		},
		{
			name: "no password",
			conn: "mysql://app@db/shop",
			want: connInfo{user: "app", host: "db", port: 3306, database: "shop"},
		},
		{
			name: "empty password",
			conn: "mysql://app:@db/shop",
			want: connInfo{user: "app", hasPassword: true, host: "db", port: 3306, database: "shop"},
		},
		{
			name: "no user, no database: all databases",
			conn: "mysql://db",
			want: connInfo{host: "db", port: 3306},
		},
		{
			name: "trailing slash: all databases",
			conn: "mysql://app:s3cretPW@db:3306/",
			want: connInfo{user: "app", password: "s3cretPW", hasPassword: true, host: "db", port: 3306},
		},
		{
			name: "database override replaces the path",
			conn: "mysql://app:s3cretPW@db/shop",
			db:   "other db/ü",
			want: connInfo{user: "app", password: "s3cretPW", hasPassword: true, host: "db", port: 3306, database: "other db/ü"},
		},
		{
			name: "database override without a path",
			conn: "mysql://app:s3cretPW@db:3306?ssl-mode=DISABLED",
			db:   "wanted",
			want: connInfo{user: "app", password: "s3cretPW", hasPassword: true, host: "db", port: 3306, database: "wanted",
				tls: tlsSettings{mode: sslDisabled}},
		},
		{
			name: "IPv6 host",
			conn: "mysql://app:s3cretPW@[::1]:3310/shop",
			want: connInfo{user: "app", password: "s3cretPW", hasPassword: true, host: "::1", port: 3310, database: "shop"},
		},
		{
			name: "IPv6 host without port",
			conn: "mysql://app:s3cretPW@[fe80::1]/shop",
			want: connInfo{user: "app", password: "s3cretPW", hasPassword: true, host: "fe80::1", port: 3306, database: "shop"},
		},
		{
			name: "TLS parameters",
			conn: "mysql://app:s3cretPW@db/shop?ssl-mode=VERIFY_IDENTITY&ssl-ca=/certs/root%20ca.pem&ssl-cert=/c/client.crt&ssl-key=/c/client.key",
			want: connInfo{user: "app", password: "s3cretPW", hasPassword: true, host: "db", port: 3306, database: "shop",
				tls: tlsSettings{mode: sslVerifyIdentity, ca: "/certs/root ca.pem", cert: "/c/client.crt", key: "/c/client.key"}},
		},
		{
			name: "sslmode alias, lower case",
			conn: "mysql://db/shop?sslmode=required",
			want: connInfo{host: "db", port: 3306, database: "shop", tls: tlsSettings{mode: sslRequired}},
		},
		{
			name: "underscores and upper-case names",
			conn: "mysql://db/shop?SSL_MODE=verify-ca&SSL_CA=/ca.pem",
			want: connInfo{host: "db", port: 3306, database: "shop", tls: tlsSettings{mode: sslVerifyCA, ca: "/ca.pem"}},
		},
		{
			name: "libpq-style modes",
			conn: "mysql://db/shop?sslmode=verify-full",
			want: connInfo{host: "db", port: 3306, database: "shop", tls: tlsSettings{mode: sslVerifyIdentity}},
		},
		{
			name: "preferred, and connect timeout",
			conn: "mysql://db/shop?ssl-mode=prefer&connect_timeout=3",
			want: connInfo{host: "db", port: 3306, database: "shop", tls: tlsSettings{mode: sslPreferred}, connectTimeout: 3},
		},
		{
			name: "empty query segments dropped",
			conn: "mysql://db/shop?&ssl-mode=DISABLED&&",
			want: connInfo{host: "db", port: 3306, database: "shop", tls: tlsSettings{mode: sslDisabled}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ci, err := parseConn(tc.conn, tc.db)
			if err != nil {
				t.Fatalf("parseConn: %v", err)
			}
			want := tc.want
			if want.connectTimeout == 0 {
				want.connectTimeout = defaultConnectTimeout
			}
			got := *ci
			got.secrets = nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}

			secrets := slices.Clone(tc.secretBits)
			if want.password != "" {
				secrets = append(secrets, want.password)
			}
			for _, s := range secrets {
				if !slices.Contains(ci.secrets, s) {
					t.Errorf("secret %q not in secrets %q", s, ci.secrets)
				}
			}

			// No argv any tool gets may carry a secret; the option file
			// must come first.
			const file = "--defaults-file=/tmp/x/client.cnf"
			argvs := map[string][]string{
				"check":   checkArgs(file, ci.database),
				"dump":    dumpArgs(file, ci.database),
				"restore": restoreArgs(file, ci.database, flavorMariaDB),
			}
			for tool, argv := range argvs {
				if argv[0] != file {
					t.Errorf("%s argv does not start with the option file: %q", tool, argv)
				}
				joined := strings.Join(argv, " ")
				for _, s := range secrets {
					if strings.Contains(joined, s) {
						t.Errorf("%s argv contains secret %q: %q", tool, s, argv)
					}
				}
				if strings.Contains(joined, ci.host) && ci.host != "db" {
					t.Errorf("%s argv contains the host: %q", tool, argv)
				}
			}
			for _, s := range secrets {
				if strings.Contains(ci.where(), s) || strings.Contains(ci.addr(), s) {
					t.Errorf("where/addr shows secret %q", s)
				}
			}
			for _, f := range []flavor{flavorMariaDB, flavorMySQL} {
				of := ci.optionFile(f)
				if want.hasPassword && !strings.Contains(of, "\npassword=\"") {
					t.Errorf("%v option file lacks the password:\n%s", f, of)
				}
				if !want.hasPassword && strings.Contains(of, "password") {
					t.Errorf("%v option file has a password line without a password:\n%s", f, of)
				}
			}
		})
	}
}

func TestParseConnRejects(t *testing.T) {
	const pw = "Sup3rSecretPW"
	tests := []struct {
		name     string
		conn     string
		db       string
		wantText string // the error must say this
	}{
		{"empty", "", "", "empty"},
		{"blank", "   ", "", "empty"},
		{"wrong scheme", "postgresql://root:" + pw + "@db/x", "", "mysql://"},
		{"DSN form", "root:" + pw + "@tcp(db:3306)/x", "", "mysql://"},
		{"no host", "mysql://app:" + pw + "@/x", "", "no host"},
		{"no host, query only", "mysql://app:" + pw + "@?ssl-mode=DISABLED", "", "no host"},
		{"port only", "mysql://app:" + pw + "@:3306/x", "", "host name is empty"},
		{"empty port", "mysql://app:" + pw + "@db:/x", "", "port is empty"},
		{"bad port", "mysql://app:" + pw + "@db:33x6/x", "", "port"},
		{"port out of range", "mysql://app:" + pw + "@db:70000/x", "", "port"},
		{"port zero", "mysql://app:" + pw + "@db:0/x", "", "port"},
		{"two hosts", "mysql://app:" + pw + "@h1,h2/x", "", "one host"},
		{"bare IPv6", "mysql://app:" + pw + "@::1/x", "", "brackets"},
		{"unclosed IPv6", "mysql://app:" + pw + "@[::1/x", "", "closing"},
		{"junk after IPv6", "mysql://app:" + pw + "@[::1]x/x", "", "after an IPv6"},
		{"not IPv6 in brackets", "mysql://app:" + pw + "@[db]/x", "", "not an IPv6"},
		{"socket path as host", "mysql://app:" + pw + "@%2Frun%2Fmysqld.sock/x", "", "Unix sockets"},
		{"space in host", "mysql://app:" + pw + "@d%20b/x", "", "spaces"},
		{"unescaped slash in password", "mysql://app:Sup3r/" + pw + "@db/x", "", "port"},
		{"unescaped ? in password", "mysql://app:Sup3r?" + pw + "@db/x", "", "port"},
		{"bad escape in password", "mysql://app:" + pw + "%zz@db/x", "", "password"},
		{"encoded NUL in password", "mysql://app:" + pw + "%00@db/x", "", "password"},
		{"bad escape in user", "mysql://a%zpp:" + pw + "@db/x", "", "user"},
		{"bad escape in database", "mysql://app:" + pw + "@db/x%z", "", "database"},
		{"NUL byte", "mysql://app:" + pw + "\x00@db/x", "", "NUL"},
		{"NUL in database override", "mysql://app:" + pw + "@db/x", "a\x00b", "NUL"},
		{"database override too long", "mysql://app:" + pw + "@db/x", strings.Repeat("d", 65), "longer than 64"},
		{"database too long", "mysql://app:" + pw + "@db/" + strings.Repeat("d", 65), "", "longer than 64"},
		{"invalid UTF-8 database", "mysql://app:" + pw + "@db/%ff", "", "UTF-8"},
		{"password too long", "mysql://app:" + strings.Repeat("p", 1025) + pw + "@db/x", "", "password is longer"},
		{"unknown parameter", "mysql://app:" + pw + "@db/x?charset=utf8", "", `unknown query parameter "charset"`},
		{"password parameter", "mysql://app@db/x?password=" + pw, "", `unknown query parameter "password"`},
		{"unknown odd parameter is not echoed", "mysql://app@db/x?" + pw + "@x=1", "", "unknown query parameter (not shown)"},
		{"parameter without =", "mysql://app@db/x?" + pw, "", `has no "="`},
		{"bad ssl-mode", "mysql://app:" + pw + "@db/x?ssl-mode=sometimes", "", `ssl-mode "sometimes" is not one of`},
		{"odd ssl-mode is not echoed", "mysql://app:" + pw + "@db/x?ssl-mode=" + pw + "%2B", "", "ssl-mode (not shown)"},
		{"empty ssl-ca", "mysql://app:" + pw + "@db/x?ssl-ca=", "", "ssl-ca is empty"},
		{"twice", "mysql://app:" + pw + "@db/x?sslmode=DISABLED&ssl-mode=REQUIRED", "", "given twice"},
		{"bad escape in a value", "mysql://app:" + pw + "@db/x?ssl-ca=%zz", "", "ssl-ca parameter"},
		{"bad connect-timeout", "mysql://app:" + pw + "@db/x?connect-timeout=0", "", "connect-timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ci, err := parseConn(tc.conn, tc.db)
			if err == nil {
				t.Fatalf("parseConn accepted it: %+v", ci)
			}
			if !errors.Is(err, sdk.ErrInvalidArgument) {
				t.Errorf("error %q does not wrap ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q lacks %q", err, tc.wantText)
			}
			for _, s := range []string{pw, "Sup3r", "zz", "33x6"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains %q from the connection string", err, s)
				}
			}
		})
	}
}

func TestOptionFile(t *testing.T) {
	base := connInfo{user: "app", password: `p"w\d`, hasPassword: true, host: "db", port: 3307, connectTimeout: 10}
	const head = "# Written by Label Backup for one run and removed after it.\n[client]\n" +
		"user=\"app\"\npassword=\"p\\\"w\\\\d\"\nhost=\"db\"\nport=3307\nprotocol=TCP\n"
	const mysqlGroup = "[mysql]\nconnect-timeout=10\n"
	const mysqldumpGroup = "[mysqldump]\nloose-column-statistics=0\n"
	tests := []struct {
		name   string
		tls    tlsSettings
		flavor flavor
		want   string
	}{
		{"MariaDB, tool default", tlsSettings{}, flavorMariaDB, head + mysqlGroup},
		{"MariaDB, DISABLED after the files", tlsSettings{mode: sslDisabled, ca: "/ca.pem"}, flavorMariaDB,
			head + "ssl-ca=\"/ca.pem\"\nskip-ssl\n" + mysqlGroup},
		{"MariaDB, PREFERRED", tlsSettings{mode: sslPreferred}, flavorMariaDB,
			head + "ssl\nskip-ssl-verify-server-cert\n" + mysqlGroup},
		{"MariaDB, REQUIRED", tlsSettings{mode: sslRequired}, flavorMariaDB,
			head + "ssl\nskip-ssl-verify-server-cert\n" + mysqlGroup},
		{"MariaDB, VERIFY_CA", tlsSettings{mode: sslVerifyCA, ca: "/ca.pem"}, flavorMariaDB,
			head + "ssl-ca=\"/ca.pem\"\nssl\nssl-verify-server-cert\n" + mysqlGroup},
		{"MariaDB, VERIFY_IDENTITY with client certificate", tlsSettings{mode: sslVerifyIdentity, ca: "/ca.pem", cert: "/c.pem", key: "/k.pem"}, flavorMariaDB,
			head + "ssl-ca=\"/ca.pem\"\nssl-cert=\"/c.pem\"\nssl-key=\"/k.pem\"\nssl\nssl-verify-server-cert\n" + mysqlGroup},
		{"MySQL, tool default", tlsSettings{}, flavorMySQL, head + mysqlGroup + mysqldumpGroup},
		{"MySQL, REQUIRED", tlsSettings{mode: sslRequired}, flavorMySQL,
			head + "ssl-mode=REQUIRED\n" + mysqlGroup + mysqldumpGroup},
		{"MySQL, VERIFY_CA", tlsSettings{mode: sslVerifyCA, ca: "/ca.pem"}, flavorMySQL,
			head + "ssl-ca=\"/ca.pem\"\nssl-mode=VERIFY_CA\n" + mysqlGroup + mysqldumpGroup},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ci := base
			ci.tls = tc.tls
			if got := ci.optionFile(tc.flavor); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestOptionFileParsedByTools checks, with MariaDB's own option-file
// reader, that awkward values come back exactly.
func TestOptionFileParsedByTools(t *testing.T) {
	printer := findTestTool(t, "my_print_defaults")
	tests := []struct{ user, password, host, ca string }{
		{"app", "plain", "db", ""},
		{"app", ` lead and trail `, "db", ""},
		{"o'brien", `#not a comment;"q"'s'\n\\x`, "db.example", "/certs/root ca#1.pem"},
		{"app", "tab\there\nnewline\rcr", "127.0.0.1", ""},
		{"üser", "pässwörd 🌍", "::1", ""},
		{"app", `ends with a backslash \`, "db", ""},
		{"app", `"`, "db", `'`},
		{"app", `'quoted'`, "db", `"/ca.pem"`},
		{"app", "#", "db", "#"},
	}
	for _, tc := range tests {
		ci := connInfo{user: tc.user, password: tc.password, hasPassword: true, host: tc.host, port: 3306,
			connectTimeout: 7, tls: tlsSettings{mode: sslVerifyCA, ca: tc.ca}}
		rf, cleanup, err := ci.newRunFiles(flavorMariaDB)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(printer, rf.defaultsArg(), "client", "mysql").CombinedOutput()
		cleanup()
		if err != nil {
			t.Fatalf("my_print_defaults: %v\n%s", err, out)
		}
		want := "--user=" + tc.user + "\n--password=" + tc.password + "\n--host=" + tc.host + "\n--port=3306\n--protocol=TCP\n"
		if tc.ca != "" {
			want += "--ssl-ca=" + tc.ca + "\n"
		}
		want += "--ssl\n--ssl-verify-server-cert\n--connect-timeout=7\n"
		if string(out) != want {
			t.Errorf("%q: tools read\n%q\nwant\n%q", tc.password, out, want)
		}
	}
}

func TestRunFiles(t *testing.T) {
	ci := connInfo{user: "app", password: "s3cretPW", hasPassword: true, host: "db", port: 3306, connectTimeout: 10}
	rf, cleanup, err := ci.newRunFiles(flavorMariaDB)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(rf.defaultsFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("option file: %v, mode %v", err, fi.Mode())
	}
	di, err := os.Stat(rf.dir)
	if err != nil || di.Mode().Perm() != 0o700 || filepath.Dir(rf.defaultsFile) != rf.dir {
		t.Errorf("private dir: %v, mode %v", err, di.Mode())
	}
	b, _ := os.ReadFile(rf.defaultsFile)
	if string(b) != ci.optionFile(flavorMariaDB) {
		t.Errorf("file content %q", b)
	}
	if rf.defaultsArg() != "--defaults-file="+rf.defaultsFile {
		t.Errorf("defaultsArg %q", rf.defaultsArg())
	}
	env := rf.env()
	if !slices.Contains(env, "HOME="+rf.dir) || slices.ContainsFunc(env, func(e string) bool { return strings.Contains(e, "s3cretPW") }) {
		t.Errorf("env %q", env)
	}
	cleanup()
	if _, err := os.Stat(rf.dir); !os.IsNotExist(err) {
		t.Errorf("private dir not removed: %v", err)
	}
}

func TestArgs(t *testing.T) {
	const f = "--defaults-file=/p/client.cnf"
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"check, all databases", checkArgs(f, ""),
			[]string{f, "--batch", "--skip-column-names", "--execute=" + checkQuery}},
		{"check, one database", checkArgs(f, "shop"),
			[]string{f, "--batch", "--skip-column-names", "--database=shop", "--execute=" + checkQuery}},
		{"dump, one database", dumpArgs(f, "-shop"),
			[]string{f, "--single-transaction", "--routines", "--triggers", "--events", "--hex-blob",
				"--default-character-set=utf8mb4", "--max-allowed-packet=1G", "--no-tablespaces", "--", "-shop"}},
		{"dump, all databases", dumpArgs(f, ""),
			[]string{f, "--single-transaction", "--routines", "--triggers", "--events", "--hex-blob",
				"--default-character-set=utf8mb4", "--max-allowed-packet=1G", "--no-tablespaces", "--all-databases", "--flush-privileges"}},
		{"restore, one database", restoreArgs(f, "shop", flavorMariaDB),
			[]string{f, "--batch", "--binary-mode", "--default-character-set=utf8mb4", "--max-allowed-packet=1G",
				"--loose-skip-print-query-on-error", "--database=shop"}},
		{"restore, all databases", restoreArgs(f, "", flavorMariaDB),
			[]string{f, "--batch", "--binary-mode", "--default-character-set=utf8mb4", "--max-allowed-packet=1G",
				"--loose-skip-print-query-on-error"}},
		{"restore, MySQL's client", restoreArgs(f, "shop", flavorMySQL),
			[]string{f, "--batch", "--binary-mode", "--default-character-set=utf8mb4", "--max-allowed-packet=1G", "--database=shop"}},
	}
	for _, tc := range tests {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestParseCheckOutput(t *testing.T) {
	tests := []struct {
		out             string
		version, cipher string
		ok              bool
	}{
		{"10.11.19-MariaDB-0+deb12u1\nSsl_cipher\t\n", "10.11.19-MariaDB-0+deb12u1", "", true},
		{"8.0.36\nSsl_cipher\tTLS_AES_256_GCM_SHA384\n", "8.0.36", "TLS_AES_256_GCM_SHA384", true},
		{"8.0.36\r\nSsl_cipher\tTLS_AES_128_GCM_SHA256\r\n", "8.0.36", "TLS_AES_128_GCM_SHA256", true},
		{"10.11.19-MariaDB\n", "", "", false},
		{"", "", "", false},
		{"\nSsl_cipher\t\n", "", "", false},
		{"10.11\nsomething else\n", "", "", false},
	}
	for _, tc := range tests {
		v, c, ok := parseCheckOutput(tc.out)
		if v != tc.version || c != tc.cipher || ok != tc.ok {
			t.Errorf("%q: got (%q, %q, %v), want (%q, %q, %v)", tc.out, v, c, ok, tc.version, tc.cipher, tc.ok)
		}
	}
}

func TestParseDumpHeader(t *testing.T) {
	tests := []struct {
		name string
		head string
		want dumpHeader
	}{
		{"MariaDB, one database", "/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n--\n-- Host: 127.0.0.1    Database: shop\n-- ----\n",
			dumpHeader{isDump: true, database: "shop"}},
		{"MariaDB, all databases", "-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB\n--\n-- Host: 127.0.0.1    Database: \n-- ----\n",
			dumpHeader{isDump: true, allDatabases: true}},
		{"MySQL, CRLF", "-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\r\n--\r\n-- Host: db    Database: my db\r\n",
			dumpHeader{isDump: true, database: "my db"}},
		{"hand-written SQL", "CREATE TABLE t (id int);\n-- Host: x Database: y\n", dumpHeader{}},
		{"banner without host line", "-- MariaDB dump 10.19\nCREATE TABLE t (id int);\n", dumpHeader{}},
	}
	for _, tc := range tests {
		if got := parseDumpHeader([]byte(tc.head)); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestDumpCompleted(t *testing.T) {
	tests := []struct {
		tail string
		want bool
	}{
		{"/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;\n\n-- Dump completed on 2025-01-24 02:00:00\n", true},
		{"-- Dump completed on 2025-01-24 02:00:00", true},
		{"x\r\n-- Dump completed\r\n", true},
		{"INSERT INTO t VALUES (1),(2\n", false},
		{"-- Dump completed on 2025\nINSERT INTO t VALUES (1);\n", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := dumpCompleted([]byte(tc.tail)); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.tail, got, tc.want)
		}
	}
}

func TestKeepTail(t *testing.T) {
	var tail []byte
	var all []byte
	for i := range 200 {
		chunk := []byte(strings.Repeat(string(rune('a'+i%26)), i%37))
		all = append(all, chunk...)
		tail = keepTail(tail, chunk)
		want := all[max(0, len(all)-tailKeep):]
		if string(tail) != string(want) {
			t.Fatalf("after %d chunks: tail %q, want %q", i, tail, want)
		}
	}
	big := []byte(strings.Repeat("z", 3*tailKeep) + "end")
	if got := keepTail(tail, big); string(got) != string(big[len(big)-tailKeep:]) {
		t.Errorf("big write: tail %q", got)
	}
}

// findTestTool finds a MariaDB tool the tests need, or fails.
func findTestTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/bin", "/usr/local/bin"} {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p
		}
	}
	t.Fatalf("%s not found: run scripts/install-deps.sh", name)
	return ""
}
