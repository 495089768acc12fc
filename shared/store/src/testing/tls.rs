//! A private PostgreSQL cluster that speaks TLS the way managed servers do: `ssl = on` with a
//! server certificate signed by a CA made here (issued for `localhost` only, so `127.0.0.1` is
//! a wrong host name for `verify-full`), a role with a SCRAM password, and `pg_hba.conf`
//! allowing TCP only with TLS and that password (optionally plain TCP with the password too,
//! for comparing the two). The superuser keeps the Unix socket, with `trust`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aim_connect::{DatabaseSettings, Host, SslMode};
use aim_local_pg::{LocalCluster, ShutdownMode};
use secrecy::SecretString;
use sqlx::{ConnectOptions, Connection};

use crate::MIGRATOR;

/// The role the service logs in as, and the database it owns (migrated).
pub const TLS_USER: &str = "aim";
pub const TLS_DATABASE: &str = "aim";

/// The running cluster; [`TlsCluster::stop`] stops it (dropping it stops it too).
pub struct TlsCluster {
    cluster: LocalCluster,
    port: u16,
    password: String,
    ca_file: PathBuf,
    dir: tempfile::TempDir,
}

/// What `pg_hba.conf` lets in over TCP besides TLS with a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainTcp {
    /// `hostssl` lines only, as managed servers that require TLS.
    Refused,
    /// `host` lines too (the same password), so one server serves both for a comparison.
    Allowed,
}

/// A CA, and a server certificate (and its key) it signed for `localhost`.
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(DnType::CommonName, "AIM test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca.self_signed(&ca_key).expect("CA certificate");
    let server_key = KeyPair::generate().expect("server key");
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server = server
        .signed_by(&server_key, &ca, &ca_key)
        .expect("server certificate");
    (ca.pem(), server.pem(), server_key.serialize_pem())
}

impl TlsCluster {
    /// Starts the cluster on a free port of `127.0.0.1`, creates the role `aim` with
    /// `password` and its migrated database `aim`.
    pub async fn start(password: &str, plain: PlainTcp) -> Self {
        aim_connect::install_crypto_provider();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let (cluster, dir) = super::private_cluster("aim-tls-", Some(port)).await;

        let admin = DatabaseSettings::from_url(&cluster.admin_url()).expect("admin URL");
        let mut conn = admin
            .sqlx_options()
            .connect()
            .await
            .expect("admin connection");
        let quoted: String = sqlx::query_scalar("SELECT quote_literal($1)")
            .bind(password)
            .fetch_one(&mut conn)
            .await
            .expect("quote");
        for sql in [
            "ALTER SYSTEM SET password_encryption = 'scram-sha-256'".to_owned(),
            "SELECT pg_reload_conf()".to_owned(),
            format!("CREATE ROLE {TLS_USER} LOGIN PASSWORD {quoted}"),
            format!("CREATE DATABASE {TLS_DATABASE} OWNER {TLS_USER}"),
            "ALTER SYSTEM SET ssl = on".to_owned(),
            "ALTER SYSTEM SET ssl_cert_file = 'server.crt'".to_owned(),
            "ALTER SYSTEM SET ssl_key_file = 'server.key'".to_owned(),
        ] {
            sqlx::query(&sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        conn.close().await.expect("close");

        let (ca, cert, key) = certificates();
        cluster
            .write_file("server.crt", cert.as_bytes(), 0o644)
            .expect("server certificate");
        // PostgreSQL refuses a key anyone but its owner can read.
        cluster
            .write_file("server.key", key.as_bytes(), 0o600)
            .expect("server key");
        let mut hba = String::from(
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostssl all all ::1/128 scram-sha-256\n",
        );
        if plain == PlainTcp::Allowed {
            hba.push_str(
                "hostnossl all all 127.0.0.1/32 scram-sha-256\n\
                 hostnossl all all ::1/128 scram-sha-256\n",
            );
        }
        cluster
            .write_file("pg_hba.conf", hba.as_bytes(), 0o600)
            .expect("pg_hba.conf");
        cluster
            .restart(ShutdownMode::Fast, Duration::ZERO)
            .await
            .expect("restart with TLS");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca).expect("CA file");

        // Migrated by its owner, over the socket.
        let mut owner = admin.with_database(TLS_DATABASE);
        owner.user = TLS_USER.to_owned();
        let mut conn = owner
            .sqlx_options()
            .connect()
            .await
            .expect("owner connection");
        MIGRATOR.run(&mut conn).await.expect("migrations");
        conn.close().await.expect("close");
        Self {
            cluster,
            port,
            password: password.to_owned(),
            ca_file,
            dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA's certificate, PEM: what `sslrootcert` names.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// A folder that lives as long as the cluster, for the test's own files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The service's settings over TCP to `host` with `mode` (and the CA as `sslrootcert`
    /// for the verifying modes).
    pub fn settings(&self, host: &str, mode: SslMode) -> DatabaseSettings {
        let mut settings = DatabaseSettings::new(Host::Tcp(host.to_owned()));
        settings.port = self.port;
        settings.user = TLS_USER.to_owned();
        settings.password = Some(SecretString::from(self.password.clone()));
        settings.database = TLS_DATABASE.to_owned();
        settings.ssl_mode = mode;
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) {
            settings.ssl_root_cert = Some(self.ca_file.clone());
        }
        settings
    }

    /// The superuser over the socket, in the service's database: for checking what it wrote.
    pub fn superuser(&self) -> DatabaseSettings {
        DatabaseSettings::from_url(&self.cluster.admin_url())
            .expect("admin URL")
            .with_database(TLS_DATABASE)
    }

    pub async fn stop(self) {
        self.cluster.stop().await.expect("stopping the TLS cluster");
    }
}
