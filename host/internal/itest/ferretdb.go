package itest

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// FerretDBVersion is the FerretDB release StartFerretDB runs (the MongoDB
// stand-in: no mongod can be installed on the test machines).
const FerretDBVersion = "v1.24.2"

const ferretHint = "run scripts/install-deps.sh --with-mongo (or set LB_FERRETDB to a FerretDB " +
	FerretDBVersion + " binary, built with CGO_ENABLED=0)"

// FerretDBBinary finds FerretDB the way the mongodb plugin's tests do:
// $LB_FERRETDB, else ($LB_TOOLS or ~/.cache/label-backup/tools)/
// ferretdb@<FerretDBVersion>/ferretdb, else "ferretdb" in PATH.
func FerretDBBinary() (string, error) {
	executable := func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
	}
	if p := os.Getenv("LB_FERRETDB"); p != "" {
		if executable(p) {
			return p, nil
		}
		return "", fmt.Errorf("LB_FERRETDB=%s is not an executable file: %s", p, ferretHint)
	}
	tools := os.Getenv("LB_TOOLS")
	if tools == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no home directory to find FerretDB in: %s", ferretHint)
		}
		tools = filepath.Join(home, ".cache", "label-backup", "tools")
	}
	p := filepath.Join(tools, "ferretdb@"+FerretDBVersion, "ferretdb")
	if executable(p) {
		return p, nil
	}
	if lp, err := exec.LookPath("ferretdb"); err == nil {
		return lp, nil
	}
	return "", fmt.Errorf("FerretDB %s not found at %s nor in PATH: %s", FerretDBVersion, p, ferretHint)
}

// FerretDBOptions configures StartFerretDB.
type FerretDBOptions struct {
	// Name is the container name; empty means "lbit-fdb-<random>".
	Name string
	// Port is the MongoDB wire-protocol port on 127.0.0.1; 0 picks a free one.
	Port int
	// Labels are added to the container (e.g. backup.enabled=true).
	Labels map[string]string
	// User (default "root") and Password (required) are the setup user,
	// created in the admin database; the server enforces SCRAM
	// authentication (FerretDB's --test-enable-new-auth).
	User, Password string
	// Env, when set, is put on the container (docker run -e), e.g. the
	// official mongo image's MONGO_INITDB_ROOT_USERNAME/PASSWORD that
	// zero-config reads. Values reach docker by name only.
	Env map[string]string
}

// FerretDB is a running FerretDB (SQLite backend) in a container.
type FerretDB struct {
	Name     string // container name
	ID       string // container ID
	Port     int    // wire-protocol port on 127.0.0.1
	User     string // setup user (authSource admin)
	Password string
	DataDir  string // host directory mounted at /data
}

// ferretReadyTimeout bounds the wait for the setup user to log in.
const ferretReadyTimeout = 30 * time.Second

