//! A NATS service (`$SRV`) per component, as Dynamo's `register_nats_service` builds it: named
//! `{ns}_{component}` (slugged), version of the library, its endpoints in a group of that name
//! so that their subjects are `{service}.{name}` — the NATS request plane's
//! `{ns}_{comp}.{ep}-{id:x}`. async-nats answers `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS`
//! for it, with each endpoint's request count, errors and processing time.

use std::sync::{Mutex, PoisonError};

use super::{NatsClient, NatsError, ServiceEndpoint, confirm_processed};

pub use dynrt_core::names::nats_service_name as service_name;

/// The version the service reports (Dynamo reports its crate version; this is ours).
const SERVICE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One component's NATS service: answering `$SRV` once started, each endpoint once added.
/// Stopped by [`Self::stop`] (the runtime does at shutdown).
pub struct NatsComponentService {
    name: String,
    client: NatsClient,
    service: Mutex<Option<async_nats::service::Service>>,
}

impl NatsComponentService {
    /// Starts the service `name` (see [`service_name`]) described as `description`.
    pub async fn start(
        client: &NatsClient,
        name: &str,
        description: &str,
    ) -> Result<Self, NatsError> {
        use async_nats::service::ServiceExt;
        let builder = client
            .client()
            .service_builder()
            .description(description.to_owned());
        let (n, version) = (name.to_owned(), SERVICE_VERSION.to_owned());
        let (nats, clock) = (client.client().clone(), client.clock().clone());
        // `$SRV` requests are answered from the moment this returns.
        let service = client
            .run(async move {
                let service = builder.start(n, version).await.map_err(|e| e.to_string())?;
                confirm_processed(&nats, &clock).await?;
                Ok::<_, String>(service)
            })
            .await?
            .map_err(|reason| NatsError::Service {
                name: name.to_owned(),
                reason,
            })?;
        tracing::info!(service = name, "NATS service started");
        Ok(Self {
            name: name.to_owned(),
            client: client.clone(),
            service: Mutex::new(Some(service)),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds an endpoint listening on `{service}.{name}`; `name` is the instance part
    /// (`generate-694d9a5e1f2b3c4d`). Stats count its requests once they are answered.
    pub async fn endpoint(&self, name: &str) -> Result<ServiceEndpoint, NatsError> {
        let group = {
            let service = self.service.lock().unwrap_or_else(PoisonError::into_inner);
            let service = service.as_ref().ok_or_else(|| NatsError::Service {
                name: self.name.clone(),
                reason: "stopped".into(),
            })?;
            service.group(&self.name)
        };
        let n = name.to_owned();
        let (nats, clock) = (self.client.client().clone(), self.client.clock().clone());
        // Requests to it are answered from the moment this returns (not "no responders").
        let endpoint = self
            .client
            .run(async move {
                let endpoint = group.endpoint(n).await.map_err(|e| e.to_string())?;
                confirm_processed(&nats, &clock).await?;
                Ok::<_, String>(endpoint)
            })
            .await?
            .map_err(|e| NatsError::Service {
                name: self.name.clone(),
                reason: format!("endpoint '{name}': {e}"),
            })?;
        Ok(ServiceEndpoint::new(
            endpoint,
            format!("{}.{name}", self.name),
            self.client.tokio_handle().clone(),
        ))
    }

    /// Stops answering `$SRV` requests and ends the endpoints' streams. Idempotent.
    pub async fn stop(&self) -> Result<(), NatsError> {
        let service = self
            .service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(service) = service else {
            return Ok(());
        };
        self.client
            .run(async move { service.stop().await })
            .await?
            .map_err(|e| NatsError::Service {
                name: self.name.clone(),
                reason: e.to_string(),
            })?;
        tracing::info!(service = %self.name, "NATS service stopped");
        Ok(())
    }

    /// Whether [`Self::stop`] has run.
    pub fn is_stopped(&self) -> bool {
        self.service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }
}

impl std::fmt::Debug for NatsComponentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsComponentService")
            .field("name", &self.name)
            .field("stopped", &self.is_stopped())
            .finish()
    }
}
