package s3

import (
	"bufio"
	"context"
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

// BenchmarkUpload512MiB uploads 512 MiB to versitygw three ways, each
// with 8 MiB parts, 2 in flight, over the same S3 client:
//
//   - sink: through the SDK's real gRPC shims in-process, as the host does
//     (every byte crosses a plugin connection and is sha256-hashed by both
//     ends for the trailer);
//   - direct: calling the sink's Put with the reader itself (no shims);
//   - sdk: the AWS SDK's own transfer manager.
//
// It reports the three throughputs, ratio = sink/sdk, and the peak resident
// memory of the process during each.
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
	var sinkTime, directTime, sdkTime time.Duration
	var sinkPeak, directPeak, sdkPeak int64
	b.ResetTimer()
	for range b.N {
		resetPeakRSS()
		start := time.Now()
		obj, err := c.Put(ctx, sdk.PutRequest{Key: "bench/sink"}, newDataReader(benchSize, 1))
		if err != nil || obj.Size != benchSize {
			b.Fatalf("sink put: %+v, %v", obj, err)
		}
		sinkTime += time.Since(start)
		sinkPeak = max(sinkPeak, peakRSS())
		remove("bench/sink")

		resetPeakRSS()
		start = time.Now()
		obj, err = s.Put(ctx, sdk.PutRequest{Key: "bench/direct"}, newDataReader(benchSize, 1))
		if err != nil || obj.Size != benchSize {
			b.Fatalf("direct put: %+v, %v", obj, err)
		}
		directTime += time.Since(start)
		directPeak = max(directPeak, peakRSS())
		remove("bench/direct")

		resetPeakRSS()
		start = time.Now()
		_, err = tm.UploadObject(ctx, &transfermanager.UploadObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("bench/sdk"), Body: newDataReader(benchSize, 1),
		})
		if err != nil {
			b.Fatalf("transfer manager upload: %v", err)
		}
		sdkTime += time.Since(start)
		sdkPeak = max(sdkPeak, peakRSS())
		remove("bench/sdk")
	}
	b.StopTimer()
	mbps := func(d time.Duration) float64 { return float64(benchSize) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(sinkTime), "sink-MB/s")
	b.ReportMetric(mbps(directTime), "direct-MB/s")
	b.ReportMetric(mbps(sdkTime), "sdk-MB/s")
	b.ReportMetric(mbps(sinkTime)/mbps(sdkTime), "ratio")
	b.ReportMetric(float64(sinkPeak)/(1<<20), "sink-peak-RSS-MiB")
	b.ReportMetric(float64(directPeak)/(1<<20), "direct-peak-RSS-MiB")
	b.ReportMetric(float64(sdkPeak)/(1<<20), "sdk-peak-RSS-MiB")
	b.ReportMetric(0, "ns/op") // one op is three different uploads: meaningless
}

// resetPeakRSS resets the kernel's record of this process's peak resident
// memory (Linux; ignored elsewhere).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is the process's peak resident memory in bytes since the last
// reset, or 0 where unknown.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
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
