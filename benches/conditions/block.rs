//! The conditions benchmark's block of `BENCHMARKS.md`, between two
//! markers. Both benchmarks write that file: the conditions benchmark
//! replaces only its block, and the lab benchmark, which rewrites the
//! whole file, carries the block over, so that neither run erases the
//! other's figures.

pub const BEGIN: &str = "<!-- conditions:begin -->";
pub const END: &str = "<!-- conditions:end -->";

/// The block in `text`, markers included, when both markers are there in
/// order.
pub fn extract(text: &str) -> Option<&str> {
    let start = text.find(BEGIN)?;
    let end = text[start..].find(END)? + start + END.len();
    Some(&text[start..end])
}

/// `text` with its block replaced by `block` (markers included), or with
/// `block` appended when it has none.
pub fn replace(text: &str, block: &str) -> String {
    match extract(text) {
        Some(old) => text.replacen(old, block.trim_end(), 1),
        None if text.trim().is_empty() => format!("{}\n", block.trim_end()),
        None => format!("{}\n\n{}\n", text.trim_end(), block.trim_end()),
    }
}

/// Checks, run by the self-check of either benchmark.
pub fn self_check() {
    let block = format!("{BEGIN}\nnew\n{END}");
    let old = format!("# B\n\nbefore\n\n{BEGIN}\nold\n{END}\n\nafter\n");
    assert_eq!(
        replace(&old, &block),
        format!("# B\n\nbefore\n\n{block}\n\nafter\n")
    );
    assert_eq!(extract(&old), Some(format!("{BEGIN}\nold\n{END}").as_str()));
    assert_eq!(replace("# B\n", &block), format!("# B\n\n{block}\n"));
    assert_eq!(extract(&format!("{END} {BEGIN}")), None);
}
