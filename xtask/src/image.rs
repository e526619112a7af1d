//! `cargo xtask image`: the origin's container image (`deploy/Containerfile`), `FROM scratch` on a root filesystem
//! made here — no base image from a registry, and no musl target on this machine for a static binary. The root
//! filesystem (`target/image/rootfs`) holds hhs-origin, the shared libraries `ldd` names and the dynamic loader,
//! /etc/passwd and /etc/group for the image's user, and /var/lib/hhs for its SQLite file. The migrations are in the
//! binary (`sqlx::migrate!`) and so are the CA roots for TLS to PostgreSQL (webpki-roots): neither is copied.
//!
//! * `image` — a release build, the root filesystem, then `podman build` (when podman is installed).
//! * `--check` — then export the image's filesystem (`podman create` + `podman export`: this kernel refuses to run
//!   containers, but podman still builds, creates and exports them) and run the image's entrypoint from it under
//!   `chroot` as the image's user, on a free loopback port: `/healthz` must answer 200 and the image's HEALTHCHECK
//!   must pass. Not root: the exported binary with its own loader instead of chroot.
//! * `--debug` — from the debug build. `cargo xtask test` checks that image: its `cargo test` has built the debug
//!   binary already, where a release build costs minutes on two cores; what the check guards (libraries, loader,
//!   user, ownership, entrypoint, health check) is the same for either profile.
//! * `--tag NAME` — the image's name (default `localhost/hhs-origin:latest`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::run::{cargo, free_port, output, root, status, step, target_dir};

/// The image's user and group (the Containerfile's USER and chown say the same).
const UID: u32 = 10001;

pub fn run(args: &[String]) -> Result<(), String> {
    let (mut release, mut check, mut tag) = (true, false, "localhost/hhs-origin:latest".to_owned());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--debug" => release = false,
            "--check" => check = true,
            "--tag" => tag = it.next().ok_or("--tag needs a name")?.clone(),
            other => return Err(format!("image: unknown argument {other:?} (--debug, --check, --tag NAME)")),
        }
    }
    let rootfs = rootfs(release)?;
    if !podman_installed() {
        if check {
            return Err("podman is not installed (apt-get install podman)".into());
        }
        eprintln!(
            "\npodman is not installed: the root filesystem is in {}; build it with deploy/Containerfile",
            rootfs.display()
        );
        return Ok(());
    }
    build(&rootfs, &tag)?;
    if check {
        self::check(&tag)?;
    }
    eprintln!("\nbuilt {tag}; run it with: podman run -p 8000:8000 -v hhs:/var/lib/hhs {tag}");
    Ok(())
}

