//! The on-premise device agent.

fn main() {
    println!("countersign-agent {}", env!("CARGO_PKG_VERSION"));
}
