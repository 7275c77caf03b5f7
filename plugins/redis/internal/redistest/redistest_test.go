package redistest

import (
	"net"
	"os"
	"testing"
)

func TestServerStartsAndCleansUp(t *testing.T) {
	var s *Server
	t.Run("server", func(t *testing.T) {
		s = New(t, Options{Password: RandomPassword("pw:")})
		c, err := s.Client()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if r, err := c.Do("PING"); err != nil || r.Str != "PONG" {
			t.Fatalf("PING: %+v %v", r, err)
		}
		if _, err := s.ClientAs("", "wrong"); err == nil {
			t.Fatal("AUTH with a wrong password succeeded")
		}
	})
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("server directory %s still there after cleanup (stat: %v)", s.Dir, err)
	}
	if conn, err := net.Dial("tcp", s.Addr()); err == nil {
		conn.Close()
		t.Errorf("server still listening on %s after cleanup", s.Addr())
	}
}
