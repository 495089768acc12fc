//! The first organization and its admin. `aim serve` creates them on an empty installation
//! (from `AIM_ADMIN_EMAIL`/`AIM_ADMIN_PASSWORD`, or `admin@localhost` with a generated password
//! printed once), and `aim bootstrap` creates another organization on demand.

use aim_store::PgPool;
use aim_store::model::{Organization, Role, User};
use aim_store::users::NewUser;
use secrecy::{ExposeSecret, SecretString};

use crate::auth::password::{self, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, Passwords};
use crate::config::Config;
use crate::routes::validation::valid_email;

/// The admin created when nothing is configured.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@localhost";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("{0} is not a valid email address")]
    InvalidEmail(String),
    #[error("the password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters")]
    WeakPassword,
    #[error("the organization name must be 1 to 200 characters")]
    InvalidOrganization,
    #[error("no randomness for a password: {0}")]
    Random(#[from] getrandom::Error),
    #[error(transparent)]
    Password(#[from] password::PasswordError),
    #[error(transparent)]
    Store(#[from] aim_store::StoreError),
}

/// What bootstrap made; `generated_password` is set when none was given and must be shown to
/// the operator once.
pub struct Bootstrapped {
    pub organization: Organization,
    pub admin: User,
    pub generated_password: Option<SecretString>,
}

/// Creates an organization and its admin.
///
/// # Errors
/// [`BootstrapError`]: invalid input, a taken email (`Store(Conflict)`), or the database.
pub async fn create(
    pool: &PgPool,
    passwords: &Passwords,
    organization: &str,
    email: &str,
    password: Option<SecretString>,
) -> Result<Bootstrapped, BootstrapError> {
    let organization = organization.trim();
    if organization.is_empty() || organization.chars().count() > 200 {
        return Err(BootstrapError::InvalidOrganization);
    }
    if !valid_email(email) {
        return Err(BootstrapError::InvalidEmail(email.to_owned()));
    }
    let (password, generated) = match password {
        Some(p) => (p, false),
        None => (password::generate()?, true),
    };
    let len = password.expose_secret().chars().count();
    if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&len) {
        return Err(BootstrapError::WeakPassword);
    }
    let hash = passwords.hash(&password).await?;
    let (organization, admin) = aim_store::users::create_organization_with_admin(
        pool,
        organization,
        NewUser {
            email: email.trim(),
            name: "Administrator",
            role: Role::Admin,
            password_hash: &hash,
        },
    )
    .await?;
    Ok(Bootstrapped {
        organization,
        admin,
        generated_password: generated.then_some(password),
    })
}

/// At `aim serve` start: creates the first admin when no user exists at all.
///
/// # Errors
/// Invalid `AIM_ADMIN_*` values or a database failure.
pub async fn on_start(pool: &PgPool, passwords: &Passwords, config: &Config) -> anyhow::Result<()> {
    if aim_store::users::any_user_exists(pool).await? {
        return Ok(());
    }
    let (email, password) = match &config.auth.admin {
        Some((email, password)) => (email.as_str(), Some(password.clone())),
        None => (DEFAULT_ADMIN_EMAIL, None),
    };
    let made = match create(pool, passwords, &config.auth.org_name, email, password).await {
        Ok(made) => made,
        // Another replica bootstrapped at the same moment.
        Err(BootstrapError::Store(aim_store::StoreError::Conflict(_))) => return Ok(()),
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context("creating the first admin from AIM_ADMIN_EMAIL / AIM_ADMIN_PASSWORD"));
        }
    };
    tracing::info!(
        organization = %made.organization.name,
        email = %made.admin.email,
        "created the first organization and its admin"
    );
    if let Some(password) = &made.generated_password {
        print_credentials(config, &made.admin.email, password);
    }
    Ok(())
}

/// Shown once, on standard output, when a password was generated.
fn print_credentials(config: &Config, email: &str, password: &SecretString) {
    let port = config.http.listen.port();
    println!(
        "\n\
         ================================================================\n\
         AIM created its first admin. This password is shown only once.\n\
         \n  email:    {email}\n  password: {password}\n\n\
         Dashboard: http://localhost:{port}/ (sign in with the email and password above)\n\n\
         Log in:\n  curl -s localhost:{port}/api/v1/auth/login \\\n    \
         -H 'content-type: application/json' \\\n    \
         -d '{{\"email\":\"{email}\",\"password\":\"{password}\"}}'\n\
         ================================================================\n",
        password = password.expose_secret(),
    );
}
