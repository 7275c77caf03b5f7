package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labelbackup/label-backup/host/internal/itest"
)

// The engine tests follow TestPostgresToLocal for the other official
// dumpers: a real server in a container carrying the README's labels, the
// agent backing it up on a seconds cron into local storage, then a restore
// (by hand as each plugin documents it, and through `label-backup restore`
// where the plugin can restore) compared with the source.

// engineCron fires every two seconds: the first backup comes quickly, and
// the tests stop the agent as soon as one backup exists.
const engineCron = "*/2 * * * * *"

// engineLabels are the README's labels for a container of type typ.
func engineLabels(typ, conn, prefix string, extra ...string) map[string]string {
	l := map[string]string{
		"backup.enabled": "true",
		"backup.type":    typ,
		"backup.cron":    engineCron,
		"backup.conn":    conn,
		"backup.dest":    "local",
		"backup.prefix":  prefix,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

// firstBackup starts the agent on a fresh backup directory, waits for the
// first complete backup (data file plus metadata) of container under
// prefix, stops the agent (checking nothing partial is left) and returns
// the backup, the backup root and the agent's logs.
func firstBackup(t *testing.T, prefix, container string) (itest.Backup, string, string) {
	t.Helper()
	backups := filepath.Join(t.TempDir(), "backups")
	start := time.Now()
	itest.BuildBinaries(t) // once per test process; timed apart from the backup
	built := time.Now()
	agent := itest.StartAgent(t, map[string]string{"LOCAL_BACKUP_PATH": backups})
	got := waitBackups(t, backups, prefix+"/"+container, 1, 60*time.Second, nil)
	t.Logf("binaries ready in %v; first backup %v after the agent started: %s (%d bytes, %.2fs in the pipeline)",
		built.Sub(start).Round(time.Millisecond), time.Since(built).Round(time.Millisecond),
		filepath.Base(got[0].Path), got[0].Meta.BackupSizeBytes, got[0].Meta.DurationSeconds)
	stopAgent(t, agent, backups)
	return got[0], backups, agent.Logs()
}

// engineMeta is what a backup's metadata must say.
type engineMeta struct {
	container, containerID string
	dbType, dbName         string // dbName "" skips the check
	compression, ext       string // ext: the object name's suffix, e.g. ".sql.gz"
	dumpFormat             string
}

// checkEngineMetadata checks the metadata file against the data file (size,
// sha256) and the expected engine, database and compression.
func checkEngineMetadata(t *testing.T, b itest.Backup, want engineMeta) {
	t.Helper()
	data, err := os.ReadFile(b.Path)
	if err != nil {
		t.Fatal(err)
	}
	m := b.Meta
	if sum := sha256.Sum256(data); m.Checksum != hex.EncodeToString(sum[:]) {
		t.Errorf("metadata checksum %s, file sha256 %x", m.Checksum, sum)
	}
	if m.ChecksumAlgorithm != "sha256" {
		t.Errorf("checksum_algorithm = %q, want sha256", m.ChecksumAlgorithm)
	}
	if m.BackupSizeBytes != int64(len(data)) {
		t.Errorf("metadata size %d, file size %d", m.BackupSizeBytes, len(data))
	}
	if m.DatabaseType != want.dbType {
		t.Errorf("database_type = %q, want %q", m.DatabaseType, want.dbType)
	}
	if want.dbName != "" && m.DatabaseName != want.dbName {
		t.Errorf("database_name = %q, want %q", m.DatabaseName, want.dbName)
	}
	if m.CompressionType != want.compression {
		t.Errorf("compression_type = %q, want %q", m.CompressionType, want.compression)
	}
	if m.DumpFormat != want.dumpFormat {
		t.Errorf("dump_format = %q, want %q", m.DumpFormat, want.dumpFormat)
	}
	if m.Dumper.Name != want.dbType {
		t.Errorf("dumper = %+v, want the %s plugin", m.Dumper, want.dbType)
	}
	if !strings.HasSuffix(b.Path, want.ext) {
		t.Errorf("object %s does not end with %s", filepath.Base(b.Path), want.ext)
	}
	prefix := want.dbType + "-"
	if want.dbName != "" {
		prefix += want.dbName + "-"
	}
	if !strings.HasPrefix(filepath.Base(b.Path), prefix) {
		t.Errorf("object %s does not start with %s", filepath.Base(b.Path), prefix)
	}
	if !m.Success || m.ContainerName != want.container || m.ContainerID != want.containerID ||
		m.Version != "1.0" || m.Destination != b.Path || m.DestinationType != "local" ||
		m.Timestamp.IsZero() || m.DurationSeconds <= 0 || m.DumpSizeBytes <= 0 {
		t.Errorf("metadata = %+v", m)
	}
}

// checkNoSecret fails if text contains password, raw or percent-encoded.
func checkNoSecret(t *testing.T, what, text, password string) {
	t.Helper()
	for _, s := range []string{password, url.QueryEscape(password), url.PathEscape(password),
		url.UserPassword("u", password).String()[2:]} {
		if strings.Contains(text, s) {
			t.Errorf("%s contain the password (as %q)", what, s)
		}
	}
}

// runCLI runs `label-backup args...` on the backup root and returns its
// combined output and exit code.
func runCLI(t *testing.T, backups string, args ...string) (string, int) {
	t.Helper()
	bin := itest.BuildBinaries(t)
	cmd := exec.Command(filepath.Join(bin, "label-backup"), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LOCAL_BACKUP_PATH=" + backups,
		"PLUGIN_DIR=" + bin, "LOG_LEVEL=error"}
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running label-backup: %v", err)
	}
	return string(out), code
}

// backupKey is the key of a local backup for the CLI.
func backupKey(t *testing.T, backups string, b itest.Backup) string {
	t.Helper()
	key, err := filepath.Rel(backups, b.Path)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.ToSlash(key)
}

// requireTools fails the test when a command-line tool is missing.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found in PATH (install it with scripts/install-deps.sh): %v", tool, err)
		}
	}
}

