package s3

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/labelbackup/label-backup/sdk"
	"github.com/labelbackup/label-backup/sdk/sdktest"
)

// benchSize is what each upload of the benchmark streams.
const benchSize = 512 << 20

// BenchmarkUpload512MiB uploads 512 MiB to versitygw four ways, each with
// 8 MiB parts, 2 in flight:
//
//   - plugin: through the real plugin binary, started and connected exactly
//     as the host does (its own process, a Unix socket, the SDK's gRPC
//     options); the sender sha256-hashes every byte for the metadata, as
//     the host does, and the plugin checks the CRC32C trailer;
//   - sink: the same SDK shims in-process over go-plugin's test connection
//     (gRPC's default windows and buffers: a lower bound);
//   - direct: calling the sink's Put with the reader itself (no shims);
//   - sdk: the AWS SDK's own transfer manager.
//
// Each iteration runs the four in turn, starting with a different one
// (going first was worth 3-5 points of ratio). It reports each way's
// throughput, the CPU seconds all processes involved (this one, the
// plugin, versitygw) spent per upload, ratio = plugin/sdk, the plugin
// process's peak resident memory (plugin-process-peak-RSS-MiB: its
// buffers are part size × parts in flight), and this process's peak during
// each way, which after the first also holds what the Go runtime kept
// from the ones before. Run it with -benchtime 4x for every order.
//
// It runs against two servers: "disk", TestMain's versitygw over a disk
// directory, where the disk's write speed often sets the pace, and
// "tmpfs", a versitygw over /dev/shm, where only CPU does, which shows the
// software's own overhead.
func BenchmarkUpload512MiB(b *testing.B) {
	b.Run("disk", func(b *testing.B) { benchUpload(b, gw) })
	b.Run("tmpfs", func(b *testing.B) {
		dir, err := os.MkdirTemp("/dev/shm", "lb-s3-bench-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
		if err := syscall.Setxattr(dir, "user.lbtest", []byte("1"), 0); err != nil {
			b.Fatalf("/dev/shm has no user xattrs for versitygw: %v", err)
		}
		bin, err := versitygwBinary()
		if err != nil {
			b.Fatal(err)
		}
		g, err := startGateway(bin, filepath.Join(dir, "data"), 0)
		if err != nil {
			b.Fatal(err)
		}
		defer g.stop()
		benchUpload(b, g)
	})
}

func benchUpload(b *testing.B, gw *gateway) {
	bucket := gw.newBucket(b)
	s := New()
	c := sdktest.SinkClient(b, s)
	ctx := context.Background()
	if err := c.Configure(ctx, gw.settings(bucket)); err != nil {
		b.Fatal(err)
	}
	client := s.cfg.Load().client
	tm := transfermanager.New(client, func(o *transfermanager.Options) {
		o.PartSizeBytes = defaultPartSize
		o.Concurrency = defaultConcurrency
		o.FailTimeout = abortTimeout
	})
	remove := func(key string) {
		if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
			b.Fatal(err)
		}
	}
	bin := sdktest.StartBinary(b, "./cmd/label-backup-plugin-s3")
	pc := bin.Sink(b)
	if err := pc.Configure(ctx, gw.settings(bucket)); err != nil {
		b.Fatal(err)
	}
	pids := []int{os.Getpid(), bin.PID(), gw.cmd.Process.Pid}
	put := func(c *sdk.SinkClient, key string) func() error {
		return func() error {
			obj, err := c.Put(ctx, sdk.PutRequest{Key: key}, newDataReader(benchSize, 1))
			if err == nil && obj.Size != benchSize {
				err = fmt.Errorf("stored %d bytes", obj.Size)
			}
			return err
		}
	}
	ways := []*uploadWay{
		{name: "plugin", put: put(pc, "bench/plugin")},
		{name: "sink", put: put(c, "bench/sink")},
		{name: "direct", put: func() error {
			obj, err := s.Put(ctx, sdk.PutRequest{Key: "bench/direct"}, newDataReader(benchSize, 1))
			if err == nil && obj.Size != benchSize {
				err = fmt.Errorf("stored %d bytes", obj.Size)
			}
			return err
		}},
		{name: "sdk", put: func() error {
			_, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{
				Bucket: aws.String(bucket), Key: aws.String("bench/sdk"), Body: newDataReader(benchSize, 1),
			})
			return err
		}},
	}
	var pluginProcPeak int64
	b.ResetTimer()
	for i := range b.N {
		// Each iteration starts with another way, so that none always
		// profits from (or pays for) going first.
		for j := range ways {
			w := ways[(i+j)%len(ways)]
			resetPeakRSS()
			cpu := cpuSeconds(pids...)
			start := time.Now()
			if err := w.put(); err != nil {
				b.Fatalf("%s upload: %v", w.name, err)
			}
			w.time += time.Since(start)
			w.cpu += cpuSeconds(pids...) - cpu
			w.peak = max(w.peak, peakRSS())
			if w.name == "plugin" {
				pluginProcPeak = max(pluginProcPeak, processPeakRSS(bin.PID()))
			}
			remove("bench/" + w.name)
		}
	}
	b.StopTimer()
	mbps := func(d time.Duration) float64 { return float64(benchSize) * float64(b.N) / d.Seconds() / 1e6 }
	for _, w := range ways {
		b.ReportMetric(mbps(w.time), w.name+"-MB/s")
		b.ReportMetric(w.cpu/float64(b.N), w.name+"-CPU-s")
		b.ReportMetric(float64(w.peak)/(1<<20), w.name+"-peak-RSS-MiB")
	}
	b.ReportMetric(mbps(ways[0].time)/mbps(ways[3].time), "ratio")
	b.ReportMetric(float64(pluginProcPeak)/(1<<20), "plugin-process-peak-RSS-MiB")
	b.ReportMetric(0, "ns/op") // one op is four different uploads: meaningless
}

// uploadWay is one way of uploading the benchmark's bytes, with what it
// has cost so far.
type uploadWay struct {
	name string
	put  func() error
	time time.Duration
	cpu  float64
	peak int64
}

// resetPeakRSS resets the kernel's record of this process's peak resident
// memory (Linux; ignored elsewhere).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// cpuSeconds is the CPU time (user+system) the processes have used so far,
// from /proc/<pid>/stat (0 where unknown).
func cpuSeconds(pids ...int) float64 {
	var ticks int64
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + s
		}
	}
	return float64(ticks) / 100 // USER_HZ is 100 on Linux
}

// processPeakRSS is another process's peak resident memory in bytes.
func processPeakRSS(pid int) int64 { return statusPeak(fmt.Sprintf("/proc/%d/status", pid)) }

// peakRSS is the process's peak resident memory in bytes since the last
// reset, or 0 where unknown.
func peakRSS() int64 { return statusPeak("/proc/self/status") }

// statusPeak reads VmHWM from a /proc status file.
func statusPeak(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
