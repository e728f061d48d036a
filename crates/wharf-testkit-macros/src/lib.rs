//! `#[dual_test]`: defines a test twice, as `NAME::sqlite` and `NAME::postgres`.
//!
//! Written on plain `proc_macro` tokens (no parser crate): it only needs the function's name
//! and whether it takes a `Backend` or a `TestApp`.

use proc_macro::{Delimiter, TokenStream, TokenTree};

/// Runs `async fn NAME(app: TestApp)` (or `async fn NAME(backend: Backend)`) once on SQLite
/// and once on PostgreSQL, as the tests `NAME::sqlite` and `NAME::postgres`.
///
/// - `#[dual_test]` starts a `TestApp` with default settings; `#[dual_test(|c| { … })]`
///   adjusts its `Config` first. A function taking a `Backend` sets itself up.
/// - The PostgreSQL half is compiled `#[ignore]`d (so cargo reports it as ignored, not
///   passed) unless `WHARF_TEST_DATABASE_URL` was set when the test crate was built: the
///   crate's build script turns it into `cfg(wharf_postgres)`. When it is set and the server
///   is unreachable, the test fails.
#[proc_macro_attribute]
pub fn dual_test(attr: TokenStream, item: TokenStream) -> TokenStream {
    let tokens: Vec<TokenTree> = item.clone().into_iter().collect();
    let Some(fn_at) = tokens
        .iter()
        .position(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "fn"))
    else {
        return error("#[dual_test] goes on an `async fn`");
    };
    let Some(TokenTree::Ident(name)) = tokens.get(fn_at + 1) else {
        return error("#[dual_test]: expected the function's name after `fn`");
    };
    let Some(TokenTree::Group(params)) = tokens.get(fn_at + 2) else {
        return error("#[dual_test]: expected the function's parameters");
    };
    if params.delimiter() != Delimiter::Parenthesis {
        return error("#[dual_test]: expected the function's parameters");
    }
    let takes_backend = params
        .stream()
        .into_iter()
        .any(|t| matches!(&t, TokenTree::Ident(i) if i.to_string() == "Backend"));
    let configure = attr.to_string();
    let run = |backend: &str, missing: &str| {
        let backend = format!("::wharf_testkit::Backend::{backend}");
        if takes_backend {
            format!("super::{name}({backend}).await;")
        } else {
            let spawn = if configure.trim().is_empty() {
                format!("::wharf_testkit::TestApp::spawn({backend})")
            } else {
                format!(
                    "::wharf_testkit::TestApp::spawn_with({backend}, \
                     |c: &mut ::wharf_testkit::Config| (({configure}))(c))"
                )
            };
            format!("let app = {spawn}.await.expect({missing:?}); super::{name}(app).await;")
        }
    };
    let sqlite = run("Sqlite", "a SQLite test database");
    let postgres = run(
        "Postgres",
        "WHARF_TEST_DATABASE_URL is not set: the PostgreSQL half needs it",
    );
    let tests = format!(
        "mod {name} {{
            #[allow(unused_imports)]
            use super::*;

            #[::tokio::test]
            async fn sqlite() {{ {sqlite} }}

            #[::tokio::test]
            #[cfg_attr(not(wharf_postgres), ignore = \"WHARF_TEST_DATABASE_URL was not set when the tests were built\")]
            async fn postgres() {{ {postgres} }}
        }}
        #[allow(unused_mut)]"
    );
    let mut out: TokenStream = match tests.parse() {
        Ok(t) => t,
        Err(e) => return error(&format!("#[dual_test]: {e}")),
    };
    out.extend(item);
    out
}

fn error(message: &str) -> TokenStream {
    format!("compile_error!({message:?});")
        .parse()
        .expect("a compile_error! invocation parses")
}
