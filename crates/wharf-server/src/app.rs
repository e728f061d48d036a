//! The app builder: wires the store, engines, services, workers and router, and serves until
//! the shutdown token fires. Tests call [`run`] on port 0.

use std::sync::Arc;

use tokio::{net::TcpListener, sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;
use wharf_core::EngineSink;
use wharf_engines::{
    CloudEngine, Emulator, WebEngine,
    web::{client::WebDeviceStores, client::WhatsAppFactory, http::ReqwestHttp},
};
use wharf_store::Store;

use crate::{
    Config,
    http::{self, ratelimit::AccountLimiter},
    services::{
        CloudService, Engines, MessageService, SandboxService, Services, SessionService,
        Supervisor, TemplateService, WebhookService, cloud,
    },
    workers,
};

/// Opens the store from `config`, migrates it, and serves on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg)?;
    let store = Store::open(&config.database_url).await?;
    run_with_store(config, store, listener, shutdown).await
}

/// As [`run`], with a store the caller opened (and migrated). WhatsApp Web devices live in
/// the same database, sealed with the server key (without a key, the web engine is
/// unavailable, as the Cloud API engine is).
pub async fn run_with_store(
    config: Config,
    store: Store,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with_devices(config, store, None, listener, shutdown).await
}

/// As [`run_with_store`], keeping WhatsApp Web devices in `devices` when given (tests and
/// benchmarks may keep them in memory) instead of the database.
pub async fn run_with_devices(
    config: Config,
    store: Store,
    devices: Option<Arc<dyn WebDeviceStores>>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    crate::install_crypto();
    let (dispatch_tx, dispatch_rx) = tokio::sync::mpsc::unbounded_channel();
    if let Some(id) = config
        .sandbox_session_id
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        let id: wharf_core::SessionId = id
            .parse()
            .map_err(|_| anyhow::anyhow!("sandbox_session_id is not a session id"))?;
        store
            .find_session_any_account(id)
            .await?
            .filter(|row| !row.status.is_deleting())
            .ok_or_else(|| anyhow::anyhow!("sandbox_session_id {id}: no such session"))?;
        store
            .set_sandbox_number(Some(id), wharf_core::time::now_millis())
            .await?;
    }
    // Where the other instances forward the calls a session's owner must answer.
    let address = match config.advertise_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => Some(url.trim_end_matches('/').to_owned()),
        None => match listener.local_addr() {
            Ok(addr) if !addr.ip().is_unspecified() => Some(format!("http://{addr}")),
            _ => None,
        },
    };
    if address.is_none() && store.backend() == wharf_store::Backend::Postgres {
        tracing::warn!(
            "no advertise_url and a wildcard listening address: calls that need a session another instance runs answer 409 instead of being forwarded to it"
        );
    }
    let ownership = crate::cluster::Ownership::new(
        store.clone(),
        &config.instance_id,
        address,
        std::time::Duration::from_millis(config.lease_ttl_ms),
    );
    let supervisor: Arc<dyn EngineSink> = Arc::new(Supervisor::new(
        store.clone(),
        ownership.instance_id().to_owned(),
        dispatch_tx.clone(),
        config.sandbox(),
    ));
    // Engines with a live connection report through a sink that drops what they say once
    // this instance no longer owns the session.
    let owned_sink: Arc<dyn EngineSink> = Arc::new(crate::cluster::OwnedSink::new(
        supervisor.clone(),
        ownership.clone(),
    ));
    let emulator = Arc::new(Emulator::new(
        Arc::downgrade(&owned_sink),
        config.receipt_delays(),
    ));
    let secrets = crate::secrets::load(&config)
        .map_err(anyhow::Error::msg)?
        .map(Arc::new);
    crate::services::webhooks::check_stored_secrets(&store, secrets.as_deref()).await?;
    match &secrets {
        Some(key) => {
            let sealed = crate::services::webhooks::seal_stored_secrets(&store, key).await?;
            if sealed > 0 {
                tracing::info!(
                    sealed,
                    "sealed webhook signing secrets stored in plain text"
                );
            }
        }
        None => tracing::warn!(
            "no secret_key: webhook signing secrets are stored unsealed (set secret_key to seal them)"
        ),
    }
    if let Some(warning) = config.retention_warning() {
        tracing::warn!("{warning}");
    }
    let outbound = Arc::new(
        crate::outbound::Outbound::new(&config.outbound_allow, config.outbound_lookup.clone())
            .map_err(anyhow::Error::msg)?,
    );
    let cloud: Result<Arc<CloudEngine>, String> = match &secrets {
        Some(key) => CloudEngine::new(
            Arc::downgrade(&supervisor),
            Arc::new(cloud::Directory::new(store.clone(), key.clone())),
            config.cloud(),
        )
        .map(Arc::new)
        .map_err(|e| e.to_string()),
        None => Err(
            "it needs secret_key (WHARF_SECRET_KEY) to seal credentials, and there is no default key on PostgreSQL"
                .into(),
        ),
    };
    let cloud_service = Arc::new(CloudService::new(
        store.clone(),
        secrets.clone(),
        cloud.as_ref().ok().cloned(),
        Arc::downgrade(&supervisor),
    ));
    let devices: Result<Arc<dyn WebDeviceStores>, String> = match (devices, &secrets) {
        (Some(devices), _) => Ok(devices),
        (None, Some(key)) => Ok(Arc::new(crate::web_devices::DatabaseDevices::new(
            store.clone(),
            key.clone(),
        ))),
        (None, None) => Err(
            "it needs secret_key (WHARF_SECRET_KEY) to seal the linked device's keys, and there is no default key on PostgreSQL"
                .into(),
        ),
    };
    let web = devices.map(|devices| -> anyhow::Result<Arc<WebEngine>> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(20))
            .build()
            .map_err(|e| anyhow::anyhow!("the web engine's HTTP client: {e}"))?;
        let mut factory = WhatsAppFactory::new(
            devices,
            Arc::new(ReqwestHttp::new(http)),
            config.web_endpoint.clone(),
        );
        if let Some(version) = config.web_version() {
            factory = factory.with_version(version);
        }
        Ok(Arc::new(
            WebEngine::new(Arc::new(factory), Arc::downgrade(&owned_sink), config.web())
                // Media URLs are fetched through the outbound policy, as webhooks are.
                .with_media(Arc::new(crate::media_fetch::MediaFetcher::new(
                    outbound.clone(),
                )))
                .with_contact_book(Arc::new(crate::web_devices::DatabaseBook::new(
                    store.clone(),
                ))),
        ))
    });
    let web = match web {
        Ok(built) => Ok(built?),
        Err(why) => Err(why),
    };
    let engines = Arc::new(Engines::new(Some(emulator)).with_cloud(cloud).with_web(web));
    engines.get(config.default_engine).map_err(|_| {
        anyhow::anyhow!(
            "default_engine is {}, which this server cannot run (available: {})",
            config.default_engine,
            engines
                .available()
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let operations = Arc::new(Notify::new());
    let sessions = Arc::new(SessionService::new(
        store.clone(),
        engines.clone(),
        ownership.clone(),
        config.default_engine,
        operations.clone(),
        cloud_service.clone(),
        config.clock.clone(),
    ));
    let templates = Arc::new(TemplateService::new(
        store.clone(),
        cloud_service.engine().cloned(),
        config.clock.clone(),
    ));
    let lease_worker = Arc::new(workers::leases::LeaseWorker {
        ownership: ownership.clone(),
        sessions: sessions.clone(),
        dispatch: dispatch_tx.clone(),
    });
    // Sends accepted here wake the dispatcher here, and the session's owner when that is
    // another instance (through the database).
    let (wake_tx, mut wake_rx) = tokio::sync::mpsc::unbounded_channel::<wharf_core::SessionId>();
    {
        let (dispatch_tx, ownership, store) =
            (dispatch_tx.clone(), ownership.clone(), store.clone());
        tokio::spawn(async move {
            while let Some(id) = wake_rx.recv().await {
                if !ownership.holds(id) {
                    store.signal_outbox(id);
                }
                let _ = dispatch_tx.send(id);
            }
        });
    }
    let messages = Arc::new(MessageService::new(
        store.clone(),
        engines.clone(),
        wake_tx,
        config.clock.clone(),
        templates.clone(),
        ownership.clone(),
    ));
    let sandbox = Arc::new(SandboxService::new(
        store.clone(),
        engines.clone(),
        config.sandbox(),
        outbound.clone(),
        secrets.clone(),
    ));
    let webhooks = Arc::new(WebhookService::new(
        store.clone(),
        outbound.clone(),
        secrets.clone(),
        config.clock.clone(),
    ));
    let numbers = Arc::new(crate::services::NumberService::new(
        store.clone(),
        cloud_service.clone(),
        config.clock.clone(),
        config.numbers(),
    )?);
    let services = Services::new(
        store.clone(),
        sessions.clone(),
        messages,
        webhooks,
        engines.clone(),
        cloud_service,
        sandbox,
        templates,
        outbound.clone(),
        config.broadcasts(),
        numbers.clone(),
    )
    .with_clock(config.clock.clone());
    // Instances sharing a PostgreSQL database share each account's allowance.
    let limiter = Arc::new(match store.backend() {
        wharf_store::Backend::Postgres => {
            AccountLimiter::shared(config.rate_limit_per_minute, store.clone())
        }
        wharf_store::Backend::Sqlite => AccountLimiter::new(config.rate_limit_per_minute),
    });

    let workers_stop = CancellationToken::new();
    let mut workers = JoinSet::new();
    workers.spawn(workers::operations::run(
        sessions.clone(),
        operations,
        workers_stop.clone(),
    ));
    let retention = config.retention();
    workers.spawn(workers::expire_idempotency_keys(
        store.clone(),
        config.idempotency_hours,
        retention.holder.clone(),
        config.clock.clone(),
        workers_stop.clone(),
    ));
    workers.spawn(workers::reconcile_numbers(numbers, workers_stop.clone()));
    workers.spawn(workers::retention::run(
        store.clone(),
        retention,
        workers_stop.clone(),
    ));
    workers.spawn(workers::maintain_postgres(
        store.clone(),
        workers_stop.clone(),
    ));
    workers.spawn(workers::broadcasts::run(
        services.broadcasts.clone(),
        workers_stop.clone(),
    ));
    {
        let (listener_store, dispatch_tx, ownership) =
            (store.clone(), dispatch_tx.clone(), ownership.clone());
        let stop = workers_stop.clone();
        workers.spawn(async move {
            listener_store
                .listen(
                    move |signal| match signal {
                        wharf_store::Signal::Outbox(id) => {
                            let _ = dispatch_tx.send(id);
                        }
                        wharf_store::Signal::Sessions => ownership.wake(),
                        wharf_store::Signal::Events => {}
                    },
                    stop,
                )
                .await
        });
    }
    let dispatcher = workers::dispatch::spawn(
        store.clone(),
        engines,
        ownership.clone(),
        config.dispatch(),
        dispatch_rx,
        workers_stop.clone(),
    );
    let mut handles = workers::webhooks::spawn(
        store.clone(),
        config.webhooks(),
        workers::webhooks::Senders { outbound, secrets },
        workers_stop.clone(),
    );
    handles.push(dispatcher);
    http::ratelimit::spawn_pruner(limiter.clone(), workers_stop.clone());

    if store.backend() == wharf_store::Backend::Sqlite {
        // One instance at a time uses a SQLite file: leases left there are a previous run's.
        store.clear_leases().await?;
    }
    // Before the first request: the first lease pass takes this instance's share of the
    // running sessions and starts their engines.
    match lease_worker.pass().await {
        Ok(pass) if pass.taken > 0 => {
            tracing::info!(sessions = pass.taken, "resumed running sessions")
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "could not take the running sessions' leases"),
    }
    // The other instances look at their shares again now that this one is alive.
    store.signal_sessions();
    let leases = tokio::spawn(lease_worker.clone().run(workers_stop.clone()));
    let forwarder = http::forward::Forwarder::new(
        ownership.instance_id().to_owned(),
        store.backend() == wharf_store::Backend::Postgres,
        limiter.clone(),
    );
    let router = http::router(
        services,
        limiter,
        config.emulator_control,
        shutdown.clone(),
        config.metrics_token.clone(),
        forwarder,
    );
    tracing::info!(addr = %listener.local_addr()?, "wharf is serving");
    axum::serve(http::conn::EnvelopedListener(listener), router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;

    // Requests are finished; stop the workers and let them end their current step.
    workers_stop.cancel();
    while workers.join_next().await.is_some() {}
    for handle in handles {
        let _ = handle.await;
    }
    // The dispatcher has stopped: hand the sessions over to the other instances at once.
    let _ = leases.await;
    lease_worker.hand_over().await;
    drop(owned_sink);
    drop(supervisor);
    store.close().await;
    Ok(())
}
