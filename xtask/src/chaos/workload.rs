//! What runs during a chaos run: the clients (acquire, write to the fenced register, heartbeat, release — or
//! vanish, or freeze past their TTL and then try to write with their old token; also book, hold groups all or
//! nothing, and hold under sessions) and the stream subscriber.

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

/// One client until `stop`: each round, a plain hold (most rounds; sometimes booked, sometimes frozen past its
/// TTL), an all-or-nothing group, or a session with a few holds. Every grant writes to the fenced register.
pub fn client(sh: &Shared, id: usize, rng: Rng) {
    let mut c = Client { sh, id, http: agent(Duration::from_secs(5)), owner: format!("chaos-{id}"), rng, granted: HashSet::new() };
    while !sh.stop.load(Ordering::Relaxed) {
        match c.rng.range(0, 10) {
            0 | 1 => c.group(),
            2 | 3 => c.session(),
            _ => c.single(),
        }
    }
}

struct Client<'a> {
    sh: &'a Shared,
    id: usize,
    http: ureq::Agent,
    owner: String,
    rng: Rng,
    /// Hold ids this client was granted (a 200 for one it has already is a renewal, not a grant).
    granted: HashSet<String>,
}

impl Client<'_> {
    /// One call to a random endpoint, recorded with `resource` (a resource, group or session id).
    fn invoke(&mut self, method: &str, op: &'static str, path: &str, resource: &str, body: Option<Value>) -> Answer {
        let ep = self.rng.range(0, self.sh.endpoints.len() as u64) as usize;
        let start = self.sh.ms();
        let answer = call(&self.http, method, &format!("{}{path}", self.sh.endpoints[ep]), &self.sh.client_key, body.as_ref());
        let status = match &answer {
            Answer::Status(s, _) => Some(*s),
            Answer::Unknown => None,
        };
        let c = Call { client: self.id, op, resource: resource.to_owned(), start, end: self.sh.ms(), status, token: None, hold_id: None, fresh: false };
        self.sh.calls.lock().unwrap_or_else(|p| p.into_inner()).push(c);
        answer
    }

    fn lock_op(&mut self, op: &'static str, resource: &str, body: Value) -> Answer {
        self.invoke("POST", op, &format!("/api/locks/{op}"), resource, Some(body))
    }

    /// Records a granted hold (a lock view) on the last call of this client — or, for a group's members, as a
    /// record of its own (op `group-member`, a copy of the group's call) — and writes to the register with its
    /// token.
    fn granted(&mut self, op: &'static str, view: &Value, own_call: bool) -> Option<(String, i64)> {
        let (resource, token, hold) = (view["resource_id"].as_str()?, view["fencing_token"].as_i64()?, view["id"].as_str()?);
        let fresh = self.granted.insert(hold.to_owned());
        let mut calls = self.sh.calls.lock().unwrap_or_else(|p| p.into_inner());
        if own_call {
            let mut c = calls.iter().rev().find(|c| c.client == self.id)?.clone();
            (c.op, c.resource, c.token, c.hold_id, c.fresh) = (op, resource.to_owned(), Some(token), Some(hold.to_owned()), fresh);
            calls.push(c);
        } else if let Some(c) = calls.iter_mut().rev().find(|c| c.client == self.id) {
            (c.token, c.hold_id, c.fresh) = (Some(token), Some(hold.to_owned()), fresh);
        }
        drop(calls);
        self.sh.write(self.id, resource, token, false);
        Some((resource.to_owned(), token))
    }

    fn pick(&mut self) -> String {
        self.sh.resources[self.rng.range(0, self.sh.resources.len() as u64) as usize].clone()
    }

    /// Keeps renewing with `renew` every third of `ttl` for a random part of it; false if a renewal was refused.
    fn keep(&mut self, ttl: u64, mut renew: impl FnMut(&mut Self) -> Answer) -> bool {
        let until = Instant::now() + Duration::from_millis(self.rng.range(50, ttl * 1_000));
        while Instant::now() < until && !self.sh.stop.load(Ordering::Relaxed) {
            sleep((until - Instant::now()).min(Duration::from_millis(ttl * 1_000 / 3)));
            if !matches!(renew(self), Answer::Status(200, _) | Answer::Unknown) {
                return false;
            }
        }
        true
    }

    /// A booking's end `ms` after the server time in a lock view.
    fn booking_end(view: &Value, ms: i64) -> Option<String> {
        let t: chrono::DateTime<chrono::Utc> = view["last_heartbeat"].as_str()?.parse().ok()?;
        Some((t + chrono::Duration::milliseconds(ms)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }

    fn backoff(&mut self, answer: &Answer) {
        let ms = if matches!(answer, Answer::Status(409, _)) { self.rng.range(10, 60) } else { self.rng.range(100, 300) };
        sleep(Duration::from_millis(ms));
    }

    /// Acquire (sometimes waiting in the queue), write, heartbeat, release — or vanish, freeze past the TTL and
    /// write with the old token, or book the hold for a moment (then cancel it, or let it complete).
    fn single(&mut self) {
        let resource = self.pick();
        let ttl = self.rng.range(1, 6);
        let owner = self.owner.clone();
        // A third of them wait their turn in the resource's queue for up to 1–3 s instead of a 409.
        let wait = if self.rng.chance(33) { self.rng.range(1, 4) } else { 0 };
        let answer = self.lock_op("acquire", &resource, json!({"resource_id": resource, "owner_id": owner, "ttl_seconds": ttl, "wait_seconds": wait}));
        let Answer::Status(200, view) = &answer else { return self.backoff(&answer) };
        let Some((_, token)) = self.granted("acquire", view, false) else { return };
        let release = json!({"resource_id": resource, "owner_id": owner, "fencing_token": token});
        if self.sh.freeze[self.id].swap(false, Ordering::Relaxed) {
            // Paused past the TTL (a GC pause, a stalled VM): then acts on the old token as if still holding.
            sleep(Duration::from_millis(ttl * 1_000 + self.rng.range(1_000, 3_000)));
            self.sh.write(self.id, &resource, token, true);
            self.lock_op("release", &resource, release);
            return;
        }
        if self.rng.chance(10) {
            return; // vanishes: the hold expires by itself
        }
        if self.rng.chance(10) {
            // Hold → book for 0.5–2.5 s: no more heartbeats; cancelled by release half the time.
            let Some(until) = Self::booking_end(view, self.rng.range(500, 2_500) as i64) else { return };
            let booked = self.lock_op("book", &resource, json!({"resource_id": resource, "owner_id": owner, "until": until, "fencing_token": token}));
            if matches!(booked, Answer::Status(200, _)) && self.rng.chance(50) {
                sleep(Duration::from_millis(self.rng.range(100, 500)));
                self.lock_op("release", &resource, release);
            }
            return;
        }
        let kept = self.keep(ttl, |c| c.lock_op("heartbeat", &resource, release.clone()));
        if kept {
            self.lock_op("release", &resource, release);
        }
    }

    /// 2–3 resources all or nothing; renewed, released or booked by the group's id — or left to lapse.
    fn group(&mut self) {
        let mut members = vec![self.pick(), self.pick(), self.pick()];
        members.truncate(self.rng.range(2, 4) as usize);
        members.sort();
        members.dedup();
        if members.len() < 2 {
            return;
        }
        let ttl = self.rng.range(1, 6);
        let owner = self.owner.clone();
        let refs: Vec<Value> = members.iter().map(|r| json!({"resource_id": r})).collect();
        let answer = self.lock_op("acquire-group", &members.join(","), json!({"resources": refs, "owner_id": owner, "ttl_seconds": ttl}));
        let Answer::Status(200, body) = &answer else { return self.backoff(&answer) };
        let (Some(group), Some(holds)) = (body["group_id"].as_str().map(str::to_owned), body["holds"].as_array()) else { return };
        for view in holds {
            self.granted("group-member", view, true);
        }
        let by_id = json!({"group_id": group, "owner_id": owner});
        if self.rng.chance(10) {
            return; // vanishes: every member expires
        }
        if self.rng.chance(10) {
            let Some(until) = holds.first().and_then(|v| Self::booking_end(v, self.rng.range(500, 2_500) as i64)) else { return };
            self.lock_op("book", &group, json!({"group_id": group, "owner_id": owner, "until": until}));
            return; // completes by itself
        }
        if self.keep(ttl, |c| c.lock_op("heartbeat-group", &group, by_id.clone())) {
            self.lock_op("release-group", &group, by_id);
        }
    }

    /// A session with 1–3 holds, kept alive by its keepalives only; closed — or left to lapse, taking its holds.
    fn session(&mut self) {
        let ttl = self.rng.range(2, 5);
        let owner = self.owner.clone();
        let answer = self.invoke("POST", "open-session", "/api/sessions", "-", Some(json!({"owner_id": owner, "ttl_seconds": ttl})));
        let Answer::Status(201, body) = &answer else { return self.backoff(&answer) };
        let Some(session) = body["id"].as_str().map(str::to_owned) else { return };
        for _ in 0..self.rng.range(1, 4) {
            let resource = self.pick();
            let body = json!({"resource_id": resource, "owner_id": owner, "session_id": session});
            if let Answer::Status(200, view) = self.invoke("POST", "acquire-in", "/api/locks/acquire", &resource, Some(body)) {
                self.granted("acquire-in", &view, false);
            }
        }
        if self.rng.chance(15) {
            return; // vanishes: the session lapses and takes its holds with it
        }
        let path = format!("/api/sessions/{session}");
        if self.keep(ttl, |c| c.invoke("POST", "keepalive", &format!("{path}/keepalive"), &session, None)) {
            self.invoke("DELETE", "close-session", &path, &session, None);
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
