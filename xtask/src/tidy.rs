//! `cargo xtask tidy` (also the first step of `cargo xtask test`): checks that the docs and the code agree, as
//! rust-analyzer's `xtask tidy` does. A code map that a test keeps true stays worth reading.
//!
//! * ARCHITECTURE.md's code map names only files that exist, and names every source file: under each crate's
//!   heading (`### \`core/\``…), a source file counts as named when its path or file name — or, for a
//!   component, its module name — appears in backticks.
//! * No import cycles among the dashboard's modules (`ui/src`): dependencies flow one way.
//! * No lease arithmetic in the dashboard (`ui/src`): it shows the origin's views and asks `hhs-core` about
//!   time (`status_at`, `remaining_at`, …); adding or subtracting instants there would be a second copy of the
//!   rules.
//! * The origin routes `/api/*` only from the endpoint table: no literal `/api` route in `origin/src` (the
//!   conformance suite checks, against a running origin, that it serves exactly the table).
//! * Gates: `cargo fmt --check` (`rustfmt.toml`), and clippy with `-D warnings` on every crate natively and on
//!   the two wasm tiers (the edge and the dashboard) for `wasm32-unknown-unknown`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::run::{cargo, root, status, step};

/// The crates the code map covers, by their heading's folder.
const CRATES: &[&str] = &["core", "edge", "origin", "ui", "xtask", "client"];

pub fn run() -> Result<(), String> {
    step("tidy: cargo fmt --check");
    status(cargo().args(["fmt", "--all", "--check"]))?;
    step("tidy: clippy -D warnings (every crate, then the wasm tiers)");
    status(cargo().args(["clippy", "--workspace", "--all-targets", "--quiet", "--", "-D", "warnings"]))?;
    // Debian's fallback toolchain (no rustup target) ships no clippy: there the wasm tiers are only built.
    match crate::wasm::toolchain()? {
        crate::wasm::Toolchain::Rustup => {
            let wasm = ["-p", "hhs-edge", "-p", "hhs-ui", "--quiet", "--", "-D", "warnings"];
            status(crate::wasm::cargo_wasm(&crate::wasm::Toolchain::Rustup, "clippy").args(wasm))?;
        }
        crate::wasm::Toolchain::Debian => {
            eprintln!("tidy: clippy of the wasm tiers skipped (Debian's toolchain has none)")
        }
    }
    step("tidy: the code map and the dashboard's module graph");
    let mut problems = code_map(&root())?;
    problems.extend(ui_cycles(&root().join("ui/src"))?);
    problems.extend(forbidden(
        &root().join("ui/src"),
        UI_LEASE_ARITHMETIC,
        "lease arithmetic in the dashboard (ask hhs-core)",
    )?);
    problems.extend(forbidden(
        &root().join("origin/src"),
        API_ROUTES_OUTSIDE_THE_TABLE,
        "an /api route outside the endpoint table",
    )?);
    if problems.is_empty() {
        eprintln!("tidy: ok");
        return Ok(());
    }
    for p in &problems {
        eprintln!("tidy: {p}");
    }
    Err(format!("tidy found {} problem(s): make ARCHITECTURE.md and the code agree", problems.len()))
}

/// Every `.rs` file under `dir`, as paths relative to `base`.
fn rust_files(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, base, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p.strip_prefix(base).unwrap_or(&p).to_path_buf());
        }
    }
}

/// The text under each crate's `### \`crate/\`` heading.
fn sections(map: &str) -> BTreeMap<&'static str, String> {
    let mut out: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut current: Option<&'static str> = None;
    for line in map.lines() {
        if line.starts_with("## ") || line.starts_with("### ") {
            current = CRATES.iter().copied().find(|c| line.starts_with(&format!("### `{c}/`")));
            continue;
        }
        if let Some(c) = current {
            let s = out.entry(c).or_default();
            s.push_str(line);
            s.push('\n');
        }
    }
    out
}

