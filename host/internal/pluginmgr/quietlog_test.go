package pluginmgr

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestQuietLifecycle(t *testing.T) {
	for _, level := range []hclog.Level{hclog.Info, hclog.Debug} {
		var buf bytes.Buffer
		l := quietLifecycle(hclog.New(&hclog.LoggerOptions{Output: &buf, Level: level}))
		l.Named("postgres").Info("plugin process exited", "plugin", "/x", "id", 1)
		l.With("k", "v").Info("dump finished")
		l.Log(hclog.Info, "plugin process exited")
		l.Error("plugin process exited", "error", "exit status 2")
		out := buf.String()
		exited := strings.Count(out, "[INFO]  postgres: plugin process exited") + strings.Count(out, "[INFO]  plugin process exited")
		if exited != 0 {
			t.Errorf("level %v: a normal exit logged at info:\n%s", level, out)
		}
		if !strings.Contains(out, "dump finished") || !strings.Contains(out, "[ERROR] plugin process exited") {
			t.Errorf("level %v: other lines lost:\n%s", level, out)
		}
		if got := strings.Count(out, "[DEBUG]"); (level == hclog.Debug) != (got == 2) {
			t.Errorf("level %v: %d debug lines:\n%s", level, got, out)
		}
	}
}
