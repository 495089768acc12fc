//! The exact oracle: which answered requests have no row in `api_calls` (lost) or more than one
//! (duplicated), read straight from the suite's cluster.

use std::collections::{HashMap, HashSet};

/// The cluster's URLs name the socket folder in a `host` query parameter, as sqlx reads them;
/// tokio-postgres would also try the URL's `localhost`, so the connection is built explicitly.
/// A connection to the suite's cluster, built by the service's own connection module.
pub(crate) async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    aim_connect::install_crypto_provider();
    let database = aim_connect::DatabaseSettings::from_url(url)?.tokio_postgres()?;
    let (client, connection) = database.config.connect(database.tls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The load's request ids in `api_calls`, each with its number of rows.
pub(crate) async fn stored_ids(database_url: &str) -> anyhow::Result<HashMap<u64, i64>> {
    let client = connect(database_url).await?;
    let rows = client
        .query(
            "SELECT request_id, count(*) FROM api_calls WHERE request_id LIKE 'fault-%' GROUP BY 1",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let id: String = r.get(0);
            Some((fault_id(&id)?, r.get(1)))
        })
        .collect())
}

pub(crate) fn fault_id(request_id: &str) -> Option<u64> {
    request_id.strip_prefix("fault-")?.parse().ok()
}

/// The oracle: which answered ids have no row, and which have more than one.
pub(crate) async fn oracle(
    database_url: &str,
    answered: &[u64],
) -> anyhow::Result<(u64, u64, u64)> {
    let stored = stored_ids(database_url).await?;
    let answered: HashSet<u64> = answered.iter().copied().collect();
    let lost = answered
        .iter()
        .filter(|id| !stored.contains_key(id))
        .count() as u64;
    let duplicated = stored.values().filter(|n| **n > 1).count() as u64;
    Ok((lost, duplicated, stored.len() as u64))
}
