//! A host application embedding Morph: load the hello extension, call an
//! action, print its result. `cargo run -p morph-example-embed [DIR]`.
#![forbid(unsafe_code)]

fn main() -> morph::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/hello".into());
    let morph = morph::Morph::new()?;
    let hello = morph.load_blocking(dir, &morph::HostPolicy::allow_requested())?;
    let out: serde_json::Value = hello.call("hello", serde_json::json!({}))?;
    println!("{out}");
    Ok(())
}
