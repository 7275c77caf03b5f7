package sdk

import (
	"context"
	"io"
	"time"
)

// Kind says which interface a plugin implements.
type Kind string

// Plugin kinds.
const (
	KindDumper Kind = "dumper"
	KindSink   Kind = "sink"
)

// Capabilities a plugin may declare in [Info].
const (
	CapRestore = "restore"
	CapGet     = "get"
	CapList    = "list"
	CapStat    = "stat"
	CapDelete  = "delete"
)

// Info describes a plugin. It is metadata only: the host never switches
// behaviour on anything but Kind and Capabilities.
type Info struct {
	Name             string   `json:"name"`
	Version          string   `json:"version"`
	Kind             Kind     `json:"kind"`
	ProtocolVersion  uint32   `json:"protocol_version"`
	SDKVersion       string   `json:"sdk_version"`
	Capabilities     []string `json:"capabilities,omitempty"`
	DefaultExtension string   `json:"default_extension,omitempty"`
	Options          []Option `json:"options,omitempty"`
	// SDKFeatures are transport features of the plugin's SDK, filled in by
	// the SDK (e.g. "data-socket"): plugin code never sets them.
	SDKFeatures []string `json:"sdk_features,omitempty"`
}

// Has reports whether the plugin declares capability c.
func (i Info) Has(c string) bool {
	for _, x := range i.Capabilities {
		if x == c {
			return true
		}
	}
	return false
}

// Option describes one setting a plugin accepts.
type Option struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Secret      bool   `json:"secret,omitempty"`
	Required    bool   `json:"required,omitempty"`
}

// ContainerRef identifies the Docker container a database runs in.
type ContainerRef struct {
	ID   string
	Name string
}

// Target says which database a dumper works on.
type Target struct {
	// Connection is the engine's connection string. It is secret: never log
	// it, never put it in argv or in an error.
	Connection string
	// Database, when set, overrides the database named in Connection.
	Database string
	// Options are engine-specific settings. The host passes the label
	// backup.mode as Options["mode"] ("network" or "exec").
	Options   map[string]string
	Container ContainerRef
	// ContainerEnv is the database container's environment (secret: it may
	// hold passwords), filled in by the host when the plugin has to derive
	// the connection from it, as the official images define it
	// (POSTGRES_PASSWORD, MYSQL_ROOT_PASSWORD, ...).
	ContainerEnv map[string]string
	// ContainerCommand is the container's entrypoint followed by its
	// command (secret: servers are often given passwords there, such as
	// redis-server --requirepass), filled in with ContainerEnv.
	ContainerCommand []string
}

// Target.Options keys the host sets.
const (
	// OptionMode is "network" (the default: the plugin connects to the
	// database over the network) or "exec" (the tools run inside the
	// database's container through [Exec]).
	OptionMode  = "mode"
	ModeNetwork = "network"
	ModeExec    = "exec"
	// OptionHost is set when the connection is to be derived in network
	// mode: the address the agent reaches the database's container at.
	OptionHost = "host"
)

// ValidateResult is what a successful connection check learned.
type ValidateResult struct {
	ServerVersion string
}

// DumpResult describes a finished dump.
type DumpResult struct {
	// Format names the dump format, e.g. "pg_dump-custom".
	Format string
	// Extension is the raw dump's file extension, e.g. ".dump".
	Extension string
	// Bytes is the number of bytes written; the SDK fills it in.
	Bytes    int64
	Warnings []string
}

// RestoreResult describes a finished restore.
type RestoreResult struct {
	Warnings []string
}

// PutRequest names the object a sink stores.
type PutRequest struct {
	Key         string
	ContentType string
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key      string
	Size     int64
	Modified time.Time
	// URL is where the object lives, e.g. "s3://bucket/key" or a file path.
	URL string
	// SHA256 is the raw digest when the sink knows it.
	SHA256 []byte
}

// ListRequest asks for one page of objects whose keys start with Prefix.
// Prefix is a plain string prefix: callers that mean a directory end it
// with "/".
type ListRequest struct {
	Prefix    string
	PageToken string
	PageSize  int
}

// ListPage is one page of a listing. An empty NextPageToken ends it.
type ListPage struct {
	Objects       []ObjectInfo
	NextPageToken string
}

// Dumper knows one database engine.
//
// Implementations must be safe for concurrent use: the host may run several
// dumps through one plugin process.
type Dumper interface {
	// Info describes the plugin. Kind must be KindDumper.
	Info() Info
	// Validate connects and authenticates for real: a wrong password, an
	// unreachable server or a missing database must fail, with an error that
	// never contains the connection string's secret.
	Validate(ctx context.Context, t Target) (ValidateResult, error)
	// Dump writes the raw dump to w. It must return only when the dump is
	// complete and every byte is written, or fail. Returning nil after
	// writing nothing is reported as a failed, empty dump. When ctx is
	// done, Dump must stop promptly (kill child tools) and return an error.
	Dump(ctx context.Context, t Target, w io.Writer) (DumpResult, error)
}

// Restorer is implemented by dumpers that can load a dump back.
type Restorer interface {
	// Restore reads a raw dump from r and applies it. r returns an error
	// other than io.EOF when the upload was broken or its trailer did not
	// match; the restore must then fail. A Restore that returns nil before
	// reaching io.EOF has the rest read and checked by the SDK, which fails
	// the restore when that check fails (the data already applied stays
	// applied: restores are only as atomic as the engine makes them).
	Restore(ctx context.Context, t Target, format string, r io.Reader) (RestoreResult, error)
}

// Configurer is implemented by plugins that take settings (a sink's base
// path or bucket, say). The host calls Configure once, before any other call
// but Info.
type Configurer interface {
	Configure(ctx context.Context, settings map[string]string) error
}

// Sink knows one storage.
//
// Keys are slash-separated relative paths ("prefix/name.dump.gz"). A sink
// must reject keys that are absolute, contain "..", or otherwise escape its
// storage, with ErrInvalidArgument. Implementations must be safe for
// concurrent use.
type Sink interface {
	// Info describes the plugin. Kind must be KindSink.
	Info() Info
	// CheckReady reports whether the storage is usable right now (reachable,
	// writable, enough space), with a short detail for humans.
	CheckReady(ctx context.Context) (string, error)
	// Put stores r under req.Key. r returns io.EOF only after the sender's
	// trailer matched the bytes received; any other error means the upload
	// failed. The object MUST become visible under req.Key only after r
	// returned io.EOF, and nothing may be left behind when Put fails or ctx
	// is cancelled. An existing object with that key is replaced atomically.
	Put(ctx context.Context, req PutRequest, r io.Reader) (ObjectInfo, error)
	// Get writes the object's bytes to w. A missing key is ErrNotFound.
	Get(ctx context.Context, key string, w io.Writer) error
	// List returns one page of objects whose keys start with req.Prefix, in
	// lexical key order, never including incomplete uploads.
	List(ctx context.Context, req ListRequest) (ListPage, error)
	// Stat describes one object. A missing key is ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes one object. A missing key is ErrNotFound.
	Delete(ctx context.Context, key string) error
}
