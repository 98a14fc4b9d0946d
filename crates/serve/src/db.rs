//! One connection to the sink's database, shared by the requests
//! (tokio-postgres pipelines concurrent queries on it) and made again when
//! the database went away.

use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_postgres::Client;

pub struct Db {
    url: String,
    client: Mutex<Option<Arc<Client>>>,
}

impl Db {
    pub fn new(url: impl Into<String>) -> Db {
        Db { url: url.into(), client: Mutex::new(None) }
    }

    /// The live connection, or a new one.
    pub async fn client(&self) -> Result<Arc<Client>, tokio_postgres::Error> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "database connection closed");
            }
        });
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }
}
