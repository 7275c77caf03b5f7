// Package mongodb is Label Backup's MongoDB dumper plugin. It needs no
// MongoDB tools: it reads the server with the official Go driver and
// writes the mongodump archive format itself, so a backup restores with
// the standard tool:
//
//	mongorestore --uri=... --archive=backup.archive.gz --gzip
//
// (--gzip with --archive means the whole archive stream is gzipped, which
// is what the agent's default gzip compression produces), or with this
// plugin's own Restore.
//
// Connection strings are mongodb:// or mongodb+srv:// URIs and every URI
// option applies (authSource, tls, replicaSet, readPreference, ...). The
// database to dump is Target.Database, else the URI's path, else every
// database except admin, local and config. The connection string never
// appears in logs or errors.
package mongodb

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/labelbackup/label-backup/sdk"
)

const (
	// Name is the plugin's name.
	Name = "mongodb"
	// Version is the plugin's version.
	Version = "0.1.0"
	// Format names the dumps' format.
	Format = "mongodump-archive"
	// Extension is the raw dump's file extension.
	Extension = ".archive"

	// OptionIncludeSystem ("true"/"false") also dumps the admin, local and
	// config databases when no database is selected.
	OptionIncludeSystem = "include_system"
	// OptionDrop ("true"/"false") drops each collection before restoring it.
	OptionDrop = "drop"

	// toolVersion is the archive header's tool_version.
	toolVersion = "label-backup-plugin-mongodb " + Version
	// validateTimeout bounds a whole connection check.
	validateTimeout = 30 * time.Second
)

// systemDatabases are skipped by a dump of every database unless
// include_system is set.
var systemDatabases = map[string]bool{"admin": true, "local": true, "config": true}

// Plugin is the MongoDB dumper. It has no state: the zero value is ready
// and safe for concurrent use.
type Plugin struct{}

var (
	_ sdk.Dumper   = (*Plugin)(nil)
	_ sdk.Restorer = (*Plugin)(nil)
)

// New returns the MongoDB dumper.
func New() *Plugin { return &Plugin{} }

// Info describes the plugin.
func (p *Plugin) Info() sdk.Info {
	return sdk.Info{
		Name:             Name,
		Version:          Version,
		Kind:             sdk.KindDumper,
		Capabilities:     []string{sdk.CapRestore},
		DefaultExtension: Extension,
	}
}

// boolOption reads a boolean Target option ("" or absent is false).
func boolOption(opts map[string]string, key string) (bool, error) {
	v, ok := opts[key]
	if !ok || v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("mongodb: option %s=%q is not a boolean: %w", key, v, sdk.ErrInvalidArgument)
	}
	return b, nil
}

// Validate connects and checks the target for real: ping (connects and
// authenticates when the URI has credentials), buildInfo for the version,
// and listDatabases, which needs a logged-in user, to check the selected
// database exists.
func (p *Plugin) Validate(ctx context.Context, t sdk.Target) (sdk.ValidateResult, error) {
	ci, err := targetConn(ctx, t)
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	if _, err := boolOption(t.Options, OptionIncludeSystem); err != nil {
		return sdk.ValidateResult{}, err
	}
	client, err := ci.connect()
	if err != nil {
		return sdk.ValidateResult{}, err
	}
	defer disconnect(ctx, client)
	vctx, cancel := context.WithTimeout(ctx, validateTimeout)
	defer cancel()
	if err := client.Ping(vctx, nil); err != nil {
		return sdk.ValidateResult{}, ci.fail(ctx, "connecting", err)
	}
	version, err := serverVersion(vctx, client)
	if err != nil {
		return sdk.ValidateResult{}, ci.fail(ctx, "asking the server version", err)
	}
	if err := checkDatabase(ctx, vctx, client, ci); err != nil {
		return sdk.ValidateResult{}, err
	}
	sdk.Logger(ctx).Debug("connection validated", "hosts", ci.hostList(), "database", ci.database, "server_version", version.display)
	return sdk.ValidateResult{ServerVersion: version.display}, nil
}

// versionInfo is what buildInfo says.
type versionInfo struct {
	// version is MongoDB's (or the compatible server's) version, "7.0.14".
	version string
	// display adds the real product for compatible servers:
	// "7.0.42 (FerretDB v1.24.2)".
	display string
}

func serverVersion(ctx context.Context, client *mongo.Client) (versionInfo, error) {
	raw, err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Raw()
	if err != nil {
		return versionInfo{}, err
	}
	v := versionInfo{}
	v.version, _ = raw.Lookup("version").StringValueOK()
	v.display = v.version
	if f, ok := raw.Lookup("ferretdbVersion").StringValueOK(); ok && f != "" {
		v.display = fmt.Sprintf("%s (FerretDB %s)", v.version, f)
	}
	if v.version == "" {
		v.display = "unknown"
	}
	return v, nil
}

// checkDatabase checks the selected database exists; MongoDB lists a
// database once it holds a collection. Without a selection it still lists
// the databases, which proves the user may. Errors are final (classified
// against parent, scrubbed).
func checkDatabase(parent, ctx context.Context, client *mongo.Client, ci *connInfo) error {
	filter := bson.D{}
	if ci.database != "" {
		filter = bson.D{{Key: "name", Value: ci.database}}
	}
	names, err := client.ListDatabaseNames(ctx, filter)
	if err != nil {
		return ci.fail(parent, "listing databases", err)
	}
	if ci.database == "" {
		return nil
	}
	for _, n := range names {
		if n == ci.database {
			return nil
		}
	}
	return fmt.Errorf("mongodb: database %q does not exist on %s (MongoDB lists a database once it has a collection): %w",
		ci.database, ci.hostList(), sdk.ErrNotFound)
}
