//! Arbitrary bytes, as UTF-8, fed to `benchscale::topology::load_str`.
//!
//! Seed it with the repository's topologies (see `fuzz/seed.sh`) and run it
//! with the dictionary `fuzz/load.dict` so that mutations stay close to YAML.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = benchscale_fuzz::check(text);
    }
});
