//! For tests only: a throwaway PostgreSQL cluster. `initdb` and `pg_ctl` in
//! a temporary folder, listening on a free port of 127.0.0.1 and asking for a
//! password (SCRAM), so tests connect the way a deployment does: by URL, with
//! the password in a file.
//!
//! PostgreSQL must be installed (Debian's `postgresql` package; `.ci/run`
//! installs it). When it is not, [`Cluster::start`] panics saying so: a test
//! that needs a database fails, it never skips. `PG_BIN` may name the folder
//! of `initdb` and `pg_ctl`; otherwise the newest `/usr/lib/postgresql/*/bin`
//! is used, then `PATH`.
//!
//! `initdb` refuses to run as root, and CI runs as root: then every server
//! command runs as the `postgres` user (`runuser -u postgres --`, the user
//! Debian's package creates), which owns the temporary folder.
//!
//! A watchdog (a detached shell) waits for the test process to exit, then
//! stops the cluster and removes its folder, so a test that panics, or a
//! static cluster that is never dropped, leaves no server running.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The superuser every cluster is created with (and tests connect as).
pub const USER: &str = "rollcall";

/// A running PostgreSQL cluster of its own. Stopped and removed on drop.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    run_as: Option<String>,
    password: String,
    databases: AtomicUsize,
}

/// Clusters this process started, for unique folder names.
static STARTED: AtomicUsize = AtomicUsize::new(0);

impl Cluster {
    /// Creates and starts a cluster, or panics with the reason (PostgreSQL
    /// not installed, `initdb` failed, no port).
    pub fn start() -> Cluster {
        Cluster::try_start().unwrap_or_else(|e| panic!("pgcluster: {e}"))
    }

