//! Integration tests of the server: each runs against the real server on port 0, once on
//! SQLite and once on PostgreSQL (when `WHARF_TEST_DATABASE_URL` is set).

mod auth;
mod business;
mod business_broadcasts;
mod business_templates;
mod cloud;
mod dashboard;
mod dispatch;
mod dispatch_pacing;
mod events;
mod input;
mod leases;
mod lifecycle;
mod media;
mod messages;
mod metrics;
mod ops;
mod outbound;
mod poll_votes;
mod retention;
mod sandbox;
mod send_auth;
mod sessions;
mod social;
mod store;
mod validation;
mod wapio_envelope;
mod web;
mod web_device;
mod web_inbound;
mod web_live;
mod web_social_book;
mod webhook_state;
mod webhooks;
