// `sqlx::migrate!` embeds the migrations at compile time; on stable Rust, Cargo must be told
// to build again when one is added or changed (sqlx's documented build script).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
