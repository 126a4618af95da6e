//! Writes the fuzz seed corpus: `cargo run -p tracefile --example gen_corpus
//! [-- DIR]` (default `fuzz/corpus/read_trace`, relative to the workspace).

#[path = "../tests/common/corpus.rs"]
mod corpus;

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/read_trace"),
        std::path::PathBuf::from,
    );
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in corpus::seeds() {
        std::fs::write(dir.join(&name), &bytes)?;
        println!("{name}: {} bytes", bytes.len());
    }
    Ok(())
}
