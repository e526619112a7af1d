//! What runs during a chaos run: the clients (acquire, write to the fenced register, heartbeat, release — or
//! vanish, or freeze past their TTL and then try to write with their old token) and the stream subscriber.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::checks::{Call, Write};
use super::http::{agent, call, Answer};
use super::rng::Rng;

/// What the clients, the subscriber and the fault schedule share.
pub struct Shared {
    pub t0: Instant,
    /// Base URLs the clients call (each replica; the edge too with `--edge`).
    pub endpoints: Vec<String>,
    pub client_key: String,
    pub viewer_key: String,
    pub resources: Vec<String>,
    pub stop: AtomicBool,
    pub stop_subscriber: AtomicBool,
    pub calls: Mutex<Vec<Call>>,
    /// The fenced register: the highest token accepted per resource, and every write.
    register: Mutex<HashMap<String, i64>>,
    pub writes: Mutex<Vec<Write>>,
    /// Set by the fault schedule: the client freezes during its next hold.
    pub freeze: Vec<AtomicBool>,
}

impl Shared {
    pub fn new(endpoints: Vec<String>, client_key: String, viewer_key: String, resources: Vec<String>, clients: usize) -> Shared {
        Shared {
            t0: Instant::now(),
            endpoints,
            client_key,
            viewer_key,
            resources,
            stop: AtomicBool::new(false),
            stop_subscriber: AtomicBool::new(false),
            calls: Mutex::default(),
            register: Mutex::default(),
            writes: Mutex::default(),
            freeze: (0..clients).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    pub fn ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    /// A write to the fenced register: accepted only with a token at least the highest it has seen for the
    /// resource — what the README tells users to do with the token.
    fn write(&self, client: usize, resource: &str, token: i64, frozen: bool) -> bool {
        let mut reg = self.register.lock().unwrap_or_else(|p| p.into_inner());
        let seen = reg.get(resource).copied().unwrap_or(0);
        let accepted = token >= seen;
        if accepted {
            reg.insert(resource.to_owned(), token);
        }
        self.writes.lock().unwrap_or_else(|p| p.into_inner()).push(Write { client, resource: resource.to_owned(), token, seen, accepted, frozen });
        accepted
    }
}

/// One client until `stop`.
pub fn client(sh: &Shared, id: usize, mut rng: Rng) {
    let http = agent(Duration::from_secs(5));
    let owner = format!("chaos-{id}");
    let mut granted: HashSet<String> = HashSet::new();
    let invoke = |op: &'static str, rng: &mut Rng, resource: &str, body: Value| -> (Answer, usize) {
        let ep = rng.range(0, sh.endpoints.len() as u64) as usize;
        let start = sh.ms();
        let answer = call(&http, "POST", &format!("{}/api/locks/{op}", sh.endpoints[ep]), &sh.client_key, Some(&body));
        let status = match &answer {
            Answer::Status(s, _) => Some(*s),
            Answer::Unknown => None,
        };
        let c = Call { client: id, op, resource: resource.to_owned(), start, end: sh.ms(), status, token: None, hold_id: None, fresh: false };
        sh.calls.lock().unwrap_or_else(|p| p.into_inner()).push(c);
        (answer, ep)
    };
    while !sh.stop.load(Ordering::Relaxed) {
        let resource = &sh.resources[rng.range(0, sh.resources.len() as u64) as usize];
        let ttl = rng.range(1, 6);
        let (answer, _) = invoke("acquire", &mut rng, resource, json!({"resource_id": resource, "owner_id": owner, "ttl_seconds": ttl}));
        let (token, hold) = match &answer {
            Answer::Status(200, body) => match (body["fencing_token"].as_i64(), body["id"].as_str()) {
                (Some(t), Some(h)) => (t, h.to_owned()),
                _ => continue,
            },
            Answer::Status(409, _) => {
                sleep(Duration::from_millis(rng.range(10, 60)));
                continue;
            }
            _ => {
                sleep(Duration::from_millis(rng.range(100, 300)));
                continue;
            }
        };
        // Mark the call a new grant (or a renewal of one this client already had).
        let fresh = granted.insert(hold.clone());
        if let Some(c) = sh.calls.lock().unwrap_or_else(|p| p.into_inner()).iter_mut().rev().find(|c| c.client == id) {
            (c.token, c.hold_id, c.fresh) = (Some(token), Some(hold), fresh);
        }
        sh.write(id, resource, token, false);
        let release = json!({"resource_id": resource, "owner_id": owner, "fencing_token": token});
        if sh.freeze[id].swap(false, Ordering::Relaxed) {
            // Paused past the TTL (a GC pause, a stalled VM): then acts on the old token as if still holding.
            sleep(Duration::from_millis(ttl * 1_000 + rng.range(1_000, 3_000)));
            sh.write(id, resource, token, true);
            invoke("release", &mut rng, resource, release);
            continue;
        }
        if rng.chance(10) {
            continue; // vanishes: the hold expires by itself
        }
        let keep = Duration::from_millis(rng.range(50, ttl * 1_000));
        let until = Instant::now() + keep;
        let mut lost = false;
        while Instant::now() < until && !sh.stop.load(Ordering::Relaxed) {
            sleep((until - Instant::now()).min(Duration::from_millis(ttl * 1_000 / 3)));
            let (answer, _) = invoke("heartbeat", &mut rng, resource, release.clone());
            if !matches!(answer, Answer::Status(200, _) | Answer::Unknown) {
                lost = true;
                break;
            }
        }
        if !lost {
            invoke("release", &mut rng, resource, release);
        }
    }
}

/// The subscriber: reads the live stream from `after`, reconnecting to the next replica (with `Last-Event-ID`)
/// whenever a connection ends, and on `resync` reads what it missed from the log. Returns every event id it
/// received, in order, once `stop_subscriber` is set and it has reached `target` (or 30 s passed).
pub fn subscriber(sh: &Shared, after: i64, target: &Mutex<Option<i64>>) -> Vec<i64> {
    let http = ureq::AgentBuilder::new().timeout_connect(Duration::from_millis(500)).timeout_read(Duration::from_secs(3)).build();
    let mut received = vec![];
    let mut last = after;
    let mut endpoint = 0;
    let mut stopped_at: Option<Instant> = None;
    loop {
        if sh.stop_subscriber.load(Ordering::Relaxed) {
            let since = *stopped_at.get_or_insert_with(Instant::now);
            let reached = target.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| last >= t);
            if reached || since.elapsed() > Duration::from_secs(30) {
                return received;
            }
        }
        let base = &sh.endpoints[endpoint % sh.endpoints.len()];
        let resp = http
            .get(&format!("{base}/api/events/stream"))
            .set("Authorization", &format!("Bearer {}", sh.viewer_key))
            .set("Last-Event-ID", &last.to_string())
            .call();
        let Ok(resp) = resp else {
            endpoint += 1;
            sleep(Duration::from_millis(100));
            continue;
        };
        let mut kind = String::new();
        let mut id: Option<i64> = None;
        let mut resync = false;
        for line in BufReader::new(resp.into_reader()).lines() {
            let Ok(line) = line else { break };
            if let Some(v) = line.strip_prefix("event:") {
                kind = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if line.is_empty() {
                if let Some(i) = id.take() {
                    received.push(i);
                    last = i;
                }
                if kind == "resync" {
                    resync = true;
                    break;
                }
                kind.clear();
            }
            if sh.stop_subscriber.load(Ordering::Relaxed) && target.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| last >= t) {
                return received;
            }
        }
        if resync {
            // Too far behind to replay: read the rest from the log, then resume live from there.
            let log = super::read_log(&sh.endpoints, &sh.viewer_key, last);
            for e in &log {
                received.push(e.id);
                last = e.id;
            }
        }
        endpoint += 1;
    }
}
