//! The engines this server runs, by kind.

use std::{collections::HashMap, sync::Arc};

use wharf_core::{EngineKind, engine::DynEngine};
use wharf_engines::{CloudEngine, Emulator, WebEngine};

use crate::ServiceError;

/// The available engines; a session on an engine that is not here cannot be created.
pub struct Engines {
    by_kind: HashMap<EngineKind, DynEngine>,
    emulator: Option<Arc<Emulator>>,
    web: Option<Arc<WebEngine>>,
    /// Why an engine is missing, when the server knows (shown when it is asked for).
    missing: HashMap<EngineKind, String>,
}

impl Engines {
    /// A registry holding the emulator (when given) and nothing else yet.
    pub fn new(emulator: Option<Arc<Emulator>>) -> Self {
        let mut by_kind: HashMap<EngineKind, DynEngine> = HashMap::new();
        if let Some(e) = &emulator {
            by_kind.insert(EngineKind::Emulator, e.clone());
        }
        Self {
            by_kind,
            emulator,
            web: None,
            missing: HashMap::new(),
        }
    }

    /// Adds the Cloud API engine, or records why it is not available.
    pub fn with_cloud(mut self, cloud: Result<Arc<CloudEngine>, String>) -> Self {
        match cloud {
            Ok(engine) => {
                self.by_kind.insert(EngineKind::Cloud, engine);
            }
            Err(why) => {
                self.missing.insert(EngineKind::Cloud, why);
            }
        }
        self
    }

    /// Adds the WhatsApp Web engine, or records why it is not available.
    pub fn with_web(mut self, web: Result<Arc<WebEngine>, String>) -> Self {
        match web {
            Ok(engine) => {
                self.by_kind.insert(EngineKind::Web, engine.clone());
                self.web = Some(engine);
            }
            Err(why) => {
                self.missing.insert(EngineKind::Web, why);
            }
        }
        self
    }

    /// The web engine, for pairing by code.
    pub fn web(&self) -> Option<&Arc<WebEngine>> {
        self.web.as_ref()
    }

    /// The engine of `kind`, or a clear "not available" error naming the field at fault.
    pub fn get(&self, kind: EngineKind) -> Result<&DynEngine, ServiceError> {
        self.by_kind.get(&kind).ok_or_else(|| {
            let why = self
                .missing
                .get(&kind)
                .map(|w| format!(": {w}"))
                .unwrap_or_default();
            ServiceError::invalid_with(
                "engine_unavailable",
                "engine",
                format!(
                    "the {kind} engine is not available on this server{why} (available: {})",
                    self.available()
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    /// Kinds that can be used, in a stable order.
    pub fn available(&self) -> Vec<EngineKind> {
        EngineKind::ALL
            .into_iter()
            .filter(|k| self.by_kind.contains_key(k))
            .collect()
    }

    /// The emulator, for its control surface.
    pub fn emulator(&self) -> Option<&Arc<Emulator>> {
        self.emulator.as_ref()
    }
}
