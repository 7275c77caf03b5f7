package sdk

import (
	"context"
	"io"
	"os"

	"github.com/hashicorp/go-hclog"
)

type loggerKey struct{}

// Logger returns the plugin's logger carried by ctx. The SDK puts it into the
// context of every call it makes into a plugin; it writes hclog JSON lines to
// the plugin's stderr, which the host re-emits under the plugin's name.
// Never log connection strings or other secrets.
func Logger(ctx context.Context) hclog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(hclog.Logger); ok {
		return l
	}
	return hclog.NewNullLogger()
}

func withLogger(ctx context.Context, l hclog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// newPluginLogger builds the hclog JSON logger on w. go-plugin replaces
// os.Stderr once serving starts, so w must be the original stderr captured
// before that.
func newPluginLogger(name string, w io.Writer) hclog.Logger {
	level := hclog.LevelFromString(os.Getenv("LOG_LEVEL"))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Output:     w,
		JSONFormat: true,
		Level:      level,
	})
}
