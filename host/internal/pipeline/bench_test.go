package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/labelbackup/label-backup/host/internal/labels"
	"github.com/labelbackup/label-backup/host/internal/pluginmgr"
	"github.com/labelbackup/label-backup/host/internal/retention"
	"github.com/labelbackup/label-backup/host/internal/synthetic"
	"github.com/labelbackup/label-backup/sdk"
)

// benchSize is how much each benchmark run dumps; BENCH_SIZE overrides.
func benchSize(b *testing.B) int64 {
	if s := os.Getenv("BENCH_SIZE"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatalf("BENCH_SIZE: %v", err)
		}
		return n
	}
	return 1 << 30
}

// BenchmarkPipeline measures a whole backup through two real plugin
// processes: the synthetic dumper -> host (compression, sha256) -> the
// local sink writing to tmpfs, so neither the source nor a disk is what
// gets measured. It reports MB/s of raw dump and the host's peak RSS.
func BenchmarkPipeline(b *testing.B) {
	size := benchSize(b)
	bin := buildPlugins(b)
	out, err := os.MkdirTemp("/dev/shm", "lb-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(out) })
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr})
	plugins, err := pluginmgr.New(context.Background(), bin, logger)
	if err != nil {
		b.Fatal(err)
	}
	for _, algo := range []string{"none", "gzip", "zstd"} {
		b.Run(algo, func(b *testing.B) {
			r := New(plugins, Settings{Compression: algo, Timeout: time.Hour, LocalPath: out,
				Retention: retention.Policy{Period: 7 * 24 * time.Hour, KeepLast: 3}}, logger)
			job := Job{ContainerID: "bench", ContainerName: "bench", Spec: labels.Spec{
				Enabled: true, Type: "synthetic", Cron: "@daily", Dest: labels.DestLocal,
				Conn: fmt.Sprintf("synthetic://?size=%d", size),
			}}
			b.SetBytes(size)
			b.ResetTimer()
			var stored int64
			for range b.N {
				res := r.Run(context.Background(), job)
				if res.Err != nil {
					b.Fatal(res.Err)
				}
				stored = res.Size
				b.StopTimer()
				os.RemoveAll(filepath.Join(out, "bench"))
				b.StartTimer()
			}
			b.ReportMetric(float64(size)/float64(stored), "ratio")
			b.ReportMetric(float64(peakRSS(b))/(1<<20), "host-peak-MiB")
		})
	}
}

// BenchmarkReferenceGzip pipes the same synthetic stream through the
// single-threaded gzip -6 tool: the yardstick for the parallel gzip target.
func BenchmarkReferenceGzip(b *testing.B) {
	size := benchSize(b)
	d := synthetic.New()
	b.SetBytes(size)
	for range b.N {
		cmd := exec.Command("gzip", "-6")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stdout = io.Discard
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(stdin, 1<<20)
		if _, err := d.Dump(context.Background(), sdk.Target{Connection: fmt.Sprintf("synthetic://?size=%d", size)}, w); err != nil {
			b.Fatal(err)
		}
		w.Flush()
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}

func buildPlugins(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	root := filepath.Join("..", "..", "..")
	for _, tg := range [][2]string{
		{filepath.Join(root, "host"), "./internal/synthetic/cmd/label-backup-plugin-synthetic"},
		{filepath.Join(root, "plugins", "local"), "./cmd/label-backup-plugin-local"},
	} {
		cmd := exec.Command("go", "build", "-o", dir+"/", tg[1])
		cmd.Dir = tg[0]
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("building %s: %v\n%s", tg[1], err, out)
		}
	}
	return dir
}

// peakRSS reads this process's peak resident set size (VmHWM).
func peakRSS(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if f := strings.Fields(string(line)); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
