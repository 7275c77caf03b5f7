package pgtest

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestNewStartsAndCleansUp(t *testing.T) {
	var c *Cluster
	t.Run("cluster", func(t *testing.T) {
		c = New(t)
		out, err := c.SQL("postgres", "SELECT current_setting('server_version_num')::int >= 150000;\nSELECT current_user;")
		if err != nil {
			t.Fatal(err)
		}
		if out != "t\npostgres" {
			t.Fatalf("unexpected output %q", out)
		}
		if err := c.CreateDB("x"); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(c.URI("x", "sslmode=disable"), "postgresql://postgres:") {
			t.Fatalf("URI %q", c.URI("x"))
		}
	})
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s still there after cleanup (stat: %v)", c.Dir, err)
	}
	if conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port))); err == nil {
		conn.Close()
		t.Errorf("server still listening on port %d after cleanup", c.Port)
	}
}
