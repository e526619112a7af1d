//! Import cycles between the modules of a crate: dependencies flow one way, so a module can be read (and
//! changed) knowing only what it imports.
//!
//! A module is a file (`mod.rs`, `lib.rs` and `main.rs` are their folder's module; `src/bin/NAME`, and a
//! `main.rs` beside a `lib.rs`, are crates of their own). Module `a` depends on module `b` when a path of `a`'s code — in a `use`, or written out inline
//! (`crate::b::f()`) — names `b` or an item `b` declares, wherever the path reaches it: a name re-exported by
//! another module (`pub use b::X`) is followed to `b`, so a re-export does not hide a dependency. Paths in
//! comments and strings do not count; an inline module (`mod tests { … }`) counts as its file. A module that
//! names one of its ancestors does not depend on it in this sense (it is declared there).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

type Module = Vec<String>;

/// One crate's module tree: every module's code (comments and strings blanked out).
struct Tree {
    code: BTreeMap<Module, String>,
}

/// Cycles among the modules of the crate whose root folder is `src` (`lib.rs` or `main.rs`, and each
/// `bin/NAME` as a crate of its own), labelled `label` in the messages. A cycle all of whose modules are in
/// `exempt` (as `a::b`) is not reported.
pub fn cycles(src: &Path, label: &str, exempt: &[&str]) -> Result<Vec<String>, String> {
    let mut files = vec![];
    super::rust_files(src, src, &mut files);
    let mut trees: BTreeMap<String, Tree> = BTreeMap::new();
    for f in &files {
        let mut segs: Vec<String> = f.with_extension("").iter().map(|s| s.to_string_lossy().into_owned()).collect();
        let has_lib = files.iter().any(|f| f.as_os_str() == "lib.rs");
        let tree = if segs.first().is_some_and(|s| s == "bin") && segs.len() > 1 {
            let name = format!("bin/{}", segs[1]);
            segs.drain(..2);
            name
        } else if segs == ["main"] && has_lib {
            // A binary beside a library is a crate of its own (it reaches the library by the crate's name).
            "main.rs".to_owned()
        } else {
            String::new()
        };
        if segs.last().is_some_and(|s| s == "mod" || s == "lib" || s == "main") {
            segs.pop();
        }
        let text = std::fs::read_to_string(src.join(f)).map_err(|e| format!("{}: {e}", f.display()))?;
        trees.entry(tree).or_insert_with(|| Tree { code: BTreeMap::new() }).code.insert(segs, blank(&text));
    }
    let mut out = vec![];
    for (name, tree) in &trees {
        let place = if name.is_empty() { label.to_owned() } else { format!("{label}/{name}") };
        let edges = tree.edges();
        for knot in knots(&edges) {
            if knot.iter().all(|m| exempt.contains(&m.join("::").as_str())) {
                continue;
            }
            out.push(format!("import cycle in {place}: {}", describe(&knot, &edges)));
        }
    }
    Ok(out)
}

impl Tree {
    fn known(&self, m: &[String]) -> bool {
        self.code.contains_key(m)
    }

    /// The longest prefix of `path` that is a module of this tree.
    fn module_of(&self, path: &[String]) -> Option<Module> {
        (0..=path.len()).rev().map(|k| path[..k].to_vec()).find(|m| self.known(m))
    }

    /// The module that declares `name`, as seen from module `m` (following `pub use`, at most a few hops).
    fn declarer(&self, m: &Module, name: &str, hops: u32) -> Option<Module> {
        let code = self.code.get(m)?;
        if hops > 6 {
            return None;
        }
        if declares(code, name) {
            return Some(m.clone());
        }
        let mut globs = vec![];
        for (pos, path) in use_paths(code) {
            if !is_pub_use(code, pos) {
                continue;
            }
            let Some(abs) = absolute(self, m, &path) else { continue };
            let last = path.last().map(String::as_str);
            if last == Some("*") {
                globs.push(abs[..abs.len() - 1].to_vec());
            } else if last == Some(name) {
                // A module re-exported whole, or an item: followed to where it is declared.
                if self.known(&abs) {
                    return Some(abs);
                }
                let target = self.module_of(&abs[..abs.len() - 1])?;
                if &target == m {
                    return Some(m.clone());
                }
                let item = abs.last().cloned().unwrap_or_default();
                return self.declarer(&target, &item, hops + 1).or(Some(target));
            }
        }
        for g in globs {
            if let Some(target) = self.module_of(&g).filter(|t| t != m) {
                if let Some(found) = self.declarer(&target, name, hops + 1) {
                    return Some(found);
                }
            }
        }
        None
    }

