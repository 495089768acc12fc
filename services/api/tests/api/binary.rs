//! The `aim` binary with no `DATABASE_URL`: it runs its own cluster, refuses a second owner of
//! the data folder, lets `aim migrate status` visit, adopts its server after a crash, and stops
//! it on SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AIM: &str = env!("CARGO_BIN_EXE_aim");

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn aim(data_dir: &Path, port: u16, args: &[&str]) -> Command {
    let mut command = Command::new(AIM);
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("JWT_SECRET")
        .env("AIM_DATA_DIR", data_dir)
        .env("AIM_LISTEN", format!("127.0.0.1:{port}"))
        .env("AIM_METRICS_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("AIM_SHUTDOWN_GRACE_MS", "5000")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    command
}

/// Logs go to `<log>`, standard output (the first admin's credentials) to `<log>.out`.
fn spawn_serve(data_dir: &Path, port: u16, log: &str) -> Child {
    let err = std::fs::File::create(data_dir.join(log)).expect("log file");
    let out = std::fs::File::create(data_dir.join(format!("{log}.out"))).expect("out file");
    aim(data_dir, port, &["serve"])
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn aim serve")
}

/// A bare HTTP/1.1 GET, enough to read a status body without an HTTP client dependency.
pub(crate) async fn get(port: u16, path: &str) -> Option<(u16, serde_json::Value)> {
    send(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    )
    .await
}

pub(crate) async fn post_json(
    port: u16,
    path: &str,
    body: &serde_json::Value,
) -> Option<(u16, serde_json::Value)> {
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    send(port, &request).await
}

pub(crate) async fn send(port: u16, request: &str) -> Option<(u16, serde_json::Value)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.ok()?;
    let text = String::from_utf8(raw).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split("\r\n\r\n").nth(1)?;
    Some((status, serde_json::from_str(body).ok()?))
}

pub(crate) async fn wait_until_healthy(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("aim serve exited early with {status}");
        }
        if let Some((200, body)) = get(port, "/api/v1/status").await
            && body["services"]["database"] == "healthy"
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("aim serve did not become healthy within 90 s");
}

