package toolexec

import "testing"

func TestCappedBuffer(t *testing.T) {
	c := &CappedBuffer{Limit: 5}
	for _, s := range []string{"abc", "defg", "hij"} {
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if c.String() != "abcde" || c.Len() != 5 || string(c.Bytes()) != "abcde" {
		t.Fatalf("kept %q", c.String())
	}
}
