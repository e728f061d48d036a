//! Integration tests of the server: each runs against the real server on port 0, once on
//! SQLite and once on PostgreSQL (when `WHARF_TEST_DATABASE_URL` is set).

/// Defines each test twice, as `NAME::sqlite` and `NAME::postgres`.
macro_rules! dual_test {
    ($(async fn $name:ident($app:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let app = wharf_testkit::TestApp::spawn(wharf_testkit::Backend::Sqlite).await.expect("sqlite");
                super::$name(app).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(app) = wharf_testkit::TestApp::spawn(wharf_testkit::Backend::Postgres).await {
                    super::$name(app).await;
                }
            }
        }
        #[allow(unused_mut)]
        async fn $name(mut $app: wharf_testkit::TestApp) $body
    )*};
}

/// As `dual_test!`, on a server whose settings `|c| { … }` adjusts.
macro_rules! dual_test_with {
    ($(async fn $name:ident($app:ident) with |$c:ident| $config:block $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let app = wharf_testkit::TestApp::spawn_with(wharf_testkit::Backend::Sqlite, |$c: &mut wharf_testkit::Config| $config).await.expect("sqlite");
                super::$name(app).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(app) = wharf_testkit::TestApp::spawn_with(wharf_testkit::Backend::Postgres, |$c: &mut wharf_testkit::Config| $config).await {
                    super::$name(app).await;
                }
            }
        }
        #[allow(unused_mut)]
        async fn $name(mut $app: wharf_testkit::TestApp) $body
    )*};
}

mod auth;
mod cloud;
mod dispatch;
mod events;
mod input;
mod lifecycle;
mod messages;
mod ops;
mod outbound;
mod sandbox;
mod send_auth;
mod sessions;
mod store;
mod validation;
mod wapio_envelope;
mod webhook_state;
mod webhooks;