/// Backticked words of a text.
fn ticked(text: &str) -> BTreeSet<String> {
    text.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Problems between ARCHITECTURE.md's code map and the files.
pub fn code_map(root: &Path) -> Result<Vec<String>, String> {
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).map_err(|e| format!("ARCHITECTURE.md: {e}"))?;
    let sections = sections(&map);
    let mut problems = vec![];
    // A crate of the list that is not in this tree (the scratch trees of the tests) has nothing to map.
    for krate in CRATES.iter().filter(|k| root.join(k).is_dir()) {
        let Some(text) = sections.get(krate) else {
            problems.push(format!("ARCHITECTURE.md has no section for `{krate}/`"));
            continue;
        };
        let dir = root.join(krate);
        let mut files = vec![];
        for sub in ["src", "tests", "benches"] {
            rust_files(&dir.join(sub), &dir, &mut files);
        }
        let words = ticked(text);
        // Every backticked `….rs` names a file of this crate (by a path suffix).
        for w in words.iter().filter(|w| w.ends_with(".rs")) {
            let w = w.trim_start_matches("./");
            // A path into another crate (`origin/tests/edge.rs` under `edge/`) is checked where it points.
            if CRATES.iter().any(|c| w.starts_with(&format!("{c}/"))) {
                if !root.join(w).exists() {
                    problems.push(format!("ARCHITECTURE.md names `{w}`, which does not exist"));
                }
                continue;
            }
            if !files.iter().any(|f| f.to_string_lossy().ends_with(w)) {
                problems.push(format!("ARCHITECTURE.md names `{w}` under `{krate}/`, which has no such file"));
            }
        }
        // Every source file is named: by a path suffix, its file name, or (a module file) its bare name.
        for f in &files {
            let path = f.to_string_lossy();
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let stem = name.trim_end_matches(".rs");
            let parent =
                f.parent().and_then(|p| p.file_name()).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
            let in_dir = format!("{parent}/{name}");
            let named = words.iter().any(|w| {
                let w = w.trim_end_matches('/');
                (path.ends_with(w) && w.ends_with(".rs"))
                    || w == name
                    || w == in_dir
                    || (w == stem && parent == "components")
            }) || (name == "mod.rs"
                && words.iter().any(|w| w.trim_end_matches('/') == parent || w.ends_with(&format!("{parent}/"))));
            if !named {
                problems.push(format!("`{krate}/{path}` is not in ARCHITECTURE.md's code map"));
            }
        }
    }
    Ok(problems)
}

/// The module a `use crate::a::b` or `use super::x` line points to, from the module `from` (path segments).
fn target(from: &[String], path: &str) -> Option<Vec<String>> {
    let mut segs: Vec<&str> = path.split("::").map(str::trim).collect();
    let mut base: Vec<String> = match *segs.first()? {
        "crate" => vec![],
        "super" => from[..from.len().saturating_sub(1)].to_vec(),
        _ => return None,
    };
    segs.remove(0);
    if let Some(first) = segs.first().map(|s| s.trim_start_matches('{')) {
        if !first.is_empty() && first.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
            base.push(first.split(['{', ',', ';', ' ']).next().unwrap_or(first).to_owned());
        }
    }
    Some(base)
}

/// What computes with instants or durations (`Millis::since`/`plus`, chrono's durations).
const UI_LEASE_ARITHMETIC: &[&str] =
    &[".since(", ".plus(", "chrono::Duration", "Duration::seconds", "Duration::milliseconds", "TimeDelta"];
const API_ROUTES_OUTSIDE_THE_TABLE: &[&str] = &[".route(\"/api", ".nest(\"/api", ".route_service(\"/api"];