// StartFerretDB starts FerretDB in a labeled container: the test image with
// the (static) binary bind-mounted read-only, data in SQLite files under
// /data. The password reaches FerretDB through its environment
// (FERRETDB_SETUP_PASSWORD, passed by name), not its command line. The
// container and its data are removed when the test ends. It fails the test
// when the binary is missing or the server does not come up.
func StartFerretDB(t testing.TB, opts FerretDBOptions) *FerretDB {
	t.Helper()
	RequireDocker(t)
	bin, err := FerretDBBinary()
	if err != nil {
		t.Fatalf("itest: %v", err)
	}
	if opts.Password == "" {
		t.Fatalf("itest: StartFerretDB needs a password")
	}
	f := &FerretDB{Name: opts.Name, Port: opts.Port, User: opts.User, Password: opts.Password}
	if f.Name == "" {
		f.Name = "lbit-fdb-" + randomHex(4)
	}
	if f.User == "" {
		f.User = "root"
	}
	if f.Port == 0 {
		f.Port = FreePort(t)
	}
	debugPort := FreePort(t)
	removeStale(t, f.Name)
	f.DataDir = dataDir(t, ids{0, 0})
	for _, d := range []string{"data", "state"} {
		if err := os.Mkdir(filepath.Join(f.DataDir, d), 0o700); err != nil {
			t.Fatalf("itest: %v", err)
		}
	}

	envArgs, dockerEnv := containerEnv(opts.Env, nil)
	args := slices.Concat(
		[]string{"run", "-d", "--name", f.Name, "--network", "host", "-v", "/usr:/usr:ro",
			"-v", bin + ":/opt/ferretdb/ferretdb:ro", "-v", f.DataDir + ":/data",
			"-e", "FERRETDB_SETUP_PASSWORD"},
		envArgs,
		labelArgs(t, opts.Labels),
		[]string{Image, "/opt/ferretdb/ferretdb",
			"--handler=sqlite", "--sqlite-url=file:/data/data/", "--state-dir=/data/state",
			fmt.Sprintf("--listen-addr=127.0.0.1:%d", f.Port),
			fmt.Sprintf("--debug-addr=127.0.0.1:%d", debugPort),
			"--telemetry=disable", "--log-level=warn",
			"--test-enable-new-auth", "--setup-database=admin", "--setup-username=" + f.User})
	id, err := docker(nil, append(dockerEnv, "FERRETDB_SETUP_PASSWORD="+f.Password), args...)
	if err != nil {
		t.Fatalf("itest: starting ferretdb: %v", err)
	}
	f.ID = strings.TrimSpace(id)
	removeOnCleanup(t, f.ID)

	deadline := time.Now().Add(ferretReadyTimeout)
	for {
		c, err := f.dial()
		if err == nil {
			_, err = c.command("admin", D{{"ping", int32(1)}})
			c.Close()
			if err == nil {
				return f
			}
		}
		running, ierr := docker(nil, nil, "container", "inspect", "--format", "{{.State.Running}}", f.Name)
		if ierr != nil || strings.TrimSpace(running) != "true" {
			logs, _ := exec.Command("docker", "logs", "--tail", "50", f.Name).CombinedOutput()
			t.Fatalf("itest: container %s stopped before it was ready:\n%s", f.Name, logs)
		}
		if time.Now().After(deadline) {
			t.Fatalf("itest: ferretdb %s not ready after %v: %v", f.Name, ferretReadyTimeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// URI returns a mongodb:// connection string logging in as the setup user
// (authSource=admin), with database path db (may be empty).
func (f *FerretDB) URI(db string) string {
	u := url.URL{Scheme: "mongodb", User: url.UserPassword(f.User, f.Password),
		Host: "127.0.0.1:" + strconv.Itoa(f.Port), Path: "/" + db, RawQuery: "authSource=admin"}
	return u.String()
}

// Connect opens an authenticated connection, closed when the test ends.
func (f *FerretDB) Connect(t testing.TB) *MongoConn {
	t.Helper()
	c, err := f.dial()
	if err != nil {
		t.Fatalf("itest: connecting to ferretdb %s: %v", f.Name, err)
	}
	c.t = t
	t.Cleanup(func() { c.Close() })
	return c
}

func (f *FerretDB) dial() (*MongoConn, error) {
	nc, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(f.Port), 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &MongoConn{conn: nc, r: bufio.NewReader(nc)}
	if err := c.scramSHA256(f.User, f.Password); err != nil {
		nc.Close()
		return nil, fmt.Errorf("SCRAM-SHA-256 as %s: %w", f.User, err)
	}
	return c, nil
}

// ---- A minimal MongoDB client: OP_MSG over one connection ----

// MongoConn is one authenticated wire-protocol connection. It is just
// enough of a MongoDB client for tests: commands in, documents out.
type MongoConn struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

var mongoRequestID atomic.Int32

// Close closes the connection.
func (c *MongoConn) Close() { _ = c.conn.Close() }

// MongoError is a command's {ok: 0} reply.
type MongoError struct {
	Code    int64
	Message string
}

func (e *MongoError) Error() string {
	return fmt.Sprintf("command failed (code %d): %s", e.Code, e.Message)
}

const opMsg = 2013

// command runs cmd against database db and returns the reply document, or
// a *MongoError when the reply says ok: 0.
func (c *MongoConn) command(db string, cmd D) (D, error) {
	body, err := encodeDoc(append(slices.Clone(cmd), E{"$db", db}))
	if err != nil {
		return nil, err
	}
	id := mongoRequestID.Add(1)
	msg := make([]byte, 16, 16+5+len(body))
	binary.LittleEndian.PutUint32(msg[4:], uint32(id))
	binary.LittleEndian.PutUint32(msg[12:], opMsg)
	msg = append(msg, 0, 0, 0, 0, 0) // flagBits, then section kind 0
	msg = append(msg, body...)
	binary.LittleEndian.PutUint32(msg[0:], uint32(len(msg)))
	_ = c.conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := c.conn.Write(msg); err != nil {
		return nil, err
	}
	var hdr [16]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return nil, fmt.Errorf("reading the reply: %w", err)
	}
	n := int(binary.LittleEndian.Uint32(hdr[0:]))
	if n < 16+5 || n > 64<<20 {
		return nil, fmt.Errorf("reply of %d bytes", n)
	}
	rest := make([]byte, n-16)
	if _, err := io.ReadFull(c.r, rest); err != nil {
		return nil, fmt.Errorf("reading the reply: %w", err)
	}
	if op := binary.LittleEndian.Uint32(hdr[12:]); op != opMsg {
		return nil, fmt.Errorf("reply opcode %d, want OP_MSG", op)
	}
	if int32(binary.LittleEndian.Uint32(hdr[8:])) != id {
		return nil, errors.New("reply to another request")
	}
	if rest[4] != 0 {
		return nil, fmt.Errorf("reply section kind %d, want 0", rest[4])
	}
	reply, err := decodeDoc(rest[5:])
	if err != nil {
		return nil, fmt.Errorf("decoding the reply: %w", err)
	}
	if ok, _ := reply.Get("ok"); !truthy(ok) {
		msg, _ := reply.Get("errmsg")
		code, _ := reply.Get("code")
		s, _ := msg.(string)
		return reply, &MongoError{Code: asInt64(code), Message: s}
	}
	return reply, nil
}

// Run runs cmd against db and returns the reply; an error fails the test.
func (c *MongoConn) Run(db string, cmd D) D {
	c.t.Helper()
	reply, err := c.command(db, cmd)
	if err != nil {
		c.t.Fatalf("itest: mongo command %s on %s: %v", cmd[0].Key, db, err)
	}
	return reply
}

// Insert inserts docs into db.coll in batches of 500.
func (c *MongoConn) Insert(db, coll string, docs []D) {
	c.t.Helper()
	for len(docs) > 0 {
		n := min(len(docs), 500)
		arr := make(A, n)
		for i := range n {
			arr[i] = docs[i]
		}
		reply := c.Run(db, D{{"insert", coll}, {"documents", arr}, {"ordered", true}})
		if got, _ := reply.Get("n"); asInt64(got) != int64(n) {
			c.t.Fatalf("itest: insert into %s.%s: n = %v, want %d (%s)", db, coll, got, n, reply)
		}
		docs = docs[n:]
	}
}

// Find returns every document of db.coll, sorted by _id.
func (c *MongoConn) Find(db, coll string) []D {
	c.t.Helper()
	return c.cursor(db, coll, D{{"find", coll}, {"filter", D{}}, {"sort", D{{"_id", int32(1)}}}, {"batchSize", int32(1000)}})
}

// Indexes returns the specifications listIndexes gives for db.coll, sorted
// by name.
func (c *MongoConn) Indexes(db, coll string) []D {
	c.t.Helper()
	out := c.cursor(db, coll, D{{"listIndexes", coll}})
	slices.SortFunc(out, func(a, b D) int {
		x, _ := a.Get("name")
		y, _ := b.Get("name")
		return strings.Compare(fmt.Sprint(x), fmt.Sprint(y))
	})
	return out
}

// Collections returns the sorted collection names of db.
func (c *MongoConn) Collections(db string) []string {
	c.t.Helper()
	var names []string
	for _, d := range c.cursor(db, "", D{{"listCollections", int32(1)}, {"nameOnly", true}}) {
		n, _ := d.Get("name")
		names = append(names, fmt.Sprint(n))
	}
	slices.Sort(names)
	return names
}

// Databases returns the sorted database names.
func (c *MongoConn) Databases() []string {
	c.t.Helper()
	reply := c.Run("admin", D{{"listDatabases", int32(1)}, {"nameOnly", true}})
	v, _ := reply.Get("databases")
	arr, _ := v.(A)
	var names []string
	for _, x := range arr {
		if d, ok := x.(D); ok {
			n, _ := d.Get("name")
			names = append(names, fmt.Sprint(n))
		}
	}
	slices.Sort(names)
	return names
}

// cursor runs a cursor-returning command and drains it with getMore.
func (c *MongoConn) cursor(db, coll string, cmd D) []D {
	c.t.Helper()
	var out []D
	reply := c.Run(db, cmd)
	batchKey := "firstBatch"
	for {
		cv, _ := reply.Get("cursor")
		cur, ok := cv.(D)
		if !ok {
			c.t.Fatalf("itest: %s on %s: no cursor in %s", cmd[0].Key, db, reply)
		}
		bv, _ := cur.Get(batchKey)
		batch, _ := bv.(A)
		for _, x := range batch {
			d, ok := x.(D)
			if !ok {
				c.t.Fatalf("itest: %s on %s: batch element %T", cmd[0].Key, db, x)
			}
			out = append(out, d)
		}
		idv, _ := cur.Get("id")
		id := asInt64(idv)
		if id == 0 {
			return out
		}
		name := coll
		if nv, ok := cur.Get("ns"); ok {
			if ns, _ := nv.(string); strings.Contains(ns, ".") {
				name = ns[strings.IndexByte(ns, '.')+1:]
			}
		}
		reply = c.Run(db, D{{"getMore", id}, {"collection", name}, {"batchSize", int32(1000)}})
		batchKey = "nextBatch"
	}
}

// scramSHA256 authenticates against the admin database (RFC 5802/7677 as
// MongoDB frames it in saslStart/saslContinue). The password is used as is
// (SASLprep is the identity for printable ASCII).
func (c *MongoConn) scramSHA256(user, password string) error {
	nonceRaw := make([]byte, 24)
	_, _ = rand.Read(nonceRaw)
	nonce := base64.StdEncoding.EncodeToString(nonceRaw)
	escaped := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(user)
	clientFirstBare := "n=" + escaped + ",r=" + nonce
	reply, err := c.command("admin", D{{"saslStart", int32(1)}, {"mechanism", "SCRAM-SHA-256"},
		{"payload", Binary{Data: []byte("n,," + clientFirstBare)}}, {"autoAuthorize", int32(1)},
		{"options", D{{"skipEmptyExchange", true}}}})
	if err != nil {
		return err
	}
	convID, _ := reply.Get("conversationId")
	serverFirst := string(payloadOf(reply))
	attrs := scramAttrs(serverFirst)
	if !strings.HasPrefix(attrs["r"], nonce) {
		return fmt.Errorf("server nonce %q does not extend ours", attrs["r"])
	}
	salt, err := base64.StdEncoding.DecodeString(attrs["s"])
	if err != nil {
		return fmt.Errorf("salt: %w", err)
	}
	iter, err := strconv.Atoi(attrs["i"])
	if err != nil || iter < 1 {
		return fmt.Errorf("iteration count %q", attrs["i"])
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	finalNoProof := "c=biws,r=" + attrs["r"]
	authMessage := clientFirstBare + "," + serverFirst + "," + finalNoProof
	sig := mac(storedKey[:], authMessage)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	final := finalNoProof + ",p=" + base64.StdEncoding.EncodeToString(proof)
	reply, err = c.command("admin", D{{"saslContinue", int32(1)}, {"conversationId", convID},
		{"payload", Binary{Data: []byte(final)}}})
	if err != nil {
		return err
	}
	serverSig := mac(mac(salted, "Server Key"), authMessage)
	if got := scramAttrs(string(payloadOf(reply)))["v"]; got != base64.StdEncoding.EncodeToString(serverSig) {
		return fmt.Errorf("server signature %q does not verify", got)
	}
	for range 3 {
		if done, _ := reply.Get("done"); done == true {
			return nil
		}
		reply, err = c.command("admin", D{{"saslContinue", int32(1)}, {"conversationId", convID},
			{"payload", Binary{Data: []byte{}}}})
		if err != nil {
			return err
		}
	}
	return errors.New("SASL conversation did not finish")
}

func payloadOf(reply D) []byte {
	v, _ := reply.Get("payload")
	if b, ok := v.(Binary); ok {
		return b.Data
	}
	return nil
}

func scramAttrs(s string) map[string]string {
	m := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(part, "="); ok {
			m[k] = v
		}
	}
	return m
}

func truthy(v any) bool {
	switch x := v.(type) {
	case float64:
		return x != 0
	case int32:
		return x != 0
	case int64:
		return x != 0
	case bool:
		return x
	}
	return false
}

func asInt64(v any) int64 {
	switch x := v.(type) {
	case int32:
		return int64(x)
	case int64:
		return x
	case float64:
		return int64(x)
	}
	return 0
}

// ---- A minimal BSON codec ----

// D is an ordered BSON document.
type D []E

// E is one element of a D.
type E struct {
	Key string
	Val any
}

// A is a BSON array.
type A []any

// Binary is BSON binary data.
type Binary struct {
	Subtype byte
	Data    []byte
}

// ObjectID is a BSON ObjectId.
type ObjectID [12]byte

// Timestamp is a BSON (replication) timestamp.
type Timestamp struct{ T, I uint32 }

// Decimal128 is a BSON decimal, kept as its 16 raw bytes.
type Decimal128 [16]byte

// Regex is a BSON regular expression.
type Regex struct{ Pattern, Options string }

// Get returns the value of the first element named key.
func (d D) Get(key string) (any, bool) {
	for _, e := range d {
		if e.Key == key {
			return e.Val, true
		}
	}
	return nil, false
}

// Without returns d without the elements named by keys.
func (d D) Without(keys ...string) D {
	var out D
	for _, e := range d {
		if !slices.Contains(keys, e.Key) {
			out = append(out, e)
		}
	}
	return out
}

// String renders d in an Extended-JSON-like, type-tagged, order-preserving
// form: two documents with the same String have the same elements, in the
// same order, of the same types.
func (d D) String() string {
	var b strings.Builder
	formatBSON(&b, d)
	return b.String()
}

func formatBSON(b *strings.Builder, v any) {
	switch x := v.(type) {
	case D:
		b.WriteByte('{')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(e.Key))
			b.WriteString(": ")
			formatBSON(b, e.Val)
		}
		b.WriteByte('}')
	case A:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			formatBSON(b, e)
		}
		b.WriteByte(']')
	case string:
		b.WriteString(strconv.Quote(x))
	case float64:
		fmt.Fprintf(b, "double(%s)", strconv.FormatFloat(x, 'g', -1, 64))
	case int32:
		fmt.Fprintf(b, "int32(%d)", x)
	case int64:
		fmt.Fprintf(b, "int64(%d)", x)
	case bool:
		fmt.Fprintf(b, "%t", x)
	case nil:
		b.WriteString("null")
	case time.Time:
		fmt.Fprintf(b, "date(%d)", x.UnixMilli())
	case Binary:
		fmt.Fprintf(b, "bin(%d,%s)", x.Subtype, hex.EncodeToString(x.Data))
	case ObjectID:
		fmt.Fprintf(b, "oid(%s)", hex.EncodeToString(x[:]))
	case Timestamp:
		fmt.Fprintf(b, "ts(%d,%d)", x.T, x.I)
	case Decimal128:
		fmt.Fprintf(b, "dec128(%s)", hex.EncodeToString(x[:]))
	case Regex:
		fmt.Fprintf(b, "regex(%q,%q)", x.Pattern, x.Options)
	default:
		fmt.Fprintf(b, "%T(%v)", x, x)
	}
}

