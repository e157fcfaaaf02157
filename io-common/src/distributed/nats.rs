//! The runtime's NATS client (opened as the configuration's client rule says), its `/health`
//! detail, the KV router's NATS calls and the per-component NATS services.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use dynrt_core::config::DistributedConfig;
use dynrt_core::health::DependencyStatus;

use super::{Component, DistributedRuntime, RuntimeError};
use crate::nats::{NatsClient, NatsComponentService, NatsError, Subscription};
use crate::runtime::Runtime;

/// How long closing the client at shutdown may take to flush what was published.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The runtime's NATS state.
#[derive(Default)]
pub(crate) struct NatsState {
    pub(crate) client: Option<NatsClient>,
    /// Started services, by service name (one per component).
    services: Mutex<HashMap<String, Arc<NatsComponentService>>>,
}

impl NatsState {
    /// Connects when the configuration needs a client (request plane nats, `NATS_SERVER`
    /// set, or a NATS event plane); a client that cannot connect stops the start.
    pub(crate) async fn connect<R: Runtime>(
        rt: &R,
        config: &DistributedConfig,
    ) -> Result<Self, RuntimeError> {
        let client = match &config.nats {
            None => None,
            Some(nats) => Some(
                NatsClient::connect(rt, nats)
                    .await
                    .map_err(RuntimeError::Nats)?,
            ),
        };
        Ok(Self {
            client,
            services: Mutex::default(),
        })
    }

    /// Shutdown phase 3: stop the services, then flush and close the connection.
    pub(crate) async fn close(&self) {
        let services: Vec<_> = self
            .services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, service)| service)
            .collect();
        for service in services {
            if let Err(e) = service.stop().await {
                tracing::warn!("{e}");
            }
        }
        if let Some(client) = &self.client {
            client.close(CLOSE_TIMEOUT).await;
        }
    }
}

impl<R: Runtime> DistributedRuntime<R> {
    /// The runtime's NATS client, when the configuration opened one.
    pub fn nats(&self) -> Option<&NatsClient> {
        self.inner().nats.client.as_ref()
    }

    /// Shows the NATS connection in `/health` (`dependencies.nats`) from now on.
    pub(crate) fn watch_nats_health(&self) {
        let Some(client) = self.nats() else {
            return;
        };
        let status = |up: bool| {
            if up {
                DependencyStatus::Connected
            } else {
                DependencyStatus::Disconnected
            }
        };
        let health = self.inner().health.clone();
        health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_dependency("nats", status(client.is_connected()));
        client.on_connection_change(move |up| {
            health
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .set_dependency("nats", status(up));
        });
    }

    /// Publishes `payload` on `subject` for the KV router. Without NATS (the KV router in
    /// approximate mode) it does nothing and succeeds, as in Dynamo.
    pub async fn kv_router_nats_publish(
        &self,
        subject: impl Into<String>,
        payload: Bytes,
    ) -> Result<(), NatsError> {
        let subject = subject.into();
        let Some(client) = self.nats() else {
            tracing::trace!(%subject, "NATS not configured: publish skipped");
            return Ok(());
        };
        client.publish(subject, payload).await
    }

    /// Subscribes to `subject` for the KV router's event subscriber; an error without NATS.
    pub async fn kv_router_nats_subscribe(
        &self,
        subject: impl Into<String>,
    ) -> Result<Subscription, NatsError> {
        let Some(client) = self.nats() else {
            return Err(NatsError::NotConfigured {
                what: "the KV router's event subscriber",
            });
        };
        client.subscribe(subject).await
    }

    /// The KV router's request to a worker: the reply, or an error after `timeout`; an error
    /// without NATS.
    pub async fn kv_router_nats_request(
        &self,
        subject: impl Into<String>,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<async_nats::Message, NatsError> {
        let Some(client) = self.nats() else {
            return Err(NatsError::NotConfigured {
                what: "the KV router's request",
            });
        };
        client.request(subject, payload, timeout).await
    }

    /// The NATS service (`$SRV`) of `component`, started on first use: one per component
    /// however many endpoints ask (Dynamo's `register_nats_service`). Stopped at shutdown.
    pub async fn register_nats_service(
        &self,
        component: &Component<R>,
    ) -> Result<Arc<NatsComponentService>, NatsError> {
        let Some(client) = self.nats() else {
            return Err(NatsError::NotConfigured {
                what: "a component's NATS service",
            });
        };
        let name = crate::nats::service_name(component.namespace_name(), component.name());
        let services = &self.inner().nats.services;
        if let Some(existing) = services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&name)
        {
            return Ok(existing.clone());
        }
        let description = format!(
            "dynrt component {} in namespace {}",
            component.name(),
            component.namespace_name()
        );
        let started = Arc::new(NatsComponentService::start(client, &name, &description).await?);
        // Two endpoints of one component may have raced here: the first one in wins, the other
        // stops what it started.
        let winner = {
            let mut services = services.lock().unwrap_or_else(PoisonError::into_inner);
            services
                .entry(name)
                .or_insert_with(|| started.clone())
                .clone()
        };
        if !Arc::ptr_eq(&winner, &started) {
            started.stop().await?;
        }
        Ok(winner)
    }
}