    /// Creates and starts a cluster.
    pub fn try_start() -> Result<Cluster, String> {
        let bin = find_bin()?;
        let run_as = if is_root() {
            if user_ids("postgres").is_none() {
                return Err(
                    "running as root, which initdb refuses, and there is no `postgres` \
                            user to run it as (Debian's postgresql package creates one)"
                        .into(),
                );
            }
            Some("postgres".to_owned())
        } else {
            None
        };
        let n = STARTED.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("pgcluster-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let cluster = Cluster {
            dir,
            bin,
            port: 0,
            run_as,
            password: format!("pw-{}-{nanos}", std::process::id()),
            databases: AtomicUsize::new(0),
        };
        cluster.spawn_watchdog();
        cluster.init()?;
        cluster.start_on_a_free_port()
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A file holding [`USER`]'s password (and a newline), as an operator
    /// would write one.
    pub fn password_file(&self) -> PathBuf {
        self.dir.join("password")
    }

    /// The password itself.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// `postgres://rollcall@127.0.0.1:PORT/DATABASE`, without the password.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// [`Cluster::url`] with the password in it.
    pub fn url_with_password(&self, database: &str) -> String {
        format!(
            "postgres://{USER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// A new client of `database`, as the superuser.
    pub fn client(&self, database: &str) -> Result<postgres::Client, postgres::Error> {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(USER)
            .password(&self.password)
            .dbname(database)
            .connect_timeout(Duration::from_secs(10))
            .connect(postgres::NoTls)
    }

    /// Creates an empty database `name`.
    pub fn create_database(&self, name: &str) {
        let mut client = self
            .client("postgres")
            .unwrap_or_else(|e| panic!("pgcluster: cannot connect: {e}"));
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("pgcluster: CREATE DATABASE {name}: {e}"));
    }

    /// Creates an empty database of a name not used before in this cluster
    /// (`PREFIX_N`) and returns the name.
    pub fn fresh_database(&self, prefix: &str) -> String {
        let n = self.databases.fetch_add(1, Ordering::SeqCst);
        let name = format!("{prefix}_{n}");
        self.create_database(&name);
        name
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m
    /// immediate`: no checkpoint, clients cut off; the next start recovers
    /// from the WAL).
    pub fn stop(&self) {
        if let Err(e) = self.pg_ctl(&["-m", "immediate", "stop"]) {
            panic!("pgcluster: stop: {e}");
        }
    }

    /// Starts the server again on the same port after [`Cluster::stop`].
    pub fn start_again(&self) {
        if let Err(e) = self.start_server(self.port) {
            panic!("pgcluster: start: {e}");
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `program ARGS` from PostgreSQL's bin folder, as the `postgres` user
    /// when we are root, from the cluster's folder.
    fn run(&self, program: &str, args: &[OsString]) -> Result<Output, String> {
        let exe = self.bin.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args)
            .current_dir(&self.dir)
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(format!(
                "{program} {args:?} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<Output, String> {
        let mut all: Vec<OsString> = vec!["-D".into(), self.data().into(), "-w".into()];
        all.extend(args.iter().map(OsString::from));
        self.run("pg_ctl", &all)
    }

    /// The folder (owned by the server's user) and `initdb`.
    fn init(&self) -> Result<(), String> {
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string())?;
        let pwfile = self.password_file();
        std::fs::write(&pwfile, format!("{}\n", self.password)).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        if let Some(user) = &self.run_as {
            let (uid, gid) = user_ids(user).ok_or_else(|| format!("no user {user}"))?;
            for path in [&self.dir, &pwfile] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .map_err(|e| format!("cannot give {} to {user}: {e}", path.display()))?;
            }
        }
        let args: Vec<OsString> = vec![
            "-D".into(),
            self.data().into(),
            "-U".into(),
            USER.into(),
            format!("--pwfile={}", pwfile.display()).into(),
            "--auth-host=scram-sha-256".into(),
            "--auth-local=trust".into(),
            "-E".into(),
            "UTF8".into(),
            "--no-locale".into(),
            // A throwaway cluster: initdb need not fsync its files.
            "--no-sync".into(),
        ];
        self.run("initdb", &args)?;
        let settings = format!(
            "\n# pgcluster\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             max_connections = 400\n",
            self.dir.display()
        );
        let conf = self.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).map_err(|e| e.to_string())?;
        text.push_str(&settings);
        std::fs::write(&conf, text).map_err(|e| e.to_string())
    }

    fn start_server(&self, port: u16) -> Result<(), String> {
        let log = self.dir.join("log");
        self.pg_ctl(&[
            "-t",
            "60",
            "-l",
            log.to_str().ok_or("temporary folder is not UTF-8")?,
            "-o",
            &format!("-p {port}"),
            "start",
        ])
        .map(|_| ())
    }

    /// Starts on a port that was free a moment ago; another process may take
    /// it in between, so a failed start is tried again on another.
    fn start_on_a_free_port(mut self) -> Result<Cluster, String> {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            match self.start_server(port) {
                Ok(()) => {
                    self.port = port;
                    return Ok(self);
                }
                Err(e) => last = format!("{e}\n{}", self.log()),
            }
        }
        Err(format!("the server did not start: {last}"))
    }

    /// A detached shell that stops the cluster and removes its folder once
    /// this process has exited.
    fn spawn_watchdog(&self) {
        let as_user = match &self.run_as {
            Some(user) => format!("runuser -u {user} -- "),
            None => String::new(),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {as_user}'{bin}/pg_ctl' -D '{data}' -m immediate stop >/dev/null 2>&1; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            bin = self.bin.display(),
            data = self.data().display(),
            dir = self.dir.display(),
        );
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The folder of `initdb` and `pg_ctl`.
fn find_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
        return Err(format!("PG_BIN={} has no initdb", dir.display()));
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max();
    if let Some((_, bin)) = newest {
        return Ok(bin);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("initdb"))
        .find(|p| p.is_file());
    if let Some(initdb) = on_path {
        // Follow a symlink to the folder that also holds pg_ctl.
        let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        if let Some(dir) = real.parent().filter(|d| d.join("pg_ctl").is_file()) {
            return Ok(dir.to_owned());
        }
    }
    Err(
        "PostgreSQL is not installed: no initdb under /usr/lib/postgresql/*/bin or on PATH. \
         Install it (Debian: apt-get install postgresql; .ci/run does) or set PG_BIN to the \
         folder holding initdb and pg_ctl. Tests that need it fail rather than skip."
            .into(),
    )
}

fn is_root() -> bool {
    id(&["-u"]).as_deref() == Some("0")
}

/// The uid and gid of `user`, if it exists.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let uid = id(&["-u", user])?.parse().ok()?;
    let gid = id(&["-g", user])?.parse().ok()?;
    Some((uid, gid))
}

fn id(args: &[&str]) -> Option<String> {
    let out = Command::new("id").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cluster answers with the password from its file, refuses a wrong
    /// one, and survives an immediate stop and a start with its data.
    #[test]
    fn a_cluster_starts_authenticates_and_restarts() {
        let cluster = Cluster::start();
        let db = cluster.fresh_database("t");
        let mut c = cluster.client(&db).unwrap();
        c.batch_execute("CREATE TABLE t (x INT); INSERT INTO t VALUES (7)")
            .unwrap();
        let wrong = postgres::Config::new()
            .host("127.0.0.1")
            .port(cluster.port())
            .user(USER)
            .password("wrong")
            .dbname(&db)
            .connect(postgres::NoTls);
        assert!(wrong.is_err(), "a wrong password was accepted");
        let file = std::fs::read_to_string(cluster.password_file()).unwrap();
        assert_eq!(file.trim_end(), cluster.password());
        cluster.stop();
        assert!(c.simple_query("SELECT 1").is_err(), "still up after stop");
        cluster.start_again();
        let mut c = cluster.client(&db).unwrap();
        let x: i32 = c.query_one("SELECT x FROM t", &[]).unwrap().get(0);
        assert_eq!(x, 7);
        let dir = cluster.dir.clone();
        drop(cluster);
        assert!(!dir.exists(), "the folder outlived the cluster");
    }
}