func encodeDoc(d D) ([]byte, error) {
	out := []byte{0, 0, 0, 0}
	for _, e := range d {
		var err error
		if out, err = encodeElem(out, e.Key, e.Val); err != nil {
			return nil, err
		}
	}
	out = append(out, 0)
	binary.LittleEndian.PutUint32(out, uint32(len(out)))
	return out, nil
}

func encodeElem(out []byte, key string, v any) ([]byte, error) {
	if strings.IndexByte(key, 0) >= 0 {
		return nil, fmt.Errorf("bson key %q contains NUL", key)
	}
	head := func(t byte) { out = append(append(append(out, t), key...), 0) }
	str := func(s string) {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(s)+1))
		out = append(append(out, s...), 0)
	}
	switch x := v.(type) {
	case float64:
		head(0x01)
		out = binary.LittleEndian.AppendUint64(out, math.Float64bits(x))
	case string:
		head(0x02)
		str(x)
	case D:
		head(0x03)
		sub, err := encodeDoc(x)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	case A:
		head(0x04)
		d := make(D, len(x))
		for i, e := range x {
			d[i] = E{strconv.Itoa(i), e}
		}
		sub, err := encodeDoc(d)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	case Binary:
		head(0x05)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(x.Data)))
		out = append(append(out, x.Subtype), x.Data...)
	case ObjectID:
		head(0x07)
		out = append(out, x[:]...)
	case bool:
		head(0x08)
		if x {
			out = append(out, 1)
		} else {
			out = append(out, 0)
		}
	case time.Time:
		head(0x09)
		out = binary.LittleEndian.AppendUint64(out, uint64(x.UnixMilli()))
	case nil:
		head(0x0A)
	case Regex:
		head(0x0B)
		out = append(append(out, x.Pattern...), 0)
		out = append(append(out, x.Options...), 0)
	case int32:
		head(0x10)
		out = binary.LittleEndian.AppendUint32(out, uint32(x))
	case Timestamp:
		head(0x11)
		out = binary.LittleEndian.AppendUint32(out, x.I)
		out = binary.LittleEndian.AppendUint32(out, x.T)
	case int64:
		head(0x12)
		out = binary.LittleEndian.AppendUint64(out, uint64(x))
	case int:
		head(0x12)
		out = binary.LittleEndian.AppendUint64(out, uint64(x))
	case Decimal128:
		head(0x13)
		out = append(out, x[:]...)
	default:
		return nil, fmt.Errorf("bson: cannot encode %T", v)
	}
	return out, nil
}

