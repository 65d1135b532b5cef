//! The migrations are embedded at compile time (`refinery::embed_migrations!`), which cargo
//! cannot see: rebuild when a migration is added or edited.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