// ---------------------------------------------------------------- MariaDB

const mariaSeedSQL = `
CREATE TABLE customers (
  id INT PRIMARY KEY AUTO_INCREMENT,
  name VARCHAR(100) NOT NULL,
  note TEXT,
  balance DECIMAL(12,2),
  created DATETIME(6),
  avatar VARBINARY(64),
  KEY customers_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO customers (name, note, balance, created, avatar)
  SELECT CONCAT('customer ', seq), IF(seq % 5 = 0, NULL, REPEAT('ünïcode ✓ ''q'' \\ ', seq % 7)),
         seq * 1.25, TIMESTAMP'2024-01-01 00:00:00.123456' + INTERVAL seq SECOND, UNHEX(SHA2(seq, 256))
  FROM seq_1_to_2000;
CREATE TABLE orders (
  id BIGINT PRIMARY KEY AUTO_INCREMENT,
  customer_id INT NOT NULL,
  total DECIMAL(10,2),
  CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB;
INSERT INTO orders (customer_id, total) SELECT 1 + seq % 2000, seq * 0.5 FROM seq_1_to_5000;
CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 2000;
CREATE TRIGGER orders_default_total BEFORE INSERT ON orders FOR EACH ROW SET NEW.total = COALESCE(NEW.total, 0);
CREATE FUNCTION order_count() RETURNS INT READS SQL DATA RETURN (SELECT COUNT(*) FROM orders);
`

