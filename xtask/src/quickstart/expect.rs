//! What a documented answer means: the page shows each block's answer as a `json` or `text` block, with `…` where
//! a value differs from run to run (an id, a time). The page's answers are written for a person, so `…` is the
//! only wildcard, and everything else must be as shown.

use serde_json::Value;

/// The wildcard: a whole JSON value or a line; inside a string or a line, any run of characters.
const ANY: &str = "…";

/// Whether `actual` (a block's standard output) is what a `json` block `expected` shows: the same JSON values in
/// order (a block of several calls answers several). Objects have exactly the keys shown, unless one key is `…`
/// ("and other fields"); an array whose last item is `…` may go on.
pub fn json(expected: &str, actual: &str) -> Result<(), String> {
    let values = |text: &str, what: &str| -> Result<Vec<Value>, String> {
        serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the {what} is not JSON ({e})"))
    };
    let (want, got) = (values(expected, "page's answer")?, values(actual, "answer")?);
    if want.len() != got.len() {
        return Err(format!("{} JSON values shown, {} answered", want.len(), got.len()));
    }
    want.iter().zip(&got).try_for_each(|(w, g)| value(w, g, "$"))
}

fn value(want: &Value, got: &Value, at: &str) -> Result<(), String> {
    let differs = || Err(format!("at {at}: shown {want}, answered {got}"));
    match (want, got) {
        (Value::String(w), _) if w == ANY => Ok(()),
        (Value::String(w), Value::String(g)) if w.contains(ANY) => {
            if glob(w, g) {
                Ok(())
            } else {
                differs()
            }
        }
        (Value::Object(w), Value::Object(g)) => {
            let open = w.contains_key(ANY);
            for (k, wv) in w.iter().filter(|(k, _)| *k != ANY) {
                match g.get(k) {
                    Some(gv) => value(wv, gv, &format!("{at}.{k}"))?,
                    None => return Err(format!("at {at}: `{k}` shown, not answered (answered {got})")),
                }
            }
            match g.keys().find(|k| !open && !w.contains_key(*k)) {
                Some(k) => Err(format!("at {at}: `{k}` answered, not shown (add it, or a \"…\" key)")),
                None => Ok(()),
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            let open = w.last().is_some_and(|l| l == ANY);
            let shown = if open { &w[..w.len() - 1] } else { &w[..] };
            if g.len() < shown.len() || (!open && g.len() != shown.len()) {
                return Err(format!("at {at}: {} items shown, {} answered", shown.len(), g.len()));
            }
            shown.iter().zip(g).enumerate().try_for_each(|(i, (w, g))| value(w, g, &format!("{at}[{i}]")))
        }
        _ if want == got => Ok(()),
        _ => differs(),
    }
}

/// Whether `actual` is what a `text` block `expected` shows, line by line: a line `…` stands for any number of
/// lines, and `…` inside a line for any characters.
pub fn text(expected: &str, actual: &str) -> Result<(), String> {
    let want: Vec<&str> = expected.lines().collect();
    let got: Vec<&str> = actual.lines().collect();
    if lines(&want, &got) {
        Ok(())
    } else {
        Err(format!("shown:\n{expected}\nanswered:\n{actual}"))
    }
}

fn lines(want: &[&str], got: &[&str]) -> bool {
    match want.split_first() {
        None => got.is_empty(),
        Some((&w, rest)) if w.trim() == ANY => (0..=got.len()).any(|skip| lines(rest, &got[skip..])),
        Some((&w, rest)) => got.split_first().is_some_and(|(&g, more)| glob(w, g.trim_end()) && lines(rest, more)),
    }
}

/// `pattern` with `…` for any run of characters, against the whole of `s`.
fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split(ANY).collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == s;
    }
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_answers_match_as_shown_with_wildcards() {
        let shown = r#"{"id":"…","status":"HELD","fencing_token":1,"expires_at":"2026-…Z"}"#;
        assert!(
            json(shown, r#"{"id":"a1","status":"HELD","fencing_token":1,"expires_at":"2026-12-08T10:00:00Z"}"#).is_ok()
        );
        let wrong = json(shown, r#"{"id":"a1","status":"HELD","fencing_token":2,"expires_at":"2026-12-08Z"}"#);
        assert!(wrong.unwrap_err().contains("$.fencing_token"));
        let extra = json(shown, r#"{"id":"a","status":"HELD","fencing_token":1,"expires_at":"2026-Z","new":1}"#);
        assert!(extra.unwrap_err().contains("`new` answered, not shown"));
        assert!(json(r#"{"status":"HELD","…":"…"}"#, r#"{"status":"HELD","new":1}"#).is_ok());
        assert!(json(r#"{"a":1}{"b":[1,"…"]}"#, "{\"a\":1}\n{\"b\":[1,2,3]}").is_ok());
        assert!(json(r#"{"b":[1]}"#, r#"{"b":[1,2]}"#).is_err());
        assert!(json(r#"{"a":1}"#, "not json").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn text_answers_match_line_by_line() {
        assert!(
            text("MSH|…|ACK^A20^ACK|…\nMSA|AA|MSG0001|…", "MSH|^~\\&|HHS|ACK^A20^ACK|x|P\nMSA|AA|MSG0001|ok\n").is_ok()
        );
        assert!(text("first\n…\nlast", "first\na\nb\nlast").is_ok());
        assert!(text("first\n…\nlast", "first\nlast").is_ok());
        assert!(text("first\nlast", "first\nmiddle\nlast").is_err());
        assert!(!glob("a…b…c", "acb"));
        assert!(glob("a…b…c", "axbyc"));
    }
}
