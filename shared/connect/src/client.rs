//! tokio-postgres's side of a connection: its configuration with the rustls connector, built
//! by [`crate::DatabaseSettings::tokio_postgres`].

/// The rustls connector every tokio-postgres connection of the service uses.
#[derive(Clone)]
pub struct Tls(pub(crate) tokio_postgres_rustls::MakeRustlsConnect);

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for Tls
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Stream;
    type TlsConnect = <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::TlsConnect;
    type Error =
        <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, hostname: &str) -> Result<Self::TlsConnect, Self::Error> {
        // tokio-postgres asks for a connector even on a Unix socket, whose host name is empty
        // and which never uses TLS (its sslmode is disable); any valid name does.
        let name = if hostname.is_empty() {
            "localhost"
        } else {
            hostname
        };
        tokio_postgres::tls::MakeTlsConnect::<S>::make_tls_connect(&mut self.0, name)
    }
}

/// What a tokio-postgres connection needs: the options and the TLS connector, built together
/// by [`DatabaseSettings::tokio_postgres`] so they cannot disagree.
#[derive(Clone)]
pub struct TokioPostgres {
    pub config: tokio_postgres::Config,
    pub tls: Tls,
}

impl TokioPostgres {
    /// Opens one connection and drives it on a task of its own until the client is dropped.
    ///
    /// # Errors
    /// The connection's error: unreachable, TLS refused or unverifiable, authentication.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "database connection closed with an error");
            }
        });
        Ok(client)
    }
}

impl std::fmt::Debug for TokioPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // tokio-postgres' own Debug already redacts the password.
        f.debug_struct("TokioPostgres")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