// mariaFingerprintSQL summarises a database: row counts and checksums of
// the data, CHECKSUM TABLE, and the schema objects besides tables.
const mariaFingerprintSQL = `
SET SESSION group_concat_max_len = 67108864;
SELECT CONCAT_WS(' / ',
  (SELECT COUNT(*) FROM customers),
  (SELECT MD5(GROUP_CONCAT(CONCAT_WS(':', id, name, IFNULL(note, '<null>'), balance, created, HEX(avatar))
                           ORDER BY id SEPARATOR ',')) FROM customers),
  (SELECT COUNT(*) FROM orders),
  (SELECT MD5(GROUP_CONCAT(CONCAT_WS(':', id, customer_id, total) ORDER BY id SEPARATOR ',')) FROM orders),
  (SELECT COUNT(*) FROM big_orders),
  order_count(),
  (SELECT GROUP_CONCAT(CONCAT(table_name, ':', table_type) ORDER BY table_name)
     FROM information_schema.tables WHERE table_schema = DATABASE()),
  (SELECT GROUP_CONCAT(DISTINCT CONCAT(table_name, '.', index_name) ORDER BY table_name, index_name)
     FROM information_schema.statistics WHERE table_schema = DATABASE()),
  (SELECT GROUP_CONCAT(CONCAT(trigger_name, ':', event_object_table)) FROM information_schema.triggers
     WHERE trigger_schema = DATABASE()),
  (SELECT GROUP_CONCAT(routine_name) FROM information_schema.routines WHERE routine_schema = DATABASE()),
  (SELECT GROUP_CONCAT(constraint_name) FROM information_schema.referential_constraints
     WHERE constraint_schema = DATABASE()));
`

// mariaFingerprint is the fingerprint of db plus its CHECKSUM TABLE values
// (without the database name, which differs between source and restore).
func mariaFingerprint(t *testing.T, m *itest.MariaDB, db string) string {
	t.Helper()
	fp := m.SQL(t, db, mariaFingerprintSQL)
	var sums []string
	for _, line := range strings.Split(m.SQL(t, db, "CHECKSUM TABLE customers, orders EXTENDED"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 2 {
			t.Fatalf("CHECKSUM TABLE: unexpected line %q", line)
		}
		sums = append(sums, strings.TrimPrefix(f[0], db+".")+"="+f[1])
	}
	return fp + " / " + strings.Join(sums, ",")
}

// TestMySQLToLocal: a labeled MariaDB container is backed up by the mysql
// plugin; the gzip file restores by hand (gunzip -c | mariadb <db>, as the
// plugin documents) and through `label-backup restore`, both giving the
// same data, schema objects and table checksums as the source.
func TestMySQLToLocal(t *testing.T) {
	requireTools(t, "mariadb", "gunzip")
	const password = "e2e-My@Secret:pw/1"
	const prefix = "mysql-backups"
	port := itest.FreePort(t)
	conn := (&itest.MariaDB{Port: port, User: "app", Password: password}).ConnString("app")
	start := time.Now()
	m := itest.StartMariaDB(t, itest.MariaDBOptions{
		Name:     itest.UniqueName("lbe2e-maria"),
		Port:     port,
		User:     "app",
		Password: password,
		Labels:   engineLabels("mysql", conn, prefix),
	})
	m.CreateDatabase(t, "app")
	m.SQL(t, "app", mariaSeedSQL)
	want := mariaFingerprint(t, m, "app")
	t.Logf("mariadb up and seeded in %v; fingerprint %s", time.Since(start).Round(time.Millisecond), want)

	b, backups, logs := firstBackup(t, prefix, m.Name)
	checkNoSecret(t, "agent logs", logs, password)
	checkEngineMetadata(t, b, engineMeta{container: m.Name, containerID: m.ID, dbType: "mysql", dbName: "app",
		compression: "gzip", ext: ".sql.gz", dumpFormat: "mysqldump-sql"})

	// By hand, as the plugin's documentation says: create the database,
	// then gunzip -c FILE | mariadb DB (the password in MYSQL_PWD).
	restoreStart := time.Now()
	m.CreateDatabase(t, "byhand")
	cmd := exec.Command("sh", "-c", `gunzip -c "$1" | mariadb -h127.0.0.1 -P"$2" -u"$3" "$4"`,
		"sh", b.Path, fmt.Sprint(m.Port), m.User, "byhand")
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gunzip -c | mariadb: %v\n%s", err, out)
	}
	if got := mariaFingerprint(t, m, "byhand"); got != want {
		t.Errorf("data restored by hand differs:\n got  %s\n want %s", got, want)
	}
	t.Logf("restore by hand: %v", time.Since(restoreStart).Round(time.Millisecond))

	// Through the agent's restore command, into another fresh database.
	restoreStart = time.Now()
	m.CreateDatabase(t, "viacli")
	out, code := runCLI(t, backups, "restore", "--conn", m.ConnString("viacli"), backupKey(t, backups, b))
	checkNoSecret(t, "restore output", out, password)
	if code != 0 {
		t.Fatalf("label-backup restore: exit %d\n%s", code, out)
	}
	if got := mariaFingerprint(t, m, "viacli"); got != want {
		t.Errorf("data restored by label-backup restore differs:\n got  %s\n want %s", got, want)
	}
	t.Logf("restore via CLI: %v", time.Since(restoreStart).Round(time.Millisecond))
}

