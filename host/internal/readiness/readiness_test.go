package readiness

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStatus(t *testing.T) {
	c := New(time.Hour, time.Second,
		Check{"docker", func(context.Context) error { return nil }},
		Check{"s3", func(context.Context) error { return errors.New("bucket \"b\" not found") }},
	)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if ready, _ := c.Status(ctx); ready {
		t.Fatal("ready before any check ran")
	}
	c.Refresh(context.Background())
	ready, res := c.Status(context.Background())
	if ready {
		t.Error("ready with a failing check")
	}
	lines := Lines(res)
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "FAIL s3: bucket") || lines[1] != "ok   docker" {
		t.Errorf("lines = %q", lines)
	}
}

func TestChecksAreBounded(t *testing.T) {
	c := New(time.Hour, 50*time.Millisecond, Check{"slow", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}})
	start := time.Now()
	c.Refresh(context.Background())
	if time.Since(start) > time.Second {
		t.Fatal("a hung check held the refresh")
	}
	if ready, _ := c.Status(context.Background()); ready {
		t.Error("a timed-out check counted as passing")
	}
}