var errShort = errors.New("bson: truncated")

func decodeDoc(b []byte) (D, error) {
	if len(b) < 5 {
		return nil, errShort
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < 5 || n > len(b) || b[n-1] != 0 {
		return nil, fmt.Errorf("bson: bad document length %d of %d", n, len(b))
	}
	body := b[4 : n-1]
	d := D{}
	for len(body) > 0 {
		t := body[0]
		end := bytes.IndexByte(body[1:], 0)
		if end < 0 {
			return nil, errShort
		}
		key := string(body[1 : 1+end])
		body = body[2+end:]
		v, used, err := decodeValue(t, body)
		if err != nil {
			return nil, fmt.Errorf("bson: field %q: %w", key, err)
		}
		d = append(d, E{key, v})
		body = body[used:]
	}
	return d, nil
}

func decodeValue(t byte, b []byte) (any, int, error) {
	need := func(n int) error {
		if len(b) < n {
			return errShort
		}
		return nil
	}
	cstring := func(b []byte) (string, int, error) {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return "", 0, errShort
		}
		return string(b[:i]), i + 1, nil
	}
	switch t {
	case 0x01:
		if err := need(8); err != nil {
			return nil, 0, err
		}
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), 8, nil
	case 0x02, 0x0D, 0x0E: // string, JavaScript, symbol
		if err := need(4); err != nil {
			return nil, 0, err
		}
		n := int(binary.LittleEndian.Uint32(b))
		if n < 1 || len(b) < 4+n || b[3+n] != 0 {
			return nil, 0, errShort
		}
		return string(b[4 : 3+n]), 4 + n, nil
	case 0x03, 0x04:
		if err := need(4); err != nil {
			return nil, 0, err
		}
		n := int(binary.LittleEndian.Uint32(b))
		if n < 5 || len(b) < n {
			return nil, 0, errShort
		}
		d, err := decodeDoc(b[:n])
		if err != nil {
			return nil, 0, err
		}
		if t == 0x03 {
			return d, n, nil
		}
		arr := make(A, len(d))
		for i, e := range d {
			arr[i] = e.Val
		}
		return arr, n, nil
	case 0x05:
		if err := need(5); err != nil {
			return nil, 0, err
		}
		n := int(binary.LittleEndian.Uint32(b))
		if n < 0 || len(b) < 5+n {
			return nil, 0, errShort
		}
		return Binary{Subtype: b[4], Data: slices.Clone(b[5 : 5+n])}, 5 + n, nil
	case 0x06, 0x0A, 0x7F, 0xFF: // undefined, null, max key, min key
		return nil, 0, nil
	case 0x07:
		if err := need(12); err != nil {
			return nil, 0, err
		}
		return ObjectID(b[:12]), 12, nil
	case 0x08:
		if err := need(1); err != nil {
			return nil, 0, err
		}
		return b[0] != 0, 1, nil
	case 0x09:
		if err := need(8); err != nil {
			return nil, 0, err
		}
		return time.UnixMilli(int64(binary.LittleEndian.Uint64(b))).UTC(), 8, nil
	case 0x0B:
		p, n1, err := cstring(b)
		if err != nil {
			return nil, 0, err
		}
		o, n2, err := cstring(b[n1:])
		if err != nil {
			return nil, 0, err
		}
		return Regex{p, o}, n1 + n2, nil
	case 0x10:
		if err := need(4); err != nil {
			return nil, 0, err
		}
		return int32(binary.LittleEndian.Uint32(b)), 4, nil
	case 0x11:
		if err := need(8); err != nil {
			return nil, 0, err
		}
		return Timestamp{I: binary.LittleEndian.Uint32(b), T: binary.LittleEndian.Uint32(b[4:])}, 8, nil
	case 0x12:
		if err := need(8); err != nil {
			return nil, 0, err
		}
		return int64(binary.LittleEndian.Uint64(b)), 8, nil
	case 0x13:
		if err := need(16); err != nil {
			return nil, 0, err
		}
		return Decimal128(b[:16]), 16, nil
	}
	return nil, 0, fmt.Errorf("unsupported BSON type 0x%02x", t)
}
