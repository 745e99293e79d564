//! A throw-away PostgreSQL server for tests: initdb in a temporary
//! directory, `postgres` on a free loopback port, a `todo` role with a
//! password (host connections need it: scram-sha-256) owning a `todo`
//! database (more on request: `database`, so one server can serve many
//! tests). Shared by nene's tests and the todo example's (which includes
//! this file by path). PostgreSQL refuses to run as root, so as root (CI) the
//! directory is given to the `postgres` user and the programs run as it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{
    free_port, is_root, require_program_in, stop_child, wait_for_tcp, wait_until_answering,
};

/// The password of the app's role; the tests check it never shows.
pub const PASSWORD: &str = "pg-Secret-pw1";

pub struct Postgres {
    child: Option<Child>,
    bin: PathBuf,
    /// uid and gid the server runs as when the tests run as root.
    owner: Option<(u32, u32)>,
    dir: tempfile::TempDir,
    pub port: u16,
}

/// The newest /usr/lib/postgresql/*/bin holding initdb (Debian keeps the
/// server programs there, off PATH, with psql beside them), else PATH.
fn bin_dir() -> PathBuf {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    dirs.sort();
    let extra: Vec<PathBuf> = dirs.into_iter().rev().map(|(_, dir)| dir).collect();
    let initdb = require_program_in("initdb", "postgresql", &extra);
    initdb.parent().unwrap().to_path_buf()
}

/// The `postgres` system user's uid and gid.
fn postgres_user() -> (u32, u32) {
    // SAFETY: getpwnam with a NUL-terminated name; the fields are copied
    // before any other call could overwrite the static buffer.
    unsafe {
        let entry = libc::getpwnam(c"postgres".as_ptr());
        assert!(
            !entry.is_null(),
            "no `postgres` user to run PostgreSQL as (the tests run as root). \
             Install it with: sudo apt-get install -y postgresql"
        );
        ((*entry).pw_uid, (*entry).pw_gid)
    }
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let owner = is_root().then(postgres_user);
        let dir = tempfile::tempdir().unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let mut pg = Postgres {
            child: None,
            bin,
            owner,
            dir,
            port: free_port(),
        };
        let initdb = pg
            .command("initdb")
            .arg("-D")
            .arg(pg.data())
            .args(["-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .output()
            .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        );
        pg.start_again();
        // Two commands: CREATE DATABASE cannot share a transaction.
        pg.psql(&format!("CREATE ROLE todo LOGIN PASSWORD '{PASSWORD}'"));
        pg.psql("CREATE DATABASE todo OWNER todo");
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// A command for one of PostgreSQL's programs, as the server's user.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        command.current_dir(self.dir.path());
        if let Some((uid, gid)) = self.owner {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(gid);
        }
        command
    }

    /// The DSN the app is given: the password role over TCP.
    pub fn dsn(&self) -> String {
        format!("postgres://todo:{PASSWORD}@127.0.0.1:{}/todo", self.port)
    }

    /// Starts the server on its port (first start, or after `stop`).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL is already running");
        let log = self.log();
        // Stale from the previous run after a fast shutdown: harmless, but
        // remove it so the log shows only this start.
        let _ = std::fs::remove_file(self.dir.path().join(format!(".s.PGSQL.{}.lock", self.port)));
        let mut child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "shared_buffers=16MB"])
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("start postgres");
        wait_for_tcp(
            &format!("127.0.0.1:{}", self.port),
            &mut child,
            "postgres",
            &log,
        );
        self.child = Some(child);
        self.wait_ready();
    }

    /// Accepting TCP is not yet accepting queries ("starting up").
    fn wait_ready(&self) {
        wait_until_answering("PostgreSQL", &self.log(), || self.psql_output("SELECT 1"));
    }

    fn psql_output(&self, sql: &str) -> std::process::Output {
        self.psql_in("postgres", sql)
    }

    fn psql_in(&self, database: &str, sql: &str) -> std::process::Output {
        self.psql_command(database)
            // -X: no ~/.psqlrc (as root, HOME is root's, unreadable to postgres).
            .args(["-X", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql")
    }

    /// `psql` as the superuser over the Unix socket, in `database`.
    fn psql_command(&self, database: &str) -> Command {
        let mut command = self.command("psql");
        command.arg("-h").arg(self.dir.path()).args([
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-d",
            database,
        ]);
        command
    }

    /// Runs SQL as the superuser over the Unix socket (trust).
    pub fn psql(&self, sql: &str) {
        let output = self.psql_output(sql);
        assert!(
            output.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A fresh database `name` the `todo` role owns, and its DSN: one
    /// server serves many tests, each in a database of its own.
    pub fn database(&self, name: &str) -> String {
        self.psql(&format!("CREATE DATABASE {name} OWNER todo"));
        format!("postgres://todo:{PASSWORD}@127.0.0.1:{}/{name}", self.port)
    }

    /// The rows `sql` selects in `database` (as the superuser), `|`-separated, one line each.
    pub fn query(&self, database: &str, sql: &str) -> String {
        let output = self
            .psql_command(database)
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Kills the server at once (an outage; `start_again` brings it back).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGKILL, Duration::from_secs(5));
        }
    }

    /// Fast shutdown: connections are ended, the port closes.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGINT, Duration::from_secs(15));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Immediate shutdown: nothing here needs to survive.
            stop_child(&mut child, libc::SIGQUIT, Duration::from_secs(10));
        }
    }
}
