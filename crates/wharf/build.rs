//! Tells the integration tests whether PostgreSQL is configured: `#[dual_test]` ignores the
//! PostgreSQL half of each test unless `WHARF_TEST_DATABASE_URL` was set at build time.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=WHARF_TEST_DATABASE_URL");
    println!("cargo::rustc-check-cfg=cfg(wharf_postgres)");
    if std::env::var_os("WHARF_TEST_DATABASE_URL").is_some() {
        println!("cargo::rustc-cfg=wharf_postgres");
    }
}
