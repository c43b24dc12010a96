//! Structure-aware: the bytes drive `arbitrary` to build a topology-shaped
//! document (mostly well-formed YAML with the right keys, names that refer to
//! each other, expressions, addresses inside or outside subnets, anchors and
//! merge keys), which is rendered to text and fed to `load_str`. This reaches
//! the schema, resolution and graph stages far more often than raw bytes do.
//!
//! Set `BENCHSCALE_FUZZ_PRINT=1` to print each generated document (useful
//! with `cargo fuzz run load_structured <artifact>` to see a finding as YAML).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

use benchscale_fuzz::structured::Lab;

fn print() -> bool {
    static PRINT: OnceLock<bool> = OnceLock::new();
    *PRINT.get_or_init(|| std::env::var_os("BENCHSCALE_FUZZ_PRINT").is_some())
}

fuzz_target!(|lab: Lab| {
    let text = lab.to_yaml();
    let loaded = benchscale_fuzz::check(&text);
    if print() {
        eprintln!("----- generated topology (loaded: {loaded}) -----\n{text}-----");
    }
});
