package itest

import "testing"

// StartMariaDBEnv is StartMariaDB with environment variables set on the
// server's container (docker run -e), the way the official images are
// configured: MARIADB_USER, MARIADB_PASSWORD, MARIADB_DATABASE,
// MYSQL_ROOT_PASSWORD, ... The variables only describe the server to Label
// Backup: the accounts are made like StartMariaDB makes them (root without
// a password on the Unix socket; opts.User with opts.Password), so set them
// to match. Values travel to docker by name, never on its command line.
func StartMariaDBEnv(t testing.TB, opts MariaDBOptions, env map[string]string) *MariaDB {
	t.Helper()
	opts.Env = env
	return StartMariaDB(t, opts)
}