/// `cargo xtask test`'s image check, from the debug build. `Ok(false)`: skipped, podman is not installed (CI
/// installs it, and there the check is required).
pub fn test() -> Result<bool, String> {
    if !podman_installed() && std::env::var_os("CI").is_none() {
        eprintln!("image check skipped: podman is not installed (apt-get install podman)");
        return Ok(false);
    }
    let tag = "localhost/hhs-origin:test";
    let result = run(&["--debug".into(), "--check".into(), "--tag".into(), tag.into()]);
    let _ = Command::new("podman").args(["rmi", tag]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    result.map(|()| true)
}

fn podman_installed() -> bool {
    Command::new("podman").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Builds hhs-origin and makes target/image/rootfs around it.
fn rootfs(release: bool) -> Result<PathBuf, String> {
    let profile = if release { "release" } else { "debug" };
    step(&format!("cargo build -p hhs-origin ({profile}) for the image"));
    let mut c = cargo();
    c.args(["build", "-p", "hhs-origin", "--bin", "hhs-origin"]);
    if release {
        c.arg("--release");
    }
    status(&mut c)?;
    let bin = target_dir().join(profile).join("hhs-origin");
    let dir = target_dir().join("image/rootfs");
    step(&format!("the image's root filesystem in {}", dir.display()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
    }
    let put = |path: &str, from: &Path, mode: u32| -> Result<(), String> {
        let to = dir.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap_or(&dir)).map_err(|e| e.to_string())?;
        // fs::copy follows symbolic links: the image gets the files, not links into this machine's /usr.
        std::fs::copy(from, &to).map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
    };
    put("/usr/local/bin/hhs-origin", &bin, 0o755)?;
    for lib in shared_libraries(&bin)? {
        put(&lib, Path::new(&lib), 0o755)?;
    }
    let write = |path: &str, text: &str| -> Result<(), String> {
        let to = dir.join(path);
        std::fs::create_dir_all(to.parent().unwrap_or(&dir)).map_err(|e| e.to_string())?;
        std::fs::write(&to, text).map_err(|e| format!("write {}: {e}", to.display()))
    };
    write(
        "etc/passwd",
        &format!("root:x:0:0:root:/root:/sbin/nologin\nhhs:x:{UID}:{UID}:HHS origin:/var/lib/hhs:/sbin/nologin\n"),
    )?;
    write("etc/group", &format!("root:x:0:\nhhs:x:{UID}:\n"))?;
    // glibc reads this for host names (PostgreSQL's); the container runtime supplies /etc/hosts and resolv.conf.
    write("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")?;
    for (path, mode) in [("var/lib/hhs", 0o700), ("tmp", 0o1777)] {
        let d = dir.join(path);
        std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())?;
    }
    Ok(dir)
}

/// The absolute paths of the libraries and the loader `ldd` says `bin` needs (the vDSO is the kernel's).
fn shared_libraries(bin: &Path) -> Result<Vec<String>, String> {
    let listing = output(Command::new("ldd").arg(bin))?;
    let mut libs = vec![];
    for line in listing.lines().map(str::trim) {
        let path = match line.split_once("=>") {
            Some((name, _)) if line.contains("not found") => return Err(format!("ldd: {} not found", name.trim())),
            Some((_, rest)) => rest.trim(),
            None => line,
        };
        let path = path.split(" (").next().unwrap_or_default().trim();
        if path.starts_with('/') {
            libs.push(path.to_owned());
        }
    }
    if !libs.iter().any(|l| l.contains("ld-linux")) {
        return Err(format!("ldd named no dynamic loader for {}:\n{listing}", bin.display()));
    }
    Ok(libs)
}

fn build(rootfs: &Path, tag: &str) -> Result<(), String> {
    step(&format!("podman build {tag}"));
    let before = image_id(tag);
    status(
        Command::new("podman")
            .args(["build", "--format", "docker", "--pull=never", "--quiet", "-t", tag, "-f"])
            .arg(root().join("deploy/Containerfile"))
            .arg(rootfs)
            .stdout(Stdio::null()),
    )?;
    // The image this tag named before is left without a name: remove it, or every build keeps a binary's worth.
    if let Some(old) = before.filter(|old| image_id(tag).as_ref() != Some(old)) {
        let _ = Command::new("podman").args(["rmi", &old]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
    Ok(())
}

fn image_id(tag: &str) -> Option<String> {
    let id =
        output(Command::new("podman").args(["image", "inspect", "--format", "{{.Id}}", tag]).stderr(Stdio::null()));
    id.ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The image's filesystem exported and its entrypoint run from it: /healthz answers 200 and the HEALTHCHECK passes.
fn check(tag: &str) -> Result<(), String> {
    let inspect: Value = serde_json::from_str(&output(Command::new("podman").args(["image", "inspect", tag]))?)
        .map_err(|e| format!("podman image inspect: {e}"))?;
    let config = &inspect[0]["Config"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
    };
    let user = config["User"].as_str().unwrap_or_default().to_owned();
    if user != format!("{UID}:{UID}") {
        return Err(format!("the image runs as {user:?}, not {UID}:{UID}"));
    }
    let command: Vec<String> = strings(&config["Entrypoint"]).into_iter().chain(strings(&config["Cmd"])).collect();
    // podman shows the health check beside the config (`Healthcheck`), docker inside it.
    let health = match strings(&inspect[0]["Healthcheck"]["Test"]) {
        none if none.is_empty() => strings(&config["Healthcheck"]["Test"]),
        test => test,
    };
    let health = match health.split_first() {
        Some((kind, cmd)) if kind == "CMD" && !cmd.is_empty() => cmd.to_vec(),
        _ => {
            return Err(format!("the image has no exec-form HEALTHCHECK (built without --format docker?): {health:?}"))
        }
    };

    let fs = export(tag)?;
    let data = std::fs::metadata(fs.join("var/lib/hhs")).map_err(|e| format!("the image has no /var/lib/hhs: {e}"))?;
    if data.uid() != UID && is_root() {
        return Err(format!("/var/lib/hhs in the image belongs to uid {}, not {UID}", data.uid()));
    }
    let port = free_port()?;
    let mut env: Vec<(String, String)> = strings(&config["Env"])
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .filter(|(k, _)| k != "HHS_BIND")
        .collect();
    // Loopback here: outside a container's network namespace the image's 0.0.0.0 would be this machine's.
    env.push(("HHS_BIND".into(), format!("127.0.0.1:{port}")));
    env.push(("RUST_LOG".into(), "info".into()));
    let log = target_dir().join("image/check.log");
    step(&format!("running {} from the exported image (log: {})", command.join(" "), log.display()));
    let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let mut serve = in_image(&fs, &command, &env)?;
    let mut serve = Running(
        serve
            .stdout(file.try_clone().map_err(|e| e.to_string())?)
            .stderr(file)
            .spawn()
            .map_err(|e| format!("could not start the image's entrypoint: {e}"))?,
    );
    let started = Instant::now();
    loop {
        match healthz(port) {
            Some(200) => break,
            _ if started.elapsed() > Duration::from_secs(60) => {
                return Err(format!("/healthz gave no 200 within 60 s: {}", tail(&log)));
            }
            _ => {}
        }
        if let Ok(Some(st)) = serve.0.try_wait() {
            return Err(format!("the image's entrypoint exited ({st}): {}", tail(&log)));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("/healthz answered 200 from the image's binary");
    step(&format!("the image's HEALTHCHECK: {}", health.join(" ")));
    status(in_image(&fs, &health, &env)?.stdin(Stdio::null()))?;
    let pid = serve.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let st = serve.0.wait().map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("the image's entrypoint did not stop cleanly on SIGTERM ({st}): {}", tail(&log)));
    }
    let _ = std::fs::remove_dir_all(&fs);
    eprintln!("image check passed: {tag} starts as uid {UID}, serves /healthz and passes its health check");
    Ok(())
}

/// The image's filesystem as `podman export` writes a container made from it, unpacked in target/image/exported.
fn export(tag: &str) -> Result<PathBuf, String> {
    step(&format!("podman create + export {tag}"));
    let id = output(Command::new("podman").args(["create", tag]))?.trim().to_owned();
    let tar = target_dir().join("image/exported.tar");
    let exported = status(Command::new("podman").arg("export").arg("-o").arg(&tar).arg(&id));
    // podman rm complains (without failing) that it cannot reach systemd for the health check's timer.
    let _ = Command::new("podman").args(["rm", "--force", &id]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    exported?;
    let dir = target_dir().join("image/exported");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // As root tar keeps the owners the image gives (the data directory's uid is part of what is checked).
    status(Command::new("tar").args(["--numeric-owner", "-xpf"]).arg(&tar).arg("-C").arg(&dir))?;
    let _ = std::fs::remove_file(&tar);
    Ok(dir)
}

/// `argv` of the image run from `fs` with only the image's environment: under chroot as the image's user when
/// this is root (the most faithful: the image's own paths, libraries and ownership); otherwise the exported
/// binary through the exported loader, with the image's absolute paths moved into `fs`.
fn in_image(fs: &Path, argv: &[String], env: &[(String, String)]) -> Result<Command, String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    if is_root() {
        let mut c = Command::new("chroot");
        c.arg(format!("--userspec={UID}:{UID}")).arg(fs).arg(program).args(args);
        c.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
        return Ok(c);
    }
    eprintln!("not root: the image's binary through its own loader instead of chroot");
    let inside = |p: &str| fs.join(p.trim_start_matches('/'));
    let mut c = Command::new(inside("/lib64/ld-linux-x86-64.so.2"));
    c.arg("--library-path").arg(inside("/lib/x86_64-linux-gnu")).arg(inside(program)).args(args);
    c.env_clear().current_dir(inside("/var/lib/hhs"));
    for (k, v) in env {
        match v.starts_with('/') && k != "PATH" {
            true => c.env(k, inside(v)),
            false => c.env(k, v),
        };
    }
    Ok(c)
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|u| u.trim() == "0")
}

/// The status of `GET /healthz` on 127.0.0.1:`port`, if anything answers.
fn healthz(port: u16) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.split(' ').nth(1)?.parse().ok()
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The image's entrypoint, stopped on drop if a check failed while it ran.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
