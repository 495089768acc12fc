use aim_connect::{Host, SslMode};
use secrecy::ExposeSecret;

use super::database::{POSTGRES_PARTS, UNREAD_PG_VARIABLES};
use super::*;

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn defaults_need_no_variables() {
    let config = Config::from_vars(&HashMap::new()).expect("defaults are valid");
    assert_eq!(config.http.listen, HttpConfig::DEFAULT_LISTEN);
    assert_eq!(
        config.http.metrics_listen,
        HttpConfig::DEFAULT_METRICS_LISTEN
    );
    assert_eq!(config.environment, Environment::Development);
    assert!(config.database.external.is_none());
    assert!(config.database.auto_migrate);
    assert_eq!(config.log_format, LogFormat::Pretty);
    assert_eq!(config.data_dir, PathBuf::from(Config::DEFAULT_DATA_DIR));
    assert_eq!(config.shutdown_grace, Duration::from_millis(10_000));
    assert_eq!(
        config.analytics.pipeline.nice,
        AnalyticsConfig::DEFAULT_NICE
    );
}

#[test]
fn production_requires_a_jwt_secret() {
    let err =
        Config::from_vars(&vars(&[("AIM_ENVIRONMENT", "production")])).expect_err("must refuse");
    assert!(err.to_string().contains("JWT_SECRET"), "{err}");
    let secret = "x".repeat(AuthConfig::MIN_JWT_SECRET_BYTES);
    let key = "ab".repeat(32);
    Config::from_vars(&vars(&[
        ("AIM_ENVIRONMENT", "production"),
        ("JWT_SECRET", &secret),
        ("AIM_WEBHOOK_ENCRYPTION_KEY", &key),
    ]))
    .expect("a long secret is accepted");
}

#[test]
fn production_requires_a_webhook_key_and_a_bad_one_is_refused_without_echoing_it() {
    let secret = "x".repeat(AuthConfig::MIN_JWT_SECRET_BYTES);
    let err = Config::from_vars(&vars(&[
        ("AIM_ENVIRONMENT", "production"),
        ("JWT_SECRET", &secret),
    ]))
    .expect_err("must refuse");
    assert!(
        err.to_string().contains("AIM_WEBHOOK_ENCRYPTION_KEY"),
        "{err}"
    );
    let err = Config::from_vars(&vars(&[("AIM_WEBHOOK_ENCRYPTION_KEY", "not-hex-secret")]))
        .expect_err("not 64 hex digits");
    let message = err.to_string();
    assert!(message.contains("64 hex digits"), "{message}");
    assert!(!message.contains("not-hex-secret"), "{message}");
}