    /// Module → the modules it depends on (not itself, not its ancestors).
    fn edges(&self) -> BTreeMap<Module, BTreeSet<Module>> {
        let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        for (m, code) in &self.code {
            let scopes = inline_modules(code);
            let mut paths = use_paths(code);
            paths.extend(inline_paths(code));
            for (pos, path) in paths {
                // Within `mod tests { … }`, `super` is the file's module.
                let mut scope = m.clone();
                scope.extend(scopes.iter().filter(|(s, e, _)| *s < pos && pos < *e).map(|(_, _, n)| n.clone()));
                let Some(abs) = absolute_in(self, m, &scope, &path) else { continue };
                let Some(mut to) = self.module_of(&abs) else { continue };
                if let Some(item) = abs.get(to.len()) {
                    if let Some(d) = self.declarer(&to, item, 0) {
                        to = d;
                    }
                }
                if !m.starts_with(&to) {
                    edges.entry(m.clone()).or_default().insert(to);
                }
            }
        }
        edges
    }
}

/// `path` (as written in module `m`) from the crate root, or `None` for a path outside the crate.
fn absolute(tree: &Tree, m: &Module, path: &[String]) -> Option<Vec<String>> {
    absolute_in(tree, m, m, path)
}

fn absolute_in(tree: &Tree, file: &Module, scope: &Module, path: &[String]) -> Option<Vec<String>> {
    let first = path.first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" | "$crate" => vec![],
        "self" | "super" => scope.clone(),
        // A bare path into a child module of this file (`pub use views::*` in `wire/mod.rs`).
        child if tree.known(&[file.clone(), vec![child.to_owned()]].concat()) => file.clone(),
        _ => return None,
    };
    let mut rest = path;
    if matches!(first.as_str(), "crate" | "$crate") {
        rest = &rest[1..];
    } else {
        while let Some(s) = rest.first() {
            match s.as_str() {
                "self" => {}
                "super" => {
                    base.pop();
                }
                _ => break,
            }
            rest = &rest[1..];
        }
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// Whether `code` declares an item `name` (a `fn`, type, constant, trait or module).
fn declares(code: &str, name: &str) -> bool {
    let words: Vec<&str> = code.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
    words.windows(2).any(|w| {
        w[1] == name
            && matches!(w[0], "fn" | "struct" | "enum" | "type" | "const" | "static" | "trait" | "mod" | "union")
    })
}

/// Whether the `use` at byte `pos` is `pub` (or `pub(crate)`/`pub(super)`).
fn is_pub_use(code: &str, pos: usize) -> bool {
    let before = code[..pos].trim_end();
    before.ends_with("pub") || (before.ends_with(')') && before.rfind("pub(").is_some_and(|i| i + 12 >= before.len()))
}

/// Every path of every `use` declaration, with the declaration's byte offset: a tree (`a::{b, c::d}`)
/// becomes one path per leaf; `x as y` keeps `x`'s path.
fn use_paths(code: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = vec![];
    let mut from = 0;
    while let Some(i) = find_word(code, "use", from) {
        let Some(end) = code[i..].find(';').map(|e| i + e) else { break };
        for p in expand(&code[i + 3..end]) {
            let segs: Vec<String> = p.split("::").map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            if !segs.is_empty() {
                out.push((i, segs));
            }
        }
        from = end;
    }
    out
}

/// A use tree's leaves: `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or("").replace(' ', "")];
    };
    let close = tree.rfind('}').unwrap_or(tree.len());
    let (prefix, inner) = (tree[..open].replace(' ', ""), &tree[open + 1..close]);
    let (mut parts, mut depth, mut cur) = (vec![], 0, String::new());
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
        .iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| expand(p))
        .map(|leaf| if leaf == "self" { prefix.trim_end_matches("::").to_owned() } else { format!("{prefix}{leaf}") })
        .collect()
}

/// Paths written out in code (`crate::a::f`, `super::b::X`), outside `use` declarations.
fn inline_paths(code: &str) -> Vec<(usize, Vec<String>)> {
    let uses: Vec<(usize, usize)> = {
        let mut v = vec![];
        let mut from = 0;
        while let Some(i) = find_word(code, "use", from) {
            let end = code[i..].find(';').map_or(code.len(), |e| i + e);
            v.push((i, end));
            from = end;
        }
        v
    };
    let mut out = vec![];
    for root in ["crate", "super", "self"] {
        let mut from = 0;
        while let Some(i) = find_word(code, root, from) {
            from = i + root.len();
            if uses.iter().any(|(s, e)| *s <= i && i < *e) || code[..i].ends_with("::") {
                continue;
            }
            let rest = &code[i..];
            let len = rest
                .char_indices()
                .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == ':'))
                .map_or(rest.len(), |(k, _)| k);
            let segs: Vec<String> = rest[..len].split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
            if segs.len() > 1 {
                out.push((i, segs));
            }
        }
    }
    out
}

/// The byte ranges of `mod NAME { … }` blocks, with their names.
fn inline_modules(code: &str) -> Vec<(usize, usize, String)> {
    let mut out = vec![];
    let mut from = 0;
    while let Some(i) = find_word(code, "mod", from) {
        from = i + 3;
        let rest = code[from..].trim_start();
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let after = rest[name.len()..].trim_start();
        if name.is_empty() || !after.starts_with('{') {
            continue;
        }
        let open = code.len() - after.len();
        let mut depth = 0;
        let mut close = code.len();
        for (k, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + k;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push((open, close, name));
    }
    out
}

/// The next occurrence of `word` as a whole word (not part of an identifier) at or after `from`.
fn find_word(code: &str, word: &str, from: usize) -> Option<usize> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut at = from;
    while let Some(k) = code.get(at..)?.find(word) {
        let i = at + k;
        let before = code[..i].chars().next_back();
        let after = code[i + word.len()..].chars().next();
        if !before.is_some_and(ident) && !after.is_some_and(ident) {
            return Some(i);
        }
        at = i + word.len();
    }
    None
}

