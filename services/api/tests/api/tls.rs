//! PostgreSQL over TLS, for real: a private cluster with `ssl = on`, a CA and a server
//! certificate made by the test, and `pg_hba.conf` allowing only `hostssl … scram-sha-256` with
//! a password, as managed servers do (`aim_store::testing::TlsCluster`). The `aim` binary serves and records calls with `require`
//! and `verify-full`; its commands connect with `verify-ca` and `verify-full`; a wrong host
//! name, a wrong password and `disable` each stop it at start with one line naming the cause.
//! The password appears in no log line, error, status or metric.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aim_connect::DatabaseSettings;
use aim_store::testing::{PlainTcp, TlsCluster};
use sqlx::{ConnectOptions, Connection};

use crate::binary::{free_port, get, send, text, wait_exit, wait_until_healthy};

const AIM: &str = env!("CARGO_BIN_EXE_aim");
/// Characters that must be percent-encoded in a URL, to prove both forms carry them.
const DB_PASSWORD: &str = "tls-p@ss/w0rd:secret";
const DB_PASSWORD_IN_URL: &str = "tls-p%40ss%2Fw0rd%3Asecret";
const ADMIN_EMAIL: &str = "ops@tls.test";
const ADMIN_PASSWORD: &str = "admin password of the tls test";

struct Server(TlsCluster);

impl Server {
    fn url(&self, host: &str, password: &str, params: &str) -> String {
        format!(
            "postgres://aim:{password}@{host}:{}/aim?{params}",
            self.0.port()
        )
    }