// ------------------------------------------------------------------ Redis

// redisSeed is a bit of every type, a key with a TTL, a key in database 1,
// a binary value, plus DEBUG POPULATE keys.
func redisSeed() [][]string {
	cmds := [][]string{{"DEBUG", "POPULATE", "2000", "pop", "64"}}
	for i := range 200 {
		cmds = append(cmds, []string{"SET", fmt.Sprintf("str:%d", i), strings.Repeat(fmt.Sprintf("välue-%d ", i), 1+i%5)})
	}
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	cmds = append(cmds, []string{"SET", "bin", string(bin)},
		[]string{"SET", "expiring", "soon", "EX", "3600"},
		[]string{"SET", "counter", "41"}, []string{"INCR", "counter"})
	h := []string{"HSET", "hash"}
	l := []string{"RPUSH", "list"}
	s := []string{"SADD", "set"}
	z := []string{"ZADD", "zset"}
	for i := range 100 {
		h = append(h, fmt.Sprintf("f%d", i), fmt.Sprintf("v%d", i*i))
		l = append(l, fmt.Sprintf("item %d", i))
		s = append(s, fmt.Sprintf("member-%d", i))
		z = append(z, fmt.Sprintf("%d.5", i), fmt.Sprintf("z%d", i))
	}
	cmds = append(cmds, h, l, s, z)
	for i := range 10 {
		cmds = append(cmds, []string{"XADD", "stream", fmt.Sprintf("%d-1", 1000+i), "n", fmt.Sprint(i)})
	}
	return append(cmds, []string{"SELECT", "1"}, []string{"SET", "db1:key", "in database one"},
		[]string{"HSET", "db1:hash", "a", "1", "b", "2"})
}

// redisFingerprint: the whole-dataset digest, sizes, and readable values.
func redisFingerprint(t *testing.T, r *itest.Redis) string {
	t.Helper()
	parts := []string{
		"digest=" + r.Cmd(t, "DEBUG", "DIGEST"),
		"keyspace=" + strings.Join(strings.Fields(strings.ReplaceAll(
			// avg_ttl varies with time; keep keys and expires.
			stripAvgTTL(r.Cmd(t, "INFO", "keyspace")), "\r", "")), ";"),
		"bin=" + r.Cmd(t, "DEBUG", "DIGEST-VALUE", "bin"),
		"str:7=" + r.Cmd(t, "GET", "str:7"),
		"counter=" + r.Cmd(t, "GET", "counter"),
		"hash.f9=" + r.Cmd(t, "HGET", "hash", "f9"),
		"hlen=" + r.Cmd(t, "HLEN", "hash"),
		"list=" + strings.ReplaceAll(r.Cmd(t, "LRANGE", "list", "0", "4"), "\n", ","),
		"scard=" + r.Cmd(t, "SCARD", "set"),
		"zset=" + strings.ReplaceAll(r.Cmd(t, "ZRANGE", "zset", "0", "2", "WITHSCORES"), "\n", ","),
		"xlen=" + r.Cmd(t, "XLEN", "stream"),
		"db1=" + r.Cmd(t, "-n", "1", "GET", "db1:key"),
	}
	return strings.Join(parts, " ")
}

var avgTTL = regexp.MustCompile(`,avg_ttl=\d+`)

func stripAvgTTL(info string) string { return avgTTL.ReplaceAllString(info, "") }

