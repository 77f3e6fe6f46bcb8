//! The PostgreSQL backend: one ledger shared by several rollcall replicas.
//!
//! **Concurrency.** A commit is a `READ COMMITTED` transaction that first
//! locks rows of `ledger_locks` with `SELECT … FOR UPDATE`, in (kind, name)
//! order: one for each dataset of the spend's population (the spend's own
//! dataset included) and one for the population. Only then does it look
//! the query key up, read the three balances and check them, and insert the
//! release and the spend (whose trigger adds to the totals). Why this is
//! enough: every total a commit reads is written only by commits that hold
//! one of its locks. `analyst_totals (d, a)` and `dataset_totals (d)` change
//! only by spends on `d`, which lock `d`; `population_totals (p, d)` by
//! spends charged to `p`, which lock `p`. So between the reads and the
//! commit nothing the check relied on can change, and under `READ
//! COMMITTED` each statement after the locks sees every commit that
//! released them. This holds even when replicas run different configs for
//! a while (a dataset moving between populations): each locks what its own
//! config makes it read. Locks taken in one global order cannot deadlock
//! (a deadlock or serialization failure would still be retried).
//!
//! Why row locks rather than `SERIALIZABLE` with retries: a commit waits
//! its turn instead of being aborted and redone, so its time inside the
//! release's padded window varies less, and no retry budget can run out
//! under contention; the lock rows say in the schema what is serialised.
//!
//! **Connections** come from a pool (r2d2) that validates a connection when
//! it is taken out (a round trip) and drops broken ones, so after the
//! database restarts the next request reconnects by itself. When no
//! connection can be had within `connect_timeout`, or the database drops
//! the connection, the error is [`PrivacyError::LedgerUnavailable`]: the
//! server answers 503 `ledger_unavailable`, and nothing is released.
//! Every call is a network round trip: call from blocking threads only.

#[macro_use]
mod sql;
mod commit;
mod schema;
mod views;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, GenericClient, NoTls, Statement};

use super::copy::LedgerTotals;
use super::{
    Backend, Balances, Caps, CommitOutcome, DatasetSummary, NewRelease, PostgresSettings, Record,
    Sharing, SpendSummary, StoredRelease, check_version,
};
use crate::{Epsilon, PrivacyError};

/// Session settings of every connection. A commit waits for another's lock
/// at most `lock_timeout` (then the ledger counts as unavailable rather than
/// hanging a request), and a connection left inside a transaction (its
/// process stopped) releases its locks after `idle_in_transaction…`.
const SESSION: &str = "SET lock_timeout = '10s'; \
                       SET idle_in_transaction_session_timeout = '60s';";

/// Statements prepared on one connection, by their SQL.
type Prepared = HashMap<&'static str, Statement>;

/// A pooled connection and the statements prepared on it (so a commit's
/// statements cost one round trip each, not two).
pub(crate) struct Conn {
    client: Client,
    prepared: Prepared,
}

