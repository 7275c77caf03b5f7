package mytest

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestNewStartsAndCleansUp(t *testing.T) {
	var s *Server
	t.Run("server", func(t *testing.T) {
		s = New(t, Options{})
		out, err := s.SQL("", "SELECT VERSION() LIKE '%MariaDB%';\nSELECT CURRENT_USER();")
		if err != nil {
			t.Fatal(err)
		}
		if out != "1\nroot@localhost" {
			t.Fatalf("unexpected output %q", out)
		}
		if err := s.CreateDB("x"); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s.URI("x", "ssl-mode=DISABLED"), "mysql://app:") {
			t.Fatalf("URI %q", s.URI("x"))
		}
		// The app user logs in over TCP with its awkward password.
		cmd := s.Client(t.Context(), "", "--batch", "--skip-column-names", "--protocol=TCP", "--host=127.0.0.1",
			"--port="+strconv.Itoa(s.Port), "--user="+AppUser, "--password="+s.Password, "--execute=SELECT CURRENT_USER()")
		out2, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out2)) != "app@127.0.0.1" {
			t.Fatalf("app login: %v: %s", err, out2)
		}
	})
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("server directory %s still there after cleanup (stat: %v)", s.Dir, err)
	}
	if conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))); err == nil {
		conn.Close()
		t.Errorf("server still listening on port %d after cleanup", s.Port)
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, ident, str string }{
		{"plain", "`plain`", "'plain'"},
		{"a`b", "`a``b`", "'a`b'"},
		{`it's \ here`, "`it's \\ here`", `'it\'s \\ here'`},
	}
	for _, tc := range tests {
		if got := QuoteIdent(tc.in); got != tc.ident {
			t.Errorf("QuoteIdent(%q) = %q, want %q", tc.in, got, tc.ident)
		}
		if got := QuoteString(tc.in); got != tc.str {
			t.Errorf("QuoteString(%q) = %q, want %q", tc.in, got, tc.str)
		}
	}
}