// TestRedisToLocal: a labeled Redis (with requirepass) is backed up by the
// redis plugin; the gzip file is unpacked to an RDB that redis-check-rdb
// accepts and that a fresh redis-server loads at start-up with the same
// dataset (DEBUG DIGEST) as the source. The restore command refuses, since
// the plugin documents restores as manual.
func TestRedisToLocal(t *testing.T) {
	requireTools(t, "gunzip", "redis-check-rdb")
	const password = "e2e-Redis@Secret:pw"
	const prefix = "redis-backups"
	port := itest.FreePort(t)
	conn := (&itest.Redis{Port: port, Password: password}).ConnString(0)
	start := time.Now()
	r := itest.StartRedis(t, itest.RedisOptions{
		Name:     itest.UniqueName("lbe2e-redis"),
		Port:     port,
		Password: password,
		Labels:   engineLabels("redis", conn, prefix),
	})
	r.Pipe(t, redisSeed())
	want := redisFingerprint(t, r)
	t.Logf("redis up and seeded in %v; fingerprint %s", time.Since(start).Round(time.Millisecond), want)

	b, backups, logs := firstBackup(t, prefix, r.Name)
	checkNoSecret(t, "agent logs", logs, password)
	checkEngineMetadata(t, b, engineMeta{container: r.Name, containerID: r.ID, dbType: "redis",
		compression: "gzip", ext: ".rdb.gz", dumpFormat: "redis-rdb"})

	// By hand, as the plugin's documentation says: gunzip -c to dump.rdb,
	// redis-check-rdb it, put it where a fresh server loads from, start it.
	restoreStart := time.Now()
	rdb := filepath.Join(t.TempDir(), "dump.rdb")
	cmd := exec.Command("sh", "-c", `gunzip -c "$1" > "$2"`, "sh", b.Path, rdb)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gunzip -c: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(rdb)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte("REDIS")) || int64(len(raw)) != b.Meta.DumpSizeBytes {
		t.Errorf("unpacked RDB: %d bytes starting %q; metadata dump_size_bytes %d", len(raw), raw[:min(9, len(raw))], b.Meta.DumpSizeBytes)
	}
	if out, err := exec.Command("redis-check-rdb", rdb).CombinedOutput(); err != nil || !strings.Contains(string(out), "RDB looks OK") {
		t.Fatalf("redis-check-rdb: %v\n%s", err, out)
	}
	restored := itest.StartRedis(t, itest.RedisOptions{Name: itest.UniqueName("lbe2e-redis-restored"), Password: password, RDB: rdb})
	if got := redisFingerprint(t, restored); got != want {
		t.Errorf("restored dataset differs:\n got  %s\n want %s", got, want)
	}
	if ttl := restored.Cmd(t, "TTL", "expiring"); ttl == "-1" || ttl == "-2" || strings.HasPrefix(ttl, "ERR") {
		t.Errorf("TTL of the expiring key after restore = %s, want a positive TTL", ttl)
	}
	t.Logf("restore by hand: %v", time.Since(restoreStart).Round(time.Millisecond))

	out, code := runCLI(t, backups, "restore", "--conn", restored.ConnString(0), backupKey(t, backups, b))
	checkNoSecret(t, "restore output", out, password)
	if code == 0 || !strings.Contains(out, "cannot restore") {
		t.Errorf("label-backup restore of a redis backup: exit %d, want a refusal naming the manual restore\n%s", code, out)
	}
}

// ------------------------------------------------------ MongoDB (FerretDB)

// mongoDoc builds an itest.D from key, value pairs.
func mongoDoc(kv ...any) itest.D {
	d := make(itest.D, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		d = append(d, itest.E{Key: kv[i].(string), Val: kv[i+1]})
	}
	return d
}