/// Makes and checks the pool's connections.
struct Manager {
    config: postgres::Config,
    read_only: bool,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        let mut client = self.config.connect(NoTls)?;
        client.batch_execute(SESSION)?;
        if self.read_only {
            client.batch_execute("SET default_transaction_read_only = on")?;
        }
        Ok(Conn {
            client,
            prepared: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}

/// A PostgreSQL ledger: a pool of connections and the lock rows known to
/// exist.
pub(crate) struct Postgres {
    pool: r2d2::Pool<Manager>,
    place: String,
    /// Lock rows seen to exist (they are never deleted), so a commit does
    /// not insert them again.
    locks: Mutex<HashSet<(&'static str, String)>>,
}

impl Postgres {
    /// Connects once (so that a wrong URL, password or database is reported
    /// as such, not as a pool timeout), migrates (or, `read_only`, checks the
    /// version), and builds the pool.
    pub(crate) fn open(
        settings: &PostgresSettings,
        read_only: bool,
    ) -> Result<(Postgres, Vec<i64>), PrivacyError> {
        let place = settings.redacted_url();
        let config = client_config(settings)?;
        let manager = Manager { config, read_only };
        let mut first = r2d2::ManageConnection::connect(&manager).map_err(|e| {
            PrivacyError::LedgerUnavailable(format!("cannot connect to {place}: {}", describe(&e)))
        })?;
        let applied = if read_only {
            let version = schema::version(&mut first.client)?;
            check_version(&place, version)?;
            Vec::new()
        } else {
            schema::migrate(&mut first.client)?
        };
        drop(first);
        let size = settings.pool_size.max(1);
        let pool = r2d2::Pool::builder()
            .max_size(size)
            .min_idle(Some(size.min(2)))
            .connection_timeout(settings.connect_timeout)
            // Failures reach the caller as errors; r2d2 need not log them too.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(manager);
        let ledger = Postgres {
            pool,
            place,
            locks: Mutex::default(),
        };
        Ok((ledger, applied))
    }

    /// A connection, or `LedgerUnavailable` once `connect_timeout` passed.
    fn conn(&self) -> Result<r2d2::PooledConnection<Manager>, PrivacyError> {
        self.pool.get().map_err(|e| {
            PrivacyError::LedgerUnavailable(format!("no connection to {}: {e}", self.place))
        })
    }
}

/// The client's configuration: the URL, the password from its file, the
/// timeout; refuses what this build cannot do (TLS).
fn client_config(settings: &PostgresSettings) -> Result<postgres::Config, PrivacyError> {
    let mut config = parse_url(&settings.url)?;
    if let Some(file) = &settings.password_file {
        if config.get_password().is_some() {
            return Err(PrivacyError::Ledger(
                "the URL has a password and a password_file is given: keep it in one place \
                 (the file)"
                    .into(),
            ));
        }
        let text = std::fs::read_to_string(file)
            .map_err(|e| PrivacyError::Ledger(format!("password_file {}: {e}", file.display())))?;
        let password = text.lines().next().unwrap_or("");
        if password.is_empty() {
            return Err(PrivacyError::Ledger(format!(
                "password_file {}: the first line is empty",
                file.display()
            )));
        }
        config.password(password);
    }
    config
        .connect_timeout(settings.connect_timeout)
        .keepalives_idle(Duration::from_secs(30));
    if config.get_application_name().is_none() {
        config.application_name("rollcall");
    }
    Ok(config)
}

/// The URL as a client configuration. Errors never repeat the URL (it may
/// hold a password).
pub(crate) fn parse_url(url: &str) -> Result<postgres::Config, PrivacyError> {
    let config: postgres::Config = url
        .parse()
        .map_err(|e| PrivacyError::Ledger(format!("not a PostgreSQL URL: {e}")))?;
    if config.get_hosts().is_empty() {
        return Err(PrivacyError::Ledger(
            "the PostgreSQL URL names no host (postgres://user@host:port/database)".into(),
        ));
    }
    if config.get_ssl_mode() == postgres::config::SslMode::Require {
        return Err(PrivacyError::Ledger(
            "sslmode=require: this build speaks to PostgreSQL without TLS; reach the \
             database over a private network or a local TLS tunnel"
                .into(),
        ));
    }
    Ok(config)
}

/// `postgres://user@host:port/database` without the password, for logs and
/// messages.
pub(crate) fn redacted(url: &str) -> String {
    let Ok(config) = url.parse::<postgres::Config>() else {
        return "postgres://(unreadable URL)".into();
    };
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// SQLSTATEs that mean the database cannot be used now (rather than that a
/// statement is wrong): connection exceptions, shutdowns, too many
/// connections, a lock not granted within `lock_timeout`, a cancelled
/// statement.
fn unavailable(code: &SqlState) -> bool {
    code.code().starts_with("08")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::QUERY_CANCELED,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
        ]
        .contains(code)
}

/// Worth running the whole transaction again.
fn retryable(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// An error the server answered with is about the statement (`Ledger`),
/// unless its SQLSTATE says the database is unusable; an error without one
/// is the connection's (`LedgerUnavailable`): refused, reset, closed.
impl From<postgres::Error> for PrivacyError {
    fn from(e: postgres::Error) -> Self {
        let text = describe(&e);
        match e.code() {
            Some(code) if !unavailable(code) => PrivacyError::Ledger(text),
            _ => PrivacyError::LedgerUnavailable(text),
        }
    }
}

/// The server's message and SQLSTATE for a database error (the client's
/// `Display` says only "db error"), the error and its causes otherwise.
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// A client (or transaction) and the statements prepared on its connection.
pub(crate) struct Session<'a, C: GenericClient> {
    client: &'a mut C,
    prepared: &'a mut Prepared,
}

impl<C: GenericClient> Session<'_, C> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.prepared.insert(sql, s.clone());
        Ok(s)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, postgres::Error> {
        let s = self.statement(sql)?;
        self.client.query(&s, params)
    }

    fn query_one(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<postgres::Row, postgres::Error> {
        let s = self.statement(sql)?;
        self.client.query_one(&s, params)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<postgres::Row>, postgres::Error> {
        let s = self.statement(sql)?;
        self.client.query_opt(&s, params)
    }

    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let s = self.statement(sql)?;
        self.client.execute(&s, params)
    }
}

impl Conn {
    /// A session outside any transaction (each statement commits alone).
    fn session(&mut self) -> Session<'_, Client> {
        Session {
            client: &mut self.client,
            prepared: &mut self.prepared,
        }
    }
}

/// Amounts are stored as BIGINT nano-ε; CHECK constraints and the triggers
/// keep them non-negative.
fn nanos(value: i64) -> Epsilon {
    Epsilon::from_nanos(u64::try_from(value).unwrap_or(0))
}

impl Backend for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn find_release(
        &self,
        dataset: &str,
        query_key: &str,
        sharing: Sharing<'_>,
    ) -> Result<Option<StoredRelease>, PrivacyError> {
        let mut conn = self.conn()?;
        Ok(commit::find(
            &mut conn.session(),
            dataset,
            query_key,
            sharing,
        )?)
    }

    fn balances(&self, caps: &Caps) -> Result<Balances, PrivacyError> {
        let mut conn = self.conn()?;
        Ok(commit::balances(&mut conn.session(), caps)?)
    }

    fn commit_release(
        &self,
        caps: &Caps,
        sharing: Sharing<'_>,
        release: &NewRelease,
        release_id: String,
    ) -> Result<CommitOutcome, PrivacyError> {
        Postgres::commit_release(self, caps, sharing, release, release_id)
    }

    fn rehearse_commit(&self, bytes: usize) -> Result<(), PrivacyError> {
        Postgres::rehearse_commit(self, bytes)
    }

    fn spent(&self, analyst: &str, dataset: &str) -> Result<Epsilon, PrivacyError> {
        let mut conn = self.conn()?;
        Ok(commit::analyst_spent(
            &mut conn.session(),
            analyst,
            dataset,
        )?)
    }

    fn dataset_spent(&self, dataset: &str) -> Result<Epsilon, PrivacyError> {
        let mut conn = self.conn()?;
        Ok(commit::dataset_spent(&mut conn.session(), dataset)?)
    }

    fn population_spent(
        &self,
        population: &str,
        members: &[String],
    ) -> Result<Epsilon, PrivacyError> {
        let mut conn = self.conn()?;
        Ok(commit::population_spent(
            &mut conn.session(),
            population,
            members,
        )?)
    }

    fn releases_for(&self, analyst: &str) -> Result<Vec<StoredRelease>, PrivacyError> {
        let mut conn = self.conn()?;
        Ok(views::releases_for(&mut conn.session(), analyst)?)
    }

    fn spend_summary(&self) -> Result<Vec<SpendSummary>, PrivacyError> {
        let mut conn = self.conn()?;
        Ok(views::spend_summary(&mut conn.session())?)
    }

    fn dataset_summary(&self) -> Result<Vec<DatasetSummary>, PrivacyError> {
        let mut conn = self.conn()?;
        Ok(views::dataset_summary(&mut conn.session())?)
    }

    fn releases_since(&self, since: Option<&str>) -> Result<Vec<StoredRelease>, PrivacyError> {
        let mut conn = self.conn()?;
        Ok(views::releases_since(&mut conn.session(), since)?)
    }

    fn check(&self) -> Result<(), PrivacyError> {
        let mut conn = self.conn()?;
        conn.client.simple_query("SELECT 1")?;
        Ok(())
    }

    fn export(
        &self,
        sink: &mut dyn FnMut(Record) -> Result<(), PrivacyError>,
    ) -> Result<LedgerTotals, PrivacyError> {
        Postgres::export(self, sink)
    }

    fn import(&self, source: &dyn Backend) -> Result<LedgerTotals, PrivacyError> {
        Postgres::import(self, source)
    }

    fn totals(&self) -> Result<LedgerTotals, PrivacyError> {
        let mut conn = self.conn()?;
        Ok(views::totals(&mut conn.session())?)
    }

    #[cfg(test)]
    fn execute_raw(&self, sql: &str) -> Result<(), PrivacyError> {
        Ok(self.conn()?.client.batch_execute(sql)?)
    }

    #[cfg(test)]
    fn count_rows(&self, table: &str) -> i64 {
        self.conn()
            .unwrap()
            .client
            .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .unwrap()
            .get(0)
    }
}
