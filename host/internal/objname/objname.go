// Package objname names backup objects. A name is unique per container and
// run, readable, stable in shape, and never carries credentials:
//
//	[<prefix>/]<container>/<type>[-<database>]-<YYYYMMDDThhmmssZ>-<run>.<ext>
//
// for example "postgres-backups/myapp_postgres/postgres-myapp-20250124T020000Z-9f86d081.dump.gz".
// The container's name is a directory of its own, so two containers never
// share a file name and retention can tell whose backups are whose; the
// random run id keeps two runs in the same second apart.
package objname

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"
)

// MetadataSuffix ends the name of every backup's metadata file.
const MetadataSuffix = ".metadata.json"

const timeLayout = "20060102T150405Z"

// Name is a parsed backup object name.
type Name struct {
	Prefix    string
	Container string
	Type      string
	Database  string
	Time      time.Time
	RunID     string
	// Ext is everything after the run id, e.g. ".dump.gz".
	Ext string
}

// NewRunID returns a random 8-hex-digit run id.
func NewRunID() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return hex.EncodeToString(b[:])
}

var (
	unsafeField = regexp.MustCompile(`[^A-Za-z0-9_.]+`)
	unsafeDir   = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)
)

// clean makes s safe as a field of a file name: nothing but letters,
// digits, '_' and '.' (dashes separate the fields).
func clean(s string) string { return trim(unsafeField.ReplaceAllString(s, "_")) }

// cleanDir makes a container name safe as a directory name. Docker names
// are already safe; this is defence in depth.
func cleanDir(s string) string {
	c := trim(unsafeDir.ReplaceAllString(s, "_"))
	if c == "" {
		return "unnamed"
	}
	return c
}

func trim(s string) string {
	s = strings.Trim(s, "._-")
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// Key renders the object key.
func (n Name) Key() string {
	file := clean(n.Type)
	if db := clean(n.Database); db != "" {
		file += "-" + db
	}
	file += "-" + n.Time.UTC().Format(timeLayout) + "-" + n.RunID + n.Ext
	return path.Join(n.Prefix, cleanDir(n.Container), file)
}

// Dir is the directory holding every backup of one container under a
// prefix, with a trailing slash, ready for a sink listing.
func Dir(prefix, container string) string {
	return path.Join(prefix, cleanDir(container)) + "/"
}

var fileRE = regexp.MustCompile(`^([A-Za-z0-9_.]+?)(?:-([A-Za-z0-9_.]+))?-(\d{8}T\d{6}Z)-([0-9a-f]{8})(\.[A-Za-z0-9.]+)$`)

// Parse reads a key written by Key. It reports false for anything else, so
// foreign files under a prefix are never mistaken for backups.
func Parse(key string) (Name, bool) {
	if strings.HasSuffix(key, MetadataSuffix) {
		return Name{}, false
	}
	dir, file := path.Split(key)
	dir = strings.TrimSuffix(dir, "/")
	m := fileRE.FindStringSubmatch(file)
	if m == nil || dir == "" {
		return Name{}, false
	}
	t, err := time.Parse(timeLayout, m[3])
	if err != nil {
		return Name{}, false
	}
	prefix, container := path.Split(dir)
	return Name{
		Prefix:    strings.TrimSuffix(prefix, "/"),
		Container: container,
		Type:      m[1],
		Database:  m[2],
		Time:      t,
		RunID:     m[4],
		Ext:       m[5],
	}, true
}

// TrimMetadata strips the metadata suffix, if any, from a key.
func TrimMetadata(key string) string { return strings.TrimSuffix(key, MetadataSuffix) }

// CutMetadata reports whether key names a metadata file, and of which
// backup.
func CutMetadata(key string) (backup string, ok bool) { return strings.CutSuffix(key, MetadataSuffix) }

// DirName is the directory name a container's backups go under.
func DirName(container string) string { return cleanDir(container) }