/// Lines under `src` that contain any of `patterns` (comments aside), as problems.
pub fn forbidden(src: &Path, patterns: &[&str], what: &str) -> Result<Vec<String>, String> {
    let mut files = vec![];
    rust_files(src, src, &mut files);
    let mut problems = vec![];
    for f in &files {
        let text = std::fs::read_to_string(src.join(f)).map_err(|e| e.to_string())?;
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if let Some(p) = patterns.iter().find(|p| code.contains(*p)) {
                problems.push(format!("{what}: {}/{}:{} has `{p}`", src.display(), f.display(), n + 1));
            }
        }
    }
    Ok(problems)
}

/// Import cycles among the modules of `src` (a module per file; `mod.rs` is its folder's module).
pub fn ui_cycles(src: &Path) -> Result<Vec<String>, String> {
    let mut files = vec![];
    rust_files(src, src, &mut files);
    let module = |f: &Path| -> Vec<String> {
        let mut segs: Vec<String> = f.with_extension("").iter().map(|s| s.to_string_lossy().into_owned()).collect();
        if segs.last().is_some_and(|s| s == "mod" || s == "lib") {
            segs.pop();
        }
        segs
    };
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(src.join(f)).map_err(|e| e.to_string())?;
        let from = module(f);
        for line in text.lines().map(str::trim) {
            let Some(path) = line.strip_prefix("use ").or_else(|| line.strip_prefix("pub use ")) else { continue };
            if let Some(to) = target(&from, path) {
                if !to.is_empty() && to != from && !from.starts_with(&to) {
                    edges.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    // Depth-first search for a back edge; report each cycle once, by its smallest module.
    let mut cycles = BTreeSet::new();
    for start in edges.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, trail)) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if next == start {
                    let mut names: Vec<String> = trail.iter().map(|m| m.join("::")).collect();
                    let min = names.iter().enumerate().min_by_key(|(_, n)| n.to_owned()).map_or(0, |(i, _)| i);
                    names.rotate_left(min);
                    cycles.insert(names.join(" → "));
                } else if !trail.contains(next) && trail.len() < 8 {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    stack.push((next.clone(), t));
                }
            }
        }
    }
    Ok(cycles.into_iter().map(|c| format!("import cycle in ui/src: {c}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_map_and_the_dashboard_graph_are_checked_on_a_scratch_tree() {
        let dir = std::env::temp_dir().join(format!("hhs-tidy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in [
            ("core/src/lib.rs", ""),
            ("core/src/lease.rs", ""),
            ("edge/src/lib.rs", ""),
            ("origin/src/main.rs", ""),
            ("ui/src/lib.rs", ""),
            ("ui/src/a.rs", "use crate::b::X;\n"),
            ("ui/src/b.rs", "use crate::a::Y;\n"),
            ("xtask/src/main.rs", ""),
        ] {
            std::fs::create_dir_all(dir.join(path).parent().unwrap()).unwrap();
            std::fs::write(dir.join(path), text).unwrap();
        }
        std::fs::write(
            dir.join("ARCHITECTURE.md"),
            "### `core/`\n`lib.rs`, `gone.rs`\n### `edge/`\n`lib.rs`\n### `origin/`\n`main.rs`\n### `ui/`\n`lib.rs`, `a.rs`, `b.rs`\n### `xtask/`\n`main.rs`\n",
        )
        .unwrap();
        let problems = code_map(&dir).unwrap();
        assert!(problems.iter().any(|p| p.contains("`gone.rs`")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("core/src/lease.rs")), "{problems:?}");
        assert_eq!(problems.len(), 2, "{problems:?}");
        let cycles = ui_cycles(&dir.join("ui/src")).unwrap();
        assert_eq!(cycles, ["import cycle in ui/src: a → b"]);
        std::fs::write(
            dir.join("ui/src/a.rs"),
            "use crate::b::X;\n// t.plus(ttl) in a comment is fine\nlet e = t.plus(ttl);\n",
        )
        .unwrap();
        let found = forbidden(&dir.join("ui/src"), UI_LEASE_ARITHMETIC, "lease arithmetic").unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("a.rs:3") && found[0].contains("`.plus(`"), "{found:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
