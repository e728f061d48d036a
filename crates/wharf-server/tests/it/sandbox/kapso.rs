//! The Kapso dialect: `/api/v1/sandbox_sessions` and `/api/v1/agents`.

#[allow(unused_imports)]
use super::*;
