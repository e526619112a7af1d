//! `cargo xtask tidy` (also the first step of `cargo xtask test`): checks that the docs and the code agree, as
//! rust-analyzer's `xtask tidy` does. A code map that a test keeps true stays worth reading.
//!
//! * Every repository path that README.md, ARCHITECTURE.md and `docs/**/*.md` name in backticks exists (see
//!   [`repo_path`] for what counts as one). The documents map folders and important modules, not every file, so
//!   a new file needs no entry; a renamed or deleted one that a document still names fails.
//! * No import cycles between the modules of any crate (`src`, each `src/bin/NAME`, each `tests/NAME`):
//!   dependencies flow one way ([`cycles`]).
//! * No lease arithmetic in the dashboard (`ui/src`): it shows the origin's views and asks `hhs-core` about
//!   time (`status_at`, `remaining_at`, …); adding or subtracting instants there would be a second copy of the
//!   rules.
//! * The origin routes `/api/*` only from the endpoint table: no literal `/api` route in `origin/src` (the
//!   conformance suite checks, against a running origin, that it serves exactly the table).
//! * No source file of a crate longer than 500 lines, no `macro_rules!` in the origin longer than 60 ([`sizes`]).
//! * Gates: `cargo fmt --check` (`rustfmt.toml`), and clippy with `-D warnings` on every crate natively and on
//!   the two wasm tiers (the edge and the dashboard) for `wasm32-unknown-unknown`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::run::{cargo, root, status, step};

mod cycles;
mod sizes;

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
    step("tidy: the paths the documents name, the crates' module graphs, the files' sizes");
    let mut problems = doc_paths(&root())?;
    problems.extend(import_cycles(&root())?);
    problems.extend(sizes::check(&root()));
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
    Err(format!("tidy found {} problem(s): make the documents and the code agree", problems.len()))
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

/// File name endings that make a backticked word a path even without a `/` (`lease.rs`, `Cargo.lock`).
const PATH_EXTENSIONS: &[&str] =
    &["rs", "md", "toml", "sql", "js", "json", "lock", "png", "sh", "html", "css", "txt", "yml", "yaml"];

/// The documents whose paths are checked: README.md, ARCHITECTURE.md and every `.md` under `docs/`.
fn documents(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut docs: Vec<PathBuf> =
        ["README.md", "ARCHITECTURE.md"].iter().map(|d| root.join(d)).filter(|d| d.is_file()).collect();
    walk(&root.join("docs"), &mut docs);
    docs.sort();
    docs
}

/// The backticked spans of a Markdown text with the line each starts on, outside fenced code blocks (whose shell
/// commands and sample answers are not prose naming files). A span may run over a line break, as Markdown's do
/// (read as a space), but not past the end of its paragraph.
fn spans(text: &str) -> Vec<(usize, String)> {
    let mut out = vec![];
    let mut fenced = false;
    let mut open: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            open = None;
            continue;
        }
        if fenced || line.trim().is_empty() {
            open = None;
            continue;
        }
        for (i, part) in line.split('`').enumerate() {
            // Every part but the first follows a backtick, which closes the open span or opens one.
            if i > 0 {
                match open.take() {
                    Some(span) => out.push(span),
                    None => open = Some((n + 1, String::new())),
                }
            }
            if let Some((_, s)) = open.as_mut() {
                s.push_str(part);
            }
        }
        if let Some((_, s)) = open.as_mut() {
            s.push(' ');
        }
    }
    out
}