/// `text` with comments and the contents of string and character literals replaced by spaces (byte offsets
/// and line breaks kept), so a path in a comment or a message is not a dependency.
fn blank(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let wipe = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            let end = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |e| i + e);
            wipe(&mut out, i, end);
            i = end;
        } else if b[i..].starts_with(b"/*") {
            let (mut depth, mut j) = (0, i);
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            wipe(&mut out, i, j);
            i = j;
        } else if (b[i] == b'r' || (b[i] == b'b' && b.get(i + 1) == Some(&b'r'))) && (i == 0 || !ident(b[i - 1])) && {
            let s = i + if b[i] == b'b' { 2 } else { 1 };
            let hashes = b[s..].iter().take_while(|&&c| c == b'#').count();
            b.get(s + hashes) == Some(&b'"')
        } {
            let s = i + if b[i] == b'b' { 2 } else { 1 };
            let hashes = b[s..].iter().take_while(|&&c| c == b'#').count();
            let body = s + hashes + 1;
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            let end = b[body..].windows(close.len()).position(|w| w == close.as_slice()).map_or(b.len(), |e| body + e);
            wipe(&mut out, body, end);
            i = end + close.len();
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            wipe(&mut out, i + 1, j);
            i = j + 1;
        } else if b[i] == b'\'' {
            // A character literal ('x', '\n', '\u{..}'); a lifetime ('a) has no closing quote right after.
            let len = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..].iter().position(|&c| c == b'\'').map(|e| e + 3)
            } else {
                let ch = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + ch) == Some(&b'\'')).then_some(ch + 2)
            };
            match len {
                Some(l) => {
                    wipe(&mut out, i + 1, i + l - 1);
                    i += l;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The strongly connected parts of the graph with more than one module (Tarjan's algorithm).
fn knots(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, (usize, usize)>,
        stack: Vec<&'a Module>,
        next: usize,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        s.index.insert(v, (s.next, s.next));
        s.next += 1;
        s.stack.push(v);
        for w in s.edges.get(v).into_iter().flatten() {
            match s.index.get(w).copied() {
                None => {
                    visit(s, w);
                    let low = s.index[w].1.min(s.index[v].1);
                    s.index.get_mut(v).unwrap().1 = low;
                }
                Some((wi, _)) if s.stack.contains(&w) => {
                    let low = wi.min(s.index[v].1);
                    s.index.get_mut(v).unwrap().1 = low;
                }
                Some(_) => {}
            }
        }
        let (vi, low) = s.index[v];
        if vi == low {
            let mut part = vec![];
            while let Some(w) = s.stack.pop() {
                part.push(w.clone());
                if w == v {
                    break;
                }
            }
            if part.len() > 1 {
                part.sort();
                s.out.push(part);
            }
        }
    }
    let mut s = State { edges, index: BTreeMap::new(), stack: vec![], next: 0, out: vec![] };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// A knot in words: its shortest cycle through its first module, and the other modules caught in it.
fn describe(knot: &[Module], edges: &BTreeMap<Module, BTreeSet<Module>>) -> String {
    let start = &knot[0];
    let mut prev: BTreeMap<&Module, &Module> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    let mut last = start;
    'search: while let Some(at) = queue.pop_front() {
        for next in edges.get(at).into_iter().flatten().filter(|n| knot.contains(n)) {
            if next == start {
                last = at;
                break 'search;
            }
            if !prev.contains_key(next) {
                prev.insert(next, at);
                queue.push_back(next);
            }
        }
    }
    let mut path = vec![last];
    while let Some(p) = prev.get(path[path.len() - 1]).copied() {
        path.push(p);
    }
    if path.last() != Some(&start) {
        path.push(start);
    }
    path.reverse();
    let name = |m: &Module| if m.is_empty() { "(crate root)".to_owned() } else { m.join("::") };
    let mut text: Vec<String> = path.iter().map(|m| name(m)).collect();
    text.push(name(start));
    let others: Vec<String> = knot.iter().filter(|m| !path.contains(m)).map(name).collect();
    let mut out = text.join(" → ");
    if !others.is_empty() {
        out.push_str(&format!(" (and through it {})", others.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_trees_and_literals() {
        assert_eq!(expand(" crate::{a::X, b::{self, Y as Z}}"), ["crate::a::X", "crate::b", "crate::b::Y"]);
        let code = blank("let s = \"crate::a::b\"; // crate::c\n/* crate::d */ let c = '\"'; x::<'a>()");
        assert!(!code.contains("crate"), "{code}");
        assert!(code.contains("x::<'a>()"), "{code}");
    }
}
