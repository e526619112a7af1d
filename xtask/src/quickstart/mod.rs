//! `cargo xtask quickstart`: README's tour and `docs/quickstart.md` run as written against `cargo xtask dev`, and
//! every answer they show checked, so an example that stops working fails the build.
//!
//! Each `sh` block of the two pages (but those marked `sh norun`: the commands that start things) runs, in page
//! order, in one bash (so variables carry from block to block) with errexit and pipefail, in a scratch folder that
//! holds a fresh `xtask dev`'s `.hhs/` and a link `target` to the build's target folder (so the pages' paths hold).
//! A `json` or `text` block right after an `sh` block is what that block prints ([`expect`] says how `…` reads).

mod expect;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::run::{cargo, root, status, step, target_dir, Group};

/// The pages, in the order they run.
const PAGES: [&str; 2] = ["README.md", "docs/quickstart.md"];
/// The whole walkthrough's time limit (it takes well under a minute; the queue's waits are the longest part).
const LIMIT: Duration = Duration::from_secs(300);

/// A fenced block of a page.
struct Block {
    page: &'static str,
    line: usize,
    info: String,
    body: String,
    /// Only blank lines between this block and the previous one.
    follows: bool,
}

/// An `sh` block to run, and the answer the page shows for it.
struct Step<'a> {
    run: &'a Block,
    answer: Option<&'a Block>,
}

pub fn run() -> Result<(), String> {
    step("the quickstart: README's tour and docs/quickstart.md against `cargo xtask dev`");
    status(cargo().args(["build", "-p", "hhs-client", "--bin", "hhs"]))?;
    let mut blocks = vec![];
    for page in PAGES {
        let text = std::fs::read_to_string(root().join(page)).map_err(|e| format!("read {page}: {e}"))?;
        blocks.extend(fenced_blocks(page, &text));
    }
    let steps = steps(&blocks)?;

    let scratch = target_dir().join("quickstart");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(scratch.join("out")).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink(target_dir(), scratch.join("target")).map_err(|e| e.to_string())?;
    let dev = crate::dev::Background::start(&scratch)?;
    let result = run_steps(&steps, &scratch);
    drop(dev);
    match &result {
        Ok(()) => {
            let checked = steps.iter().filter(|s| s.answer.is_some()).count();
            println!("quickstart: {} blocks run, {checked} answers as the pages show them — ok", steps.len());
        }
        Err(_) => eprintln!("quickstart: the script, its outputs and the dev logs are in {}", scratch.display()),
    }
    result
}

/// The fenced blocks of `text`, with the line each opens on.
fn fenced_blocks(page: &'static str, text: &str) -> Vec<Block> {
    let (mut blocks, mut open, mut gap_clean) = (vec![], None::<Block>, false);
    for (i, line) in text.lines().enumerate() {
        match open.as_mut() {
            Some(_) if line.trim_end() == "```" => {
                blocks.extend(open.take());
                gap_clean = true;
            }
            Some(b) => {
                b.body.push_str(line);
                b.body.push('\n');
            }
            None => match line.strip_prefix("```") {
                Some(info) => {
                    open = Some(Block {
                        page,
                        line: i + 1,
                        info: info.trim().to_owned(),
                        body: String::new(),
                        follows: gap_clean,
                    })
                }
                None => gap_clean &= line.trim().is_empty(),
            },
        }
    }
    blocks
}

fn steps(blocks: &[Block]) -> Result<Vec<Step<'_>>, String> {
    let mut steps: Vec<Step> = vec![];
    for (i, b) in blocks.iter().enumerate() {
        let shows = matches!(b.info.as_str(), "json" | "text");
        match b.info.as_str() {
            "sh" => steps.push(Step { run: b, answer: None }),
            _ if shows && b.follows && i > 0 && blocks[i - 1].info == "sh" => {
                if let Some(last) = steps.last_mut().filter(|s| std::ptr::eq(s.run, &blocks[i - 1])) {
                    last.answer = Some(b);
                }
            }
            _ => {}
        }
    }
    if steps.is_empty() {
        return Err("the pages have no sh block to run".into());
    }
    Ok(steps)
}

/// One bash script of every step; each step's output, error output and completion written to `out/`.
fn script(steps: &[Step]) -> String {
    let mut s = String::from("set -eo pipefail\ntrap 'echo $? > out/exit' EXIT\n");
    for (i, st) in steps.iter().enumerate() {
        s.push_str(&format!(
            "# {}:{}\n{{\n{}}} > out/{i}.out 2> out/{i}.err\ntouch out/{i}.done\n",
            st.run.page, st.run.line, st.run.body
        ));
    }
    s
}

fn run_steps(steps: &[Step], scratch: &Path) -> Result<(), String> {
    let out = scratch.join("out");
    std::fs::write(scratch.join("quickstart.sh"), script(steps)).map_err(|e| e.to_string())?;
    let mut bash = Command::new("bash");
    bash.arg("quickstart.sh").current_dir(scratch).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // The pages start from nothing but what `xtask dev` wrote: no key or address from the caller's shell.
    for var in [
        "HHS_URL",
        "HHS_KEY",
        "DATABASE_URL",
        "HHS_ADMIN_KEY",
        "HHS_CLIENT_KEY",
        "HHS_VIEWER_KEY",
        "HHS_INTEGRATION_KEY",
    ] {
        bash.env_remove(var);
    }
    // In a group of its own: what a block left behind (a waiting curl sent to the background) is stopped with it.
    let mut bash = Group::spawn(&mut bash).map_err(|e| format!("could not start bash: {e}"))?;
    let started = Instant::now();
    while bash.0.try_wait().map_err(|e| e.to_string())?.is_none() && started.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(bash);
    let read = |name: String| std::fs::read_to_string(out.join(name)).unwrap_or_default();
    for (i, st) in steps.iter().enumerate() {
        let at = format!("{}:{}", st.run.page, st.run.line);
        if !out.join(format!("{i}.done")).exists() {
            let why = match read("exit".into()).trim() {
                "" => format!("did not finish within {} s", LIMIT.as_secs()),
                code => format!("failed (exit status {code})"),
            };
            return Err(format!(
                "{at}: the block {why}\n{}\nits error output:\n{}",
                st.run.body,
                read(format!("{i}.err"))
            ));
        }
        if let Some(answer) = st.answer {
            let got = read(format!("{i}.out"));
            let checked = match answer.info.as_str() {
                "json" => expect::json(&answer.body, &got),
                _ => expect::text(&answer.body, &got),
            };
            checked.map_err(|e| {
                format!(
                    "{at}: the answer is not the one {}:{} shows: {e}\nthe block:\n{}",
                    answer.page, answer.line, st.run.body
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_runs_its_sh_blocks_each_checked_against_the_answer_right_after_it() {
        let page = "```sh norun\ncargo xtask dev\n```\n\n```sh\ncurl a\n```\n\n```json\n{}\n```\n\
                    prose\n```sh\ncurl b\n```\nnot an answer: prose between\n```text\nx\n```\n";
        let blocks = fenced_blocks("p.md", page);
        let steps = steps(&blocks).unwrap();
        let runs: Vec<(&str, usize, Option<usize>)> =
            steps.iter().map(|s| (s.run.body.as_str(), s.run.line, s.answer.map(|a| a.line))).collect();
        assert_eq!(runs, vec![("curl a\n", 5, Some(9)), ("curl b\n", 13, None)]);
        assert!(script(&steps).contains("# p.md:5\n{\ncurl a\n} > out/0.out 2> out/0.err\ntouch out/0.done\n"));
    }
}
