//! Sizes a reader can hold: no source file of a crate longer than [`MAX_FILE_LINES`], and no `macro_rules!` in
//! the origin longer than [`MAX_MACRO_LINES`] (a macro is a per-call helper, not a place for code to live).

use std::path::Path;

/// The longest a source file of `SOURCES` may be.
pub const MAX_FILE_LINES: usize = 500;
/// The longest a `macro_rules!` of `MACROS` may be, from its first line to its closing brace.
pub const MAX_MACRO_LINES: usize = 60;
/// The crates' sources whose files are held to [`MAX_FILE_LINES`].
const SOURCES: [&str; 5] = ["core/src", "origin/src", "client/src", "edge/src", "ui/src"];
/// Where macros are held to [`MAX_MACRO_LINES`].
const MACROS: &str = "origin/src";

pub fn check(root: &Path) -> Vec<String> {
    let mut problems = vec![];
    for dir in SOURCES {
        let mut files = vec![];
        super::rust_files(&root.join(dir), root, &mut files);
        for file in files {
            let text = std::fs::read_to_string(root.join(&file)).unwrap_or_default();
            let lines = text.lines().count();
            if lines > MAX_FILE_LINES {
                problems.push(format!(
                    "{} has {lines} lines, more than {MAX_FILE_LINES}: split it by what it holds",
                    file.display()
                ));
            }
            if dir == MACROS {
                for (at, len) in long_macros(&text) {
                    problems.push(format!(
                        "{}:{at}: a macro_rules! of {len} lines, more than {MAX_MACRO_LINES}: make it a function",
                        file.display()
                    ));
                }
            }
        }
    }
    problems
}

/// Each `macro_rules!` of `text` longer than [`MAX_MACRO_LINES`]: the line it starts on and its length. A macro
/// ends at the first line after its start that closes it at its own indentation (rustfmt's layout).
fn long_macros(text: &str) -> Vec<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = vec![];
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_start();
        if !body.starts_with("macro_rules!") {
            continue;
        }
        let indent = &line[..line.len() - body.len()];
        let end = lines[i + 1..]
            .iter()
            .position(|l| l.strip_prefix(indent).is_some_and(|rest| rest.starts_with('}')))
            .map_or(lines.len(), |p| i + 1 + p);
        let len = end - i + 1;
        if len > MAX_MACRO_LINES {
            found.push((i + 1, len));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_macro_is_found_and_a_short_one_is_not() {
        let short = "macro_rules! m {\n    () => {};\n}\n";
        assert!(long_macros(short).is_empty());
        let body = "    () => { 1 };\n".repeat(MAX_MACRO_LINES);
        let long = format!("fn a() {{}}\nmacro_rules! big {{\n{body}}}\nfn b() {{}}\n");
        assert_eq!(long_macros(&long), vec![(2, MAX_MACRO_LINES + 2)]);
    }
}