pub(crate) fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "aim did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn serve_runs_its_own_cluster_and_survives_a_crash() {
    use std::os::unix::fs::PermissionsExt;
    // Under the system temporary folder, open to the `postgres` user when the tests run as root.
    let dir = tempfile::Builder::new()
        .prefix("aim-bin-")
        .tempdir_in(std::env::temp_dir())
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let port = free_port();

    let mut first = spawn_serve(&data, port, "first.log");
    wait_until_healthy(port, &mut first).await;

    // The first start created admin@localhost and printed its password once.
    let out = std::fs::read_to_string(data.join("first.log.out")).expect("stdout");
    let password = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("password:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no password printed: {out}"));
    let (status, body) = post_json(
        port,
        "/api/v1/auth/login",
        &serde_json::json!({ "email": "admin@localhost", "password": password }),
    )
    .await
    .expect("login answered");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["role"], "admin");
    let log = std::fs::read_to_string(data.join("first.log")).expect("log");
    assert!(!log.contains(password), "the password is never logged");

    let made = aim(
        &data,
        free_port(),
        &["bootstrap", "--org", "Globex", "--email", "ops@globex.test"],
    )
    .output()
    .expect("aim bootstrap");
    assert!(made.status.success(), "{}", text(&made));
    let stdout = String::from_utf8_lossy(&made.stdout);
    let generated = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no generated password: {stdout}"));
    let (status, body) = post_json(
        port,
        "/api/v1/auth/login",
        &serde_json::json!({ "email": "ops@globex.test", "password": generated }),
    )
    .await
    .expect("login answered");
    assert_eq!(status, 200, "{body}");

    let second = aim(&data, free_port(), &["serve"])
        .output()
        .expect("run a second aim");
    assert!(!second.status.success(), "a second owner must be refused");
    assert!(
        text(&second).contains("in use by another aim process"),
        "{}",
        text(&second)
    );

    let status = aim(&data, free_port(), &["migrate", "status"])
        .output()
        .expect("aim migrate status");
    assert!(status.status.success(), "{}", text(&status));
    let stdout = String::from_utf8_lossy(&status.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let ups = aim_store::MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .count();
    assert_eq!(lines.len(), ups, "{stdout}");
    assert!(lines.iter().all(|l| l.contains("applied")), "{stdout}");

    let verify = aim(&data, free_port(), &["rollups", "verify"])
        .output()
        .expect("aim rollups verify");
    assert!(verify.status.success(), "{}", text(&verify));
    let retention = aim(&data, free_port(), &["retention", "run"])
        .output()
        .expect("aim retention run");
    assert!(retention.status.success(), "{}", text(&retention));
    assert!(
        text(&retention).contains("no api_calls partition older than 90 days"),
        "{}",
        text(&retention)
    );

    // A crash leaves the server running; the next start adopts it.
    first.kill().expect("SIGKILL");
    first.wait().expect("reap");
    assert!(
        data.join("pg/postmaster.pid").exists(),
        "server outlives a crash of aim"
    );

    let mut third = spawn_serve(&data, port, "third.log");
    wait_until_healthy(port, &mut third).await;
    let log = std::fs::read_to_string(data.join("third.log")).expect("log");
    assert!(log.contains("adopting"), "{log}");
    let out = std::fs::read_to_string(data.join("third.log.out")).expect("stdout");
    assert!(
        !out.contains("password"),
        "credentials are printed only on the first start: {out}"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &third.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let exit = wait_exit(&mut third, Duration::from_secs(60));
    let log = std::fs::read_to_string(data.join("third.log")).expect("log");
    assert!(exit.success(), "{exit}: {log}");
    assert!(log.contains("private PostgreSQL cluster stopped"), "{log}");
    assert!(
        !data.join("pg/postmaster.pid").exists(),
        "server stopped on exit"
    );
}

/// `aim migrate down`: without `--yes` it only lists, with it it reverts, and `migrate status`
/// shows the reverted migration as pending; an unknown version is refused.
#[tokio::test]
async fn migrate_down_lists_then_reverts_and_status_shows_it() {
    use secrecy::ExposeSecret;
    let db = aim_store::testing::TestDatabase::create().await;
    let url = db.url();
    let run = |args: &[&str]| {
        Command::new(AIM)
            .args(args)
            .env("DATABASE_URL", url.expose_secret())
            .env("RUST_LOG", "warn")
            .output()
            .expect("aim")
    };
    let ups: Vec<i64> = aim_store::MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    let (target, newest) = (ups[ups.len() - 2], ups[ups.len() - 1]);

    let listed = run(&["migrate", "down", "--to", &target.to_string()]);
    assert!(
        !listed.status.success(),
        "without --yes nothing is reverted"
    );
    assert!(
        text(&listed).contains(&newest.to_string()),
        "{}",
        text(&listed)
    );
    let status = run(&["migrate", "status"]);
    assert!(!text(&status).contains("pending"), "{}", text(&status));

    let reverted = run(&["migrate", "down", "--to", &target.to_string(), "--yes"]);
    assert!(reverted.status.success(), "{}", text(&reverted));
    assert!(
        text(&reverted).contains(&format!("reverted {newest}")),
        "{}",
        text(&reverted)
    );
    let status = run(&["migrate", "status"]);
    let pending: Vec<String> = String::from_utf8_lossy(&status.stdout)
        .lines()
        .filter(|l| l.contains("pending"))
        .map(str::to_owned)
        .collect();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert!(pending[0].contains(&newest.to_string()), "{pending:?}");

    let unknown = run(&["migrate", "down", "--to", "123"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("no migration has version 123"),
        "{}",
        text(&unknown)
    );
    let up = run(&["migrate", "up"]);
    assert!(up.status.success(), "{}", text(&up));
}
