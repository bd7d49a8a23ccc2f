//! A real PgBouncer (Debian's `pgbouncer` package) in front of the test PostgreSQL, in session
//! or transaction pooling, started for one test and stopped when dropped.
//!
//! PgBouncer 1.18 refuses the `options` startup parameter the other tests choose their schema
//! with, so clients log in as a role of the test's own whose `search_path` is the test's
//! schema (a role setting survives the `DISCARD ALL` between session-pool clients).

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{postgres_base_url, TestDb};

/// PgBouncer's `pool_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    Session,
    Transaction,
}

impl PoolMode {
    fn name(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        }
    }
}

/// A running PgBouncer; killed, and its role dropped, when dropped.
#[derive(Debug)]
pub struct PgBouncer {
    /// `sh`, which started PgBouncer and kills it when it gets TERM (from [`Drop`], or from
    /// the kernel when the test's thread ends: PgBouncer itself changes user, which clears a
    /// parent-death signal).
    wrapper: Child,
    port: u16,
    role: String,
    database: String,
    log: PathBuf,
}

impl PgBouncer {
    /// A PgBouncer on a free loopback port for the test database `t`, in `mode`, with
    /// `server_connections` server connections for all its clients.
    pub fn start(t: &TestDb, mode: PoolMode, server_connections: u32) -> PgBouncer {
        let schema = t
            .pg_schema()
            .expect("PgBouncer serves the PostgreSQL backend only");
        let role = format!("{schema}_role");
        let config: postgres::Config = postgres_base_url().parse().expect("the base url");
        let host = match &config.get_hosts()[0] {
            postgres::config::Host::Tcp(host) => host.clone(),
            #[allow(unreachable_patterns)]
            _ => panic!("PgBouncer tests need a TCP PostgreSQL url"),
        };
        let server_port = config.get_ports().first().copied().unwrap_or(5432);
        let database = config.get_dbname().unwrap_or("postgres").to_owned();
        t.exec(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN SUPERUSER; \
             ALTER ROLE {role} SET search_path = {schema}"
        ));
        let dir = t.dir.join(format!("pgbouncer-{}", mode.name()));
        std::fs::create_dir_all(&dir).expect("PgBouncer's directory");
        let users = dir.join("users.txt");
        std::fs::write(&users, format!("\"{role}\" \"\"\n")).expect("PgBouncer's users");
        let log = dir.join("pgbouncer.log");
        let mut last_log = String::new();
        // A free port can be taken between our look and PgBouncer's bind: try a few.
        for _ in 0..5 {
            let port = free_port();
            let ini = dir.join("pgbouncer.ini");
            std::fs::write(
                &ini,
                format!(
                    "[databases]\n\
                     {database} = host={host} port={server_port} dbname={database}\n\
                     [pgbouncer]\n\
                     listen_addr = 127.0.0.1\n\
                     listen_port = {port}\n\
                     unix_socket_dir =\n\
                     auth_type = trust\n\
                     auth_file = {users}\n\
                     pool_mode = {mode}\n\
                     default_pool_size = {server_connections}\n\
                     max_client_conn = 500\n\
                     server_login_retry = 1\n",
                    users = users.display(),
                    mode = mode.name(),
                ),
            )
            .expect("PgBouncer's configuration");
            let wrapper = spawn(&ini, &log);
            let mut bouncer = PgBouncer {
                wrapper,
                port,
                role: role.clone(),
                database: database.clone(),
                log: log.clone(),
            };
            if bouncer.wait_until_it_answers(Duration::from_secs(10)) {
                return bouncer;
            }
            last_log = bouncer.log();
            bouncer.stop();
        }
        panic!("PgBouncer did not start (is Debian's `pgbouncer` installed?)\n{last_log}");
    }

    /// The URL of the test database through this PgBouncer, with `query` (dj's keys, say)
    /// appended when not empty.
    pub fn url(&self, query: &str) -> String {
        let url = format!(
            "postgres://{}@127.0.0.1:{}/{}",
            self.role, self.port, self.database
        );
        if query.is_empty() {
            url
        } else {
            format!("{url}?{query}")
        }
    }

    /// What PgBouncer logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_until_it_answers(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.wrapper.try_wait() {
                return false;
            }
            let mut config: postgres::Config = self.url("").parse().expect("its url");
            config.connect_timeout(Duration::from_secs(1));
            if let Ok(mut client) = config.connect(postgres::NoTls) {
                if client.simple_query("SELECT 1").is_ok() {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn stop(&mut self) {
        // SAFETY: sends TERM to the wrapper this struct started and has not reaped yet.
        unsafe {
            libc::kill(self.wrapper.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.wrapper.wait();
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.stop();
        if let Ok(mut client) = postgres::Client::connect(&postgres_base_url(), postgres::NoTls) {
            let role = &self.role;
            let _ = client.batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"));
        }
    }
}

/// `pgbouncer -u postgres INI` under a shell that kills it on TERM (PgBouncer refuses to run
/// as root).
fn spawn(ini: &std::path::Path, log: &std::path::Path) -> Child {
    use std::os::unix::process::CommandExt as _;
    let out = File::create(log).expect("PgBouncer's log");
    let mut command = Command::new("sh");
    command
        .args([
            "-c",
            "PATH=\"$PATH:/usr/sbin\"; pgbouncer -u postgres \"$0\" & b=$!; \
             trap 'kill -TERM $b 2>/dev/null; wait $b; exit 0' TERM; wait $b",
        ])
        .arg(ini)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup log"))
        .stderr(out);
    // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    command.spawn().expect("start sh")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}