#[test]
fn short_jwt_secret_is_refused_without_echoing_it() {
    let err = Config::from_vars(&vars(&[("JWT_SECRET", "hunter2")])).expect_err("too short");
    let message = err.to_string();
    assert!(message.contains("JWT_SECRET"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn bad_values_name_their_variable() {
    for (name, value) in [
        ("AIM_LISTEN", "not-an-address"),
        ("AIM_AUTO_MIGRATE", "maybe"),
        ("AIM_LOG_FORMAT", "xml"),
        ("AIM_SHUTDOWN_GRACE_MS", "-1"),
        ("AIM_ENVIRONMENT", "staging"),
        ("AIM_DB_MAX_CONNECTIONS", "0"),
        ("AIM_LOCAL_PG_PORT", "99999"),
        ("AIM_ANALYTICS_NICE", "20"),
        ("AIM_ANALYTICS_NICE", "-1"),
    ] {
        let err = Config::from_vars(&vars(&[(name, value)])).expect_err(name);
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}

#[test]
fn the_guide_s_variables_make_the_connection() {
    let config = Config::from_vars(&vars(&[
        ("POSTGRES_HOST", "aim.postgres.database.azure.com"),
        ("POSTGRES_PORT", "6432"),
        ("POSTGRES_USER", "aimadmin"),
        ("POSTGRES_PASSWORD", "s3cret/with@signs"),
        ("POSTGRES_DB", "aim_prod"),
        ("POSTGRES_SSL_MODE", "verify-full"),
        ("POSTGRES_SSL_ROOT_CERT", "/etc/ssl/azure.pem"),
    ]))
    .expect("valid");
    let db = config.database.external.expect("an external database");
    assert_eq!(db.host, Host::Tcp("aim.postgres.database.azure.com".into()));
    assert_eq!(db.port, 6432);
    assert_eq!(db.user, "aimadmin");
    assert_eq!(
        db.password.as_ref().map(|p| p.expose_secret().to_owned()),
        Some("s3cret/with@signs".to_owned())
    );
    assert_eq!(db.database, "aim_prod");
    assert_eq!(db.ssl_mode, SslMode::VerifyFull);
    assert_eq!(db.ssl_root_cert, Some(PathBuf::from("/etc/ssl/azure.pem")));
}

#[test]
fn the_guide_s_variables_have_defaults() {
    let config = Config::from_vars(&vars(&[("POSTGRES_HOST", "db")])).expect("valid");
    let db = config.database.external.expect("an external database");
    assert_eq!(db.port, aim_connect::DEFAULT_PORT);
    assert_eq!(db.user, DatabaseConfig::DEFAULT_POSTGRES_USER);
    assert_eq!(db.database, DatabaseConfig::DEFAULT_POSTGRES_DB);
    assert_eq!(db.ssl_mode, DatabaseConfig::DEFAULT_POSTGRES_SSL_MODE);
    assert!(db.password.is_none());
}

#[test]
fn both_forms_of_database_settings_are_refused_naming_both() {
    for part in POSTGRES_PARTS {
        let err = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://u:topsecretpw@db/aim"),
            (part, "x"),
        ]))
        .expect_err(part)
        .to_string();
        assert!(err.contains("DATABASE_URL") && err.contains(part), "{err}");
        assert!(!err.contains("topsecretpw"), "{err}");
    }
}

#[test]
fn companions_without_a_host_are_refused() {
    let err = Config::from_vars(&vars(&[("POSTGRES_PASSWORD", "topsecretpw")]))
        .expect_err("no host")
        .to_string();
    assert!(err.contains("POSTGRES_HOST"), "{err}");
    assert!(!err.contains("topsecretpw"), "{err}");
}

#[test]
fn bad_database_settings_name_their_variable_without_the_password() {
    for (name, value) in [
        ("POSTGRES_SSL_MODE", "verify"),
        ("POSTGRES_PORT", "0"),
        ("POSTGRES_PORT", "postgres"),
    ] {
        let err =
            Config::from_vars(&vars(&[("POSTGRES_HOST", "db"), (name, value)])).expect_err(name);
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
    let err = Config::from_vars(&vars(&[(
        "DATABASE_URL",
        "postgres://u:topsecretpw@db/aim?sslmode=maybe",
    )]))
    .expect_err("bad sslmode")
    .to_string();
    assert!(
        err.contains("DATABASE_URL") && err.contains("sslmode"),
        "{err}"
    );
    assert!(!err.contains("topsecretpw"), "{err}");
}

#[test]
fn libpq_variables_the_writers_would_ignore_are_refused() {
    for name in UNREAD_PG_VARIABLES {
        let err = Config::from_vars(&vars(&[(name, "/x")])).expect_err(name);
        assert!(err.to_string().contains(name), "{err}");
    }
    let err = Config::from_vars(&vars(&[("POSTGRES_HOST", "db"), ("PGPASSWORD", "pw")]))
        .expect_err("PGPASSWORD without a password");
    assert!(err.to_string().contains("PGPASSWORD"), "{err}");
    Config::from_vars(&vars(&[
        ("DATABASE_URL", "postgres://u:pw@db/aim"),
        ("PGPASSWORD", "other"),
    ]))
    .expect("a configured password wins over PGPASSWORD in both drivers");
}

#[test]
fn debug_output_hides_secrets() {
    let config = Config::from_vars(&vars(&[
        ("DATABASE_URL", "postgres://u:topsecretpw@db/aim"),
        ("JWT_SECRET", &"s".repeat(40)),
    ]))
    .expect("valid");
    let debug = format!("{config:?}");
    assert!(!debug.contains("topsecretpw"), "{debug}");
    assert!(!debug.contains(&"s".repeat(40)), "{debug}");
}