// seedMongo fills db app (and an unrelated db "other", which a dump of
// backup.database=app must leave out) with documents of many BSON types
// and a few indexes.
func seedMongo(t *testing.T, c *itest.MongoConn) {
	t.Helper()
	base := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	var customers, orders []itest.D
	for i := range 1000 {
		var note any = strings.Repeat("ünïcode ✓ ", i%7)
		if i%10 == 0 {
			note = nil
		}
		customers = append(customers, mongoDoc(
			"_id", int32(i),
			"name", fmt.Sprintf("customer %04d", i),
			"note", note,
			"balance", float64(i)*1.25,
			"big", int64(i)<<33,
			"active", i%3 == 0,
			"created", base.Add(time.Duration(i)*time.Minute),
			"tags", itest.A{"t" + fmt.Sprint(i%4), "all"},
			"address", mongoDoc("city", fmt.Sprintf("City %d", i%17), "zip", int32(10000+i)),
			"avatar", itest.Binary{Subtype: 0, Data: []byte{byte(i), byte(i >> 8), 0, 0xff}},
		))
	}
	for i := range 2000 {
		var oid itest.ObjectID
		copy(oid[:], fmt.Sprintf("%012d", i))
		orders = append(orders, mongoDoc(
			"_id", oid,
			"customer", int32(i%1000),
			"total", float64(i)/4,
			"items", itest.A{mongoDoc("sku", fmt.Sprintf("sku-%d", i%50), "qty", int32(1+i%3))},
		))
	}
	c.Insert("app", "customers", customers)
	c.Insert("app", "orders", orders)
	c.Run("app", mongoDoc("create", "empty"))
	c.Run("app", mongoDoc("createIndexes", "customers", "indexes", itest.A{
		mongoDoc("key", mongoDoc("name", int32(1)), "name", "name_unique", "unique", true),
		mongoDoc("key", mongoDoc("address.city", int32(1), "balance", int32(-1)), "name", "city_balance"),
	}))
	c.Run("app", mongoDoc("createIndexes", "orders", "indexes", itest.A{
		mongoDoc("key", mongoDoc("customer", int32(1), "total", int32(-1)), "name", "customer_total"),
	}))
	c.Insert("other", "unrelated", []itest.D{mongoDoc("_id", int32(1), "x", "not in the backup")})
}

// mongoSnapshot renders every collection of db: its documents (sorted by
// _id, type-tagged) and index specifications.
func mongoSnapshot(t *testing.T, c *itest.MongoConn, db string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	for _, coll := range c.Collections(db) {
		var b strings.Builder
		docs := c.Find(db, coll)
		fmt.Fprintf(&b, "%d documents\n", len(docs))
		for _, d := range docs {
			b.WriteString(d.String())
			b.WriteByte('\n')
		}
		for _, ix := range c.Indexes(db, coll) {
			b.WriteString("index " + ix.Without("ns").String() + "\n")
		}
		snap[coll] = b.String()
	}
	return snap
}

// compareMongo reports the differences between two snapshots.
func compareMongo(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		keys := func(m map[string]string) []string {
			var k []string
			for n := range m {
				k = append(k, n)
			}
			return k
		}
		t.Errorf("%s: collections %v, want %v", what, keys(got), keys(want))
	}
	for coll, w := range want {
		g, ok := got[coll]
		if !ok {
			t.Errorf("%s: collection %s missing", what, coll)
			continue
		}
		if g != w {
			gl, wl := strings.Split(g, "\n"), strings.Split(w, "\n")
			for i := range max(len(gl), len(wl)) {
				var a, b string
				if i < len(gl) {
					a = gl[i]
				}
				if i < len(wl) {
					b = wl[i]
				}
				if a != b {
					t.Errorf("%s: collection %s differs first at line %d:\n got  %s\n want %s", what, coll, i+1, a, b)
					break
				}
			}
		}
	}
}

