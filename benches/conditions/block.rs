//! The blocks of `BENCHMARKS.md` that benchmarks other than the lab one
//! write, each between two markers (`<!-- NAME:begin -->`,
//! `<!-- NAME:end -->`). Each such benchmark replaces only its block, and
//! the lab benchmark, which rewrites the whole file, carries every block
//! over, so that no run erases another's figures.

pub const BEGIN: &str = "<!-- conditions:begin -->";
pub const END: &str = "<!-- conditions:end -->";

/// The names of the blocks: the conditions, test runner and shared-network
/// benchmarks'.
pub const NAMES: [&str; 3] = ["conditions", "testrun", "shared"];

fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    )
}

/// The conditions block in `text`, markers included.
pub fn extract(text: &str) -> Option<&str> {
    extract_named(text, "conditions")
}

/// The block `name` in `text`, markers included, when both markers are
/// there in order.
pub fn extract_named<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let (begin, end) = markers(name);
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    Some(&text[start..stop])
}

/// `text` with the conditions block replaced by `block`.
pub fn replace(text: &str, block: &str) -> String {
    replace_named(text, "conditions", block)
}

/// `text` with its block `name` replaced by `block` (markers included), or
/// with `block` appended when it has none.
pub fn replace_named(text: &str, name: &str, block: &str) -> String {
    match extract_named(text, name) {
        Some(old) => text.replacen(old, block.trim_end(), 1),
        None if text.trim().is_empty() => format!("{}\n", block.trim_end()),
        None => format!("{}\n\n{}\n", text.trim_end(), block.trim_end()),
    }
}

/// `new` with every named block of `old` carried over.
pub fn carry_over(old: &str, new: String) -> String {
    NAMES
        .iter()
        .fold(new, |text, name| match extract_named(old, name) {
            Some(block) => replace_named(&text, name, block),
            None => text,
        })
}

/// Checks, run by the self-check of each benchmark.
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
    let both = format!("{old}\n<!-- testrun:begin -->\nt\n<!-- testrun:end -->\n");
    let carried = carry_over(&both, "# new\n".into());
    assert!(
        carried.contains("\nold\n") && carried.contains("\nt\n"),
        "{carried}"
    );
}
