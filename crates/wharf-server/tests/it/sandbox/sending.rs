//! Sending through the sandbox number, expiry, revocation and isolation between accounts.

#[allow(unused_imports)]
use super::*;