// testMongo backs up a labeled FerretDB with the given compression and
// restores the backup with `label-backup restore` into a fresh database.
func testMongo(t *testing.T, compression, ext string, magic []byte, unpack string) {
	requireTools(t, strings.Fields(unpack)[0])
	const password = "e2e-Mongo@Secret:pw"
	prefix := "mongo-" + compression
	port := itest.FreePort(t)
	conn := (&itest.FerretDB{Port: port, User: "root", Password: password}).URI("")
	start := time.Now()
	f := itest.StartFerretDB(t, itest.FerretDBOptions{
		Name:     itest.UniqueName("lbe2e-fdb"),
		Port:     port,
		User:     "root",
		Password: password,
		Labels: engineLabels("mongodb", conn, prefix,
			"backup.database", "app", "backup.compression", compression),
	})
	c := f.Connect(t)
	seedMongo(t, c)
	want := mongoSnapshot(t, c, "app")
	if len(want) != 3 || !strings.HasPrefix(want["customers"], "1000 documents\n") || !strings.HasPrefix(want["orders"], "2000 documents\n") {
		t.Fatalf("seeding went wrong: %d collections", len(want))
	}
	var indexes []string
	for _, coll := range []string{"customers", "orders"} {
		for _, line := range strings.Split(want[coll], "\n") {
			if strings.HasPrefix(line, "index ") {
				indexes = append(indexes, coll+": "+strings.TrimPrefix(line, "index "))
			}
		}
	}
	t.Logf("ferretdb up and seeded in %v; indexes:\n%s", time.Since(start).Round(time.Millisecond), strings.Join(indexes, "\n"))

	b, backups, logs := firstBackup(t, prefix, f.Name)
	checkNoSecret(t, "agent logs", logs, password)
	checkEngineMetadata(t, b, engineMeta{container: f.Name, containerID: f.ID, dbType: "mongodb", dbName: "app",
		compression: compression, ext: ext, dumpFormat: "mongodump-archive"})

	// The stored file is a standard stream: the compressor's own tool
	// unpacks it into a mongodump archive of the announced size.
	stored, err := os.ReadFile(b.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(stored, magic) {
		t.Errorf("%s file starts % x, want % x", compression, stored[:min(4, len(stored))], magic)
	}
	cmd := exec.Command("sh", "-c", unpack+` "$1"`, "sh", b.Path)
	archive, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", unpack, err)
	}
	if !bytes.HasPrefix(archive, []byte{0x6d, 0xe2, 0x99, 0x81}) || int64(len(archive)) != b.Meta.DumpSizeBytes {
		t.Errorf("unpacked archive: %d bytes starting % x; metadata dump_size_bytes %d",
			len(archive), archive[:min(4, len(archive))], b.Meta.DumpSizeBytes)
	}

	// MongoDB creates a database on first write, so restoring into a
	// database that does not exist yet is the normal case.
	restoreStart := time.Now()
	restore := func() (string, int) {
		out, code := runCLI(t, backups, "restore", "--conn", f.URI(""), "--database", "restored", backupKey(t, backups, b))
		checkNoSecret(t, "restore output", out, password)
		return out, code
	}
	out, code := restore()
	if code != 0 {
		t.Fatalf("label-backup restore: exit %d\n%s", code, out)
	}
	t.Logf("restore via CLI: %v", time.Since(restoreStart).Round(time.Millisecond))
	compareMongo(t, "restored database", mongoSnapshot(t, c, "restored"), want)
	if dbs := strings.Join(c.Databases(), ","); strings.Contains(dbs, "unrelated") {
		t.Errorf("databases after restore: %s", dbs)
	}
	if got := c.Collections("other"); len(got) != 1 {
		t.Errorf("database other: collections %v, want only its own", got)
	}
}

// TestMongoDBToLocal: a labeled MongoDB (FerretDB) container is backed up by
// the mongodb plugin into a gzip-compressed mongodump archive, which
// `label-backup restore` restores into a fresh database with the same
// documents and indexes.
func TestMongoDBToLocal(t *testing.T) {
	testMongo(t, "gzip", ".archive.gz", []byte{0x1f, 0x8b}, "gunzip -c")
}

// TestMongoDBZstdToLocal is TestMongoDBToLocal with backup.compression=zstd:
// the file is a standard zstd frame (zstd -dc unpacks it) and the restore
// command decompresses it.
func TestMongoDBZstdToLocal(t *testing.T) {
	testMongo(t, "zstd", ".archive.zst", []byte{0x28, 0xb5, 0x2f, 0xfd}, "zstd -dc")
}