/// The path a backticked span names, if it names one. A span is a path when it is made only of letters, digits,
/// `_`, `-`, `.` and `/`, does not start with `/` (`/api/locks` is a route, `/usr/bin/chromium` not ours), and
/// either its last part ends in a known extension (`lease.rs`, `http/auth.rs`), or it ends in `/` (a folder:
/// `store/`, `tests/it/`), or its first part is an entry of the repository's root (`ui/dist`, `.ci/run`). So
/// `hhs_core::lease::acquire`, `application/hl7-v2`, `GET /healthz`, `$TMPDIR/hhs-ha` and `4W^401^A` are not.
pub fn repo_path<'a>(span: &'a str, top: &BTreeSet<String>) -> Option<&'a str> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-./".contains(c);
    if span.is_empty() || span.starts_with('/') || !span.chars().all(allowed) || !span.contains(char::is_alphabetic) {
        return None;
    }
    let path = span.trim_start_matches("./");
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let extension = last.rsplit_once('.').is_some_and(|(stem, ext)| !stem.is_empty() && PATH_EXTENSIONS.contains(&ext));
    let rooted = path.contains('/') && top.contains(path.split('/').next().unwrap_or(""));
    (extension || path.ends_with('/') || rooted).then_some(path)
}

/// `.gitignore`'s patterns, as far as tidy needs them: a name (`node_modules/`) matches any part of a path, a
/// rooted one (`/target`) a path's start, `*.db` an ending. A path under one names a build output or local state
/// (`target/debug/hhs`, `.hhs/dev.env`), which a fresh checkout does not have.
struct Ignored(Vec<String>);

impl Ignored {
    fn read(root: &Path) -> Ignored {
        let text = std::fs::read_to_string(root.join(".gitignore")).unwrap_or_default();
        let patterns = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
        Ignored(patterns.map(|l| l.trim_end_matches('/').to_owned()).collect())
    }

    fn matches(&self, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        path.split('/').next() == Some(".git")
            || self.0.iter().any(|p| match (p.strip_prefix('/'), p.strip_prefix('*')) {
                (Some(rooted), _) => path == rooted || path.starts_with(&format!("{rooted}/")),
                (_, Some(ending)) => path.ends_with(ending),
                _ => path.split('/').any(|part| part == p),
            })
    }
}

/// Every file and folder under `root` that is not ignored, as `/`-separated paths relative to it.
fn entries(root: &Path, ignored: &Ignored) -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, ignored: &Ignored, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p);
            let rel = rel.iter().map(|s| s.to_string_lossy()).collect::<Vec<_>>().join("/");
            if ignored.matches(&rel) {
                continue;
            }
            if p.is_dir() {
                walk(&p, root, ignored, out);
            }
            out.insert(rel);
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, ignored, &mut out);
    out
}

