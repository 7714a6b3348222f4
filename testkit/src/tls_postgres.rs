//! A throwaway Postgres cluster that takes TLS connections only (its `pg_hba.conf` has nothing
//! but `hostssl` lines), for the tests of connecting with each `sslmode`. Its certificate is
//! issued at start by a CA of its own for the name `localhost` only, so a client that checks
//! host names refuses it at `127.0.0.1`. The cluster lives in a temporary directory and is
//! stopped when the value is dropped.
//!
//! Postgres refuses to run as root: when the tests do, the cluster is made and run by the
//! `postgres` OS user (through `runuser`), as `scripts/lib/common.sh` runs the local stack's.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::certs::TestCa;

/// Where Debian's PostgreSQL 15 server programs live (the version `scripts/stack` installs).
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The only name the server's certificate is valid for.
pub const CERTIFIED_HOST: &str = "localhost";

pub struct TlsOnlyPostgres {
    port: u16,
    dir: TempDir,
}

impl TlsOnlyPostgres {
    /// Creates the cluster and starts it on a free loopback port.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory for the TLS cluster");
        let ca = TestCa::new("callscript test Postgres CA");
        let (certificate, key) = ca.issue(&[CERTIFIED_HOST]);
        write(&dir.path().join("ca.pem"), &ca.pem());
        write(&dir.path().join("server.crt"), &certificate.pem());
        let key_file = dir.path().join("server.key");
        write(&key_file, &key.serialize_pem());
        // The server refuses a key that others can read.
        fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).expect("key mode");
        if running_as_root() {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()));
        }

        let data = dir.path().join("data");
        run(as_cluster_owner(&format!("{PG_BIN}/initdb"))
            .args(["--auth=trust", "--no-sync", "--username=postgres", "-D"])
            .arg(&data));
        let port = free_port();
        append(
            &data.join("postgresql.conf"),
            &format!(
                "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n\
                 max_connections = 20\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                dir.path().join("server.crt").display(),
                key_file.display(),
            ),
        );
        write(
            &data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        );
        let log = dir.path().join("server.log");
        let started = as_cluster_owner(&format!("{PG_BIN}/pg_ctl"))
            .args(["start", "--wait", "--silent", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .status()
            .expect("run pg_ctl start");
        // The directory, log included, goes when this panics: show the log now.
        assert!(
            started.success(),
            "the TLS-only cluster did not start: {}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        Self { port, dir }
    }

    /// A URL for the `postgres` database as `postgres`, reaching the server by `host`, with
    /// `query` (e.g. `sslmode=require`) as its parameters.
    pub fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM file of the CA that issued the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The PEM file of a CA made now that did not issue the server's certificate.
    pub fn unrelated_ca_file(&self) -> PathBuf {
        let path = self.dir.path().join("unrelated-ca.pem");
        write(&path, &TestCa::new("callscript unrelated CA").pem());
        path
    }
}

impl Drop for TlsOnlyPostgres {
    fn drop(&mut self) {
        let _ = as_cluster_owner(&format!("{PG_BIN}/pg_ctl"))
            .args(["stop", "--mode=immediate", "--wait", "--silent", "-D"])
            .arg(self.dir.path().join("data"))
            .status();
    }
}

/// A command for a server program, run as the `postgres` OS user when the tests run as root.
fn as_cluster_owner(program: &str) -> Command {
    let mut command = if running_as_root() {
        let mut runuser = Command::new("runuser");
        runuser.args(["-u", "postgres", "--", program]);
        runuser
    } else {
        Command::new(program)
    };
    // The postgres user may not be allowed into the test's working directory.
    command.current_dir("/");
    command
}

fn running_as_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e} (the TLS tests need PostgreSQL 15's server programs in {PG_BIN}; scripts/stack installs them)"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn append(path: &Path, text: &str) {
    let mut contents =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    contents.push_str(text);
    write(path, &contents);
}
