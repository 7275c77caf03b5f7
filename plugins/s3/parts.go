package s3

import "math"

// S3's multipart limits.
const (
	minPartSize   = 5 << 20 // every part but the last
	maxPartSize   = 5 << 30
	maxParts      = 10000
	maxObjectSize = 5 << 40
	// partsPerTier parts share one size; the size grows from tier to tier.
	partsPerTier = 1000
	numTiers     = maxParts / partsPerTier
	// partAlign rounds grown part sizes to whole MiB.
	partAlign = 1 << 20
)

// partPlan gives the size of every part of an upload whose length is not
// known in advance. The first 1,000 parts have the configured size, so a
// backup of up to 1,000 x part_size (8 GiB by default) never uses bigger
// buffers; each following tier of 1,000 parts is larger by the smallest
// common factor that lets the 10,000 parts S3 allows cover 5 TiB, S3's
// largest object. With the default 8 MiB that factor is about 1.9 and the
// last tier's parts are about 2.5 GiB.
type partPlan struct {
	tiers [numTiers]int64
}

// newPartPlan plans parts starting at base bytes (minPartSize to
// maxPartSize).
func newPartPlan(base int64) partPlan {
	base = min(max(base, minPartSize), maxPartSize)
	flat := tiersFor(base, 1)
	if flat.capacity() >= maxObjectSize {
		return flat
	}
	// capacity grows with the factor: bisect for the smallest that is
	// enough. 2.1 suffices for the smallest base, 5 MiB.
	lo, hi := 1.0, 2.1
	for range 60 {
		mid := (lo + hi) / 2
		if tiersFor(base, mid).capacity() >= maxObjectSize {
			hi = mid
		} else {
			lo = mid
		}
	}
	return tiersFor(base, hi)
}

func tiersFor(base int64, factor float64) partPlan {
	var p partPlan
	for i := range p.tiers {
		size := base
		if i > 0 {
			grown := float64(base) * math.Pow(factor, float64(i))
			size = min(int64(math.Ceil(grown/partAlign))*partAlign, maxPartSize)
			size = max(size, p.tiers[i-1])
		}
		p.tiers[i] = size
	}
	return p
}

// capacity is the most bytes maxParts parts can hold.
func (p partPlan) capacity() int64 {
	var total int64
	for _, s := range p.tiers {
		total += s * partsPerTier
	}
	return total
}

// size is the size of part n (1-based).
func (p partPlan) size(n int) int64 {
	t := (n - 1) / partsPerTier
	return p.tiers[min(max(t, 0), numTiers-1)]
}
