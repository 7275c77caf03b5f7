package pluginmgr

import "github.com/hashicorp/go-hclog"

// quietLifecycle wraps the logger go-plugin gets so that its note of a
// plugin process ending normally goes to debug: the agent starts and stops
// plugin processes for every backup, so at info it is two lines of noise
// per run. A plugin that exits with an error is still logged as an error
// by go-plugin, and the run's own outcome is logged by the pipeline.
func quietLifecycle(l hclog.Logger) hclog.Logger { return quietLogger{l} }

type quietLogger struct{ hclog.Logger }

func (q quietLogger) Info(msg string, args ...any) {
	if msg == "plugin process exited" {
		q.Logger.Debug(msg, args...)
		return
	}
	q.Logger.Info(msg, args...)
}

func (q quietLogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Info {
		q.Info(msg, args...)
		return
	}
	q.Logger.Log(level, msg, args...)
}

func (q quietLogger) Named(name string) hclog.Logger { return quietLogger{q.Logger.Named(name)} }
func (q quietLogger) ResetNamed(name string) hclog.Logger {
	return quietLogger{q.Logger.ResetNamed(name)}
}
func (q quietLogger) With(args ...any) hclog.Logger { return quietLogger{q.Logger.With(args...)} }