    /// `aim` with no database setting of its own but what `vars` say.
    fn aim(&self, name: &str, vars: &[(&str, &str)], args: &[&str]) -> (Command, u16) {
        let data = self.0.dir().join(name);
        std::fs::create_dir_all(&data).expect("data folder");
        let port = free_port();
        let mut command = Command::new(AIM);
        command.args(args);
        for (key, _) in std::env::vars() {
            if key == "DATABASE_URL" || key.starts_with("POSTGRES_") || key.starts_with("PG") {
                command.env_remove(key);
            }
        }
        command
            .env("AIM_DATA_DIR", &data)
            .env("AIM_LISTEN", format!("127.0.0.1:{port}"))
            .env("AIM_METRICS_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("AIM_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("AIM_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("AIM_ANALYTICS_FLUSH_MS", "20")
            .env("AIM_DB_CONNECT_WAIT_MS", "20000")
            .env("AIM_SHUTDOWN_GRACE_MS", "5000")
            .env("RUST_LOG", "info")
            .envs(vars.iter().copied())
            .stdin(Stdio::null());
        (command, port)
    }

    /// Rows of `api_calls` for the agent, read as the superuser over the socket.
    async fn calls_of(&self, agent: &str) -> i64 {
        let mut conn = self
            .0
            .superuser()
            .sqlx_options()
            .connect()
            .await
            .expect("admin connection");
        let n = sqlx::query_scalar("SELECT count(*) FROM api_calls WHERE agent_id = $1::uuid")
            .bind(agent)
            .fetch_one(&mut conn)
            .await
            .expect("count");
        conn.close().await.expect("close");
        n
    }

    /// Serves with `vars`, makes calls with an agent key, stops, and returns the agent's id
    /// and everything the process wrote and answered, for the password check.
    async fn serve_and_record(&self, name: &str, vars: &[(&str, &str)]) -> (String, String) {
        let (mut command, port) = self.aim(name, vars, &["serve"]);
        let log = self.0.dir().join(format!("{name}.log"));
        let mut child: Child = command
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(std::fs::File::create(log.with_extension("err")).expect("log"))
            .spawn()
            .expect("aim serve");
        wait_until_healthy(port, &mut child).await;
        let mut seen = String::new();

        let login = format!("{{\"email\":\"{ADMIN_EMAIL}\",\"password\":\"{ADMIN_PASSWORD}\"}}");
        let (status, body) = call(port, "POST", "/api/v1/auth/login", None, Some(&login)).await;
        assert_eq!(status, 200, "{body}");
        let token = body["token"].as_str().expect("token").to_owned();
        let (status, agent) = call(
            port,
            "POST",
            "/api/v1/agents",
            Some(&token),
            Some(&format!("{{\"name\":\"{name}\"}}")),
        )
        .await;
        assert_eq!(status, 201, "{agent}");
        let id = agent["id"].as_str().expect("id").to_owned();
        let (status, key) = call(
            port,
            "POST",
            &format!("/api/v1/agents/{id}/api-keys"),
            Some(&token),
            Some("{}"),
        )
        .await;
        assert_eq!(status, 201, "{key}");
        let key = key["api_key"].as_str().expect("key").to_owned();
        for _ in 0..5 {
            let (status, body) = call(
                port,
                "GET",
                &format!("/api/v1/agents/{id}"),
                Some(&key),
                None,
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
        let (_, status_body) = get(port, "/api/v1/status").await.expect("status");
        seen.push_str(&status_body.to_string());
        let metrics_port = command
            .get_envs()
            .find(|(k, _)| *k == "AIM_METRICS_LISTEN")
            .and_then(|(_, v)| v?.to_str()?.rsplit(':').next()?.parse::<u16>().ok())
            .expect("metrics port");
        seen.push_str(&metrics(metrics_port).await);

        let stopped = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(stopped.success());
        let exit = wait_exit(&mut child, Duration::from_secs(60));
        let logs = format!(
            "{}{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            std::fs::read_to_string(log.with_extension("err")).unwrap_or_default()
        );
        assert!(exit.success(), "{exit}: {logs}");
        seen.push_str(&logs);
        (id, seen)
    }

    /// Runs `aim serve` expecting it to stop at start; returns what it printed.
    fn fails_at_start(&self, name: &str, vars: &[(&str, &str)]) -> String {
        let (mut command, _) = self.aim(name, vars, &["serve"]);
        let err = self.0.dir().join(format!("{name}.err"));
        let mut child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).expect("log"))
            .spawn()
            .expect("aim serve");
        let exit = wait_exit(&mut child, Duration::from_secs(60));
        let printed = std::fs::read_to_string(&err).expect("stderr");
        assert!(!exit.success(), "{name}: must not start\n{printed}");
        printed
    }
}

/// A request with an optional bearer credential and JSON body; the status and JSON answer.
async fn call(
    port: u16,
    method: &str,
    path: &str,
    credential: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(credential) = credential {
        request.push_str(&format!("Authorization: Bearer {credential}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    send(port, &request).await.expect("an answer")
}

async fn metrics(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("metrics listener");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(text.contains("aim_"), "{text}");
    text
}

/// The last line of what a failed start printed: the one an operator reads (shown with
/// `--nocapture`).
fn last_line(printed: &str) -> &str {
    let line = printed.trim_end().lines().last().unwrap_or_default();
    eprintln!("{line}");
    line
}

#[tokio::test]
async fn aim_connects_over_tls_as_libpq_would_and_refuses_what_libpq_would() {
    let server = Server(TlsCluster::start(DB_PASSWORD, PlainTcp::Refused).await);
    let ca = server.0.ca_file().to_str().expect("UTF-8 path");
    let port = server.0.port().to_string();

    // require, from the deployment guide's variables.
    let (agent, seen) = server
        .serve_and_record(
            "require",
            &[
                ("POSTGRES_HOST", "127.0.0.1"),
                ("POSTGRES_PORT", &port),
                ("POSTGRES_USER", "aim"),
                ("POSTGRES_PASSWORD", DB_PASSWORD),
                ("POSTGRES_DB", "aim"),
                ("POSTGRES_SSL_MODE", "require"),
            ],
        )
        .await;
    assert_eq!(
        server.calls_of(&agent).await,
        5,
        "the calls went through the pipeline"
    );
    assert!(!seen.contains(DB_PASSWORD), "the password leaked:\n{seen}");

    // verify-full, from a URL with the CA file.
    let url = server.url(
        "localhost",
        DB_PASSWORD_IN_URL,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let (agent, seen) = server
        .serve_and_record("verify-full", &[("DATABASE_URL", &url)])
        .await;
    assert_eq!(server.calls_of(&agent).await, 5);
    assert!(
        !seen.contains(DB_PASSWORD) && !seen.contains(DB_PASSWORD_IN_URL),
        "{seen}"
    );

    // The commands: the rollups check over tokio-postgres with verify-full, the migration
    // ledger over sqlx with verify-ca on an address the certificate does not name.
    let (mut verify, _) = server.aim(
        "verify-cli",
        &[("DATABASE_URL", &url)],
        &["rollups", "verify"],
    );
    let out = verify.output().expect("aim rollups verify");
    assert!(out.status.success(), "{}", text(&out));
    let by_address = server.url(
        "127.0.0.1",
        DB_PASSWORD_IN_URL,
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    );
    let (mut status, _) = server.aim(
        "verify-ca-cli",
        &[("DATABASE_URL", &by_address)],
        &["migrate", "status"],
    );
    let out = status.output().expect("aim migrate status");
    assert!(out.status.success(), "{}", text(&out));

    // What must fail, at once and saying why.
    let wrong_name = server.url(
        "127.0.0.1",
        DB_PASSWORD_IN_URL,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let printed = server.fails_at_start("wrong-name", &[("DATABASE_URL", &wrong_name)]);
    let line = last_line(&printed);
    assert!(
        line.starts_with("aim: error:") && line.contains("not valid for name"),
        "{printed}"
    );
    let unknown_ca = server.url("localhost", DB_PASSWORD_IN_URL, "sslmode=verify-full");
    let printed = server.fails_at_start("unknown-ca", &[("DATABASE_URL", &unknown_ca)]);
    assert!(last_line(&printed).contains("UnknownIssuer"), "{printed}");
    let wrong_password = server.url("localhost", "not-the-password", "sslmode=require");
    let printed = server.fails_at_start("wrong-password", &[("DATABASE_URL", &wrong_password)]);
    assert!(
        last_line(&printed).contains("password authentication failed for user \"aim\""),
        "{printed}"
    );
    let printed = server.fails_at_start(
        "disable",
        &[
            ("POSTGRES_HOST", "127.0.0.1"),
            ("POSTGRES_PORT", &port),
            ("POSTGRES_USER", "aim"),
            ("POSTGRES_PASSWORD", DB_PASSWORD),
            ("POSTGRES_SSL_MODE", "disable"),
        ],
    );
    let line = last_line(&printed);
    assert!(
        line.contains("no pg_hba.conf entry") && line.contains("no encryption"),
        "{printed}"
    );
    assert!(!printed.contains(DB_PASSWORD), "{printed}");

    server.0.stop().await;
}

#[test]
fn a_missing_root_certificate_file_is_named() {
    let missing = Path::new("/nonexistent/ca.pem");
    let settings = DatabaseSettings::from_url(&format!(
        "postgres://u@localhost/d?sslmode=verify-full&sslrootcert={}",
        missing.display()
    ))
    .expect("valid");
    let err = settings.tokio_postgres().expect_err("no such file");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