/// `a/b/../c` as `a/c`; `None` above the root.
fn normal(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = vec![];
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            _ => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// Every path the documents name that does not exist, as problems. A path whose first part is an entry of the
/// root must exist from the root; any other (`http/auth.rs` in the origin's part of the code map, `tests/it/`) must
/// exist beside the document or be the end of some path in the repository, part by part.
pub fn doc_paths(root: &Path) -> Result<Vec<String>, String> {
    let ignored = Ignored::read(root);
    let all = entries(root, &ignored);
    let top: BTreeSet<String> = all.iter().filter(|e| !e.contains('/')).cloned().collect();
    let mut problems = vec![];
    for doc in documents(root) {
        let text = std::fs::read_to_string(&doc).map_err(|e| format!("{}: {e}", doc.display()))?;
        let name = doc.strip_prefix(root).unwrap_or(&doc).to_string_lossy().replace('\\', "/");
        let beside = name.rsplit_once('/').map_or(String::new(), |(dir, _)| format!("{dir}/"));
        for (line, span) in spans(&text) {
            let Some(path) = repo_path(&span, &top) else { continue };
            if ignored.matches(path) {
                continue;
            }
            let p = path.trim_end_matches('/');
            let found = if top.contains(p.split('/').next().unwrap_or("")) {
                all.contains(p)
            } else {
                normal(&format!("{beside}{p}")).is_some_and(|b| all.contains(&b))
                    || all.iter().any(|e| e.ends_with(&format!("/{p}")))
            };
            if !found {
                problems.push(format!("{name}:{line} names `{span}`, which does not exist"));
            }
        }
    }
    Ok(problems)
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

/// Modules whose import cycles tidy lets pass, by folder: none.
const CYCLES_EXEMPT: &[(&str, &[&str])] = &[];

/// The crates whose module graphs tidy checks, by folder.
const CRATES: &[&str] = &["core", "edge", "origin", "ui", "xtask", "client"];

/// Import cycles in every crate of [`CRATES`] under `root`: its `src` and each `tests/NAME` test crate.
pub fn import_cycles(root: &Path) -> Result<Vec<String>, String> {
    let mut problems = vec![];
    for krate in CRATES {
        let mut dirs = vec![format!("{krate}/src")];
        if let Ok(tests) = std::fs::read_dir(root.join(krate).join("tests")) {
            let mut found: Vec<String> = tests
                .flatten()
                .filter(|e| e.path().join("main.rs").is_file())
                .map(|e| format!("{krate}/tests/{}", e.file_name().to_string_lossy()))
                .collect();
            found.sort();
            dirs.extend(found);
        }
        for dir in dirs.iter().filter(|d| root.join(d).is_dir()) {
            let exempt = CYCLES_EXEMPT.iter().find(|(d, _)| d == dir).map_or(&[][..], |(_, m)| *m);
            problems.extend(cycles::cycles(&root.join(dir), dir, exempt)?);
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_graph_and_lease_arithmetic_are_checked_on_a_scratch_tree() {
        let dir = std::env::temp_dir().join(format!("hhs-tidy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in
            [("ui/src/lib.rs", ""), ("ui/src/a.rs", "use crate::b::X;\n"), ("ui/src/b.rs", "use crate::a::Y;\n")]
        {
            std::fs::create_dir_all(dir.join(path).parent().unwrap()).unwrap();
            std::fs::write(dir.join(path), text).unwrap();
        }
        let cycles = import_cycles(&dir).unwrap();
        assert_eq!(cycles, ["import cycle in ui/src: a → b → a"]);
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

    #[test]
    fn the_paths_the_documents_name_are_checked_on_a_scratch_tree() {
        let dir = std::env::temp_dir().join(format!("hhs-tidy-docs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let files = [
            (".gitignore", "/target\n*.db\nnode_modules/\n"),
            ("core/src/lease.rs", ""),
            ("origin/src/http/auth.rs", ""),
            ("origin/tests/it/main.rs", ""),
            ("docs/design/failover.md", "Tested by `origin/tests/it/failover.rs`; see `../api.md` and `notes.md`.\n"),
            ("docs/design/notes.md", ""),
            ("docs/api.md", ""),
            (
                "ARCHITECTURE.md",
                "### `core/`\n- `lease.rs` — the heart; `hhs_core::lease::acquire`, `GET /api/locks`, `/usr/bin/chromium`.\n\
                 - `http/auth.rs`, `http/gone.rs`, `tests/it/`, `store/`, `origin/src/grant.rs`.\n\
                 ```sh\n`origin/src/in-a-fence.rs` is a command, not prose\n```\n\
                 `application/hl7-v2`, `4W^401^A`, `$TMPDIR/hhs-ha`, `target/debug/hhs`, `hhs.db`, `edge/node_modules/x`.\n",
            ),
            (
                "README.md",
                "Read `docs/api.md`, `docs/design/`, `docs/quickstart.md` and `core/`; `cargo\nxtask test` then\n\
                 `core/src/gone.rs`.\n",
            ),
        ];
        for (path, text) in files {
            std::fs::create_dir_all(dir.join(path).parent().unwrap()).unwrap();
            std::fs::write(dir.join(path), text).unwrap();
        }
        let problems = doc_paths(&dir).unwrap();
        assert_eq!(
            problems,
            [
                "ARCHITECTURE.md:3 names `http/gone.rs`, which does not exist",
                "ARCHITECTURE.md:3 names `store/`, which does not exist",
                "ARCHITECTURE.md:3 names `origin/src/grant.rs`, which does not exist",
                "README.md:1 names `docs/quickstart.md`, which does not exist",
                "README.md:3 names `core/src/gone.rs`, which does not exist",
                "docs/design/failover.md:1 names `origin/tests/it/failover.rs`, which does not exist",
            ],
            "{problems:?}"
        );
        let top: BTreeSet<String> = ["core".to_owned(), "ui".to_owned()].into();
        assert_eq!(repo_path("ui/dist", &top), Some("ui/dist"));
        assert_eq!(repo_path("./lease.rs", &top), Some("lease.rs"));
        assert_eq!(repo_path("docs/", &top), Some("docs/"));
        assert_eq!(repo_path("application/hl7-v2", &top), None);
        assert_eq!(repo_path("0.8.3", &top), None);
        assert_eq!(repo_path(".rs", &top), None);
        assert_eq!(normal("docs/design/../api.md").as_deref(), Some("docs/api.md"));
        assert_eq!(normal("../x.md"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn import_cycles_are_found_in_every_crate_through_inline_paths_and_re_exports() {
        let dir = std::env::temp_dir().join(format!("hhs-tidy-cycles-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in [
            // a → c through the root's re-export, c → a by an inline path: one cycle.
            ("core/src/lib.rs", "pub mod a;\npub mod b;\npub mod c;\npub use c::Gate;\n"),
            ("core/src/a.rs", "use crate::Gate;\npub struct A;\n"),
            ("core/src/c.rs", "pub struct Gate;\nfn f() -> crate::a::A {\n    todo!()\n}\n"),
            // Comments, strings and a test module's `super` are no dependency on b's part.
            (
                "core/src/b.rs",
                "// use crate::c::Gate;\nconst S: &str = \"crate::c\";\nmod tests {\n    use super::*;\n}\n",
            ),
            // A glob re-export is followed to the module that declares the name.
            ("edge/src/lib.rs", "pub mod wire;\n"),
            ("edge/src/wire/mod.rs", "pub mod events;\npub mod views;\npub use views::*;\n"),
            ("edge/src/wire/events.rs", "use crate::wire::Page;\npub struct EventView;\n"),
            (
                "edge/src/wire/views.rs",
                "pub struct Page<T>(T);\npub type EventPage = Page<super::events::EventView>;\n",
            ),
            // A cycle through inline paths in a crate with a binary beside its library.
            ("origin/src/main.rs", ""),
            ("origin/src/lib.rs", "pub mod http;\npub mod server;\n"),
            ("origin/src/http.rs", "use crate::server::serve;\npub fn router() {}\n"),
            ("origin/src/server.rs", "pub fn serve() {\n    crate::http::router()\n}\n"),
            // A binary is a crate of its own, and a child naming its parent depends on nothing.
            ("client/src/lib.rs", "pub mod commands;\n"),
            ("client/src/commands.rs", ""),
            ("client/src/bin/hhs.rs", "mod commands;\npub struct Keys;\n"),
            ("client/src/bin/hhs/commands.rs", "use super::Keys;\n"),
            // A test crate is checked too.
            ("xtask/tests/it/main.rs", "mod x;\nmod y;\n"),
            ("xtask/tests/it/x.rs", "use super::y::Y;\npub struct X;\n"),
            ("xtask/tests/it/y.rs", "use crate::{x::{self, X}};\npub struct Y;\n"),
        ] {
            std::fs::create_dir_all(dir.join(path).parent().unwrap()).unwrap();
            std::fs::write(dir.join(path), text).unwrap();
        }
        let cycles = import_cycles(&dir).unwrap();
        assert_eq!(
            cycles,
            [
                "import cycle in core/src: a → c → a",
                "import cycle in edge/src: wire::events → wire::views → wire::events",
                "import cycle in origin/src: http → server → http",
                "import cycle in xtask/tests/it: x → y → x",
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
