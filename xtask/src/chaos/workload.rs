//! What runs during a chaos run: the clients (acquire, write to the fenced register, heartbeat, release — or
//! vanish, or freeze past their TTL and then try to write with their old token; also book, hold groups all or
//! nothing, and hold under sessions), the admin steward (statuses over HTTP and HL7, force-releases, type
//! policy changes, deletes and re-creates, one at a time) and the stream subscriber. Every call is timed on one
//! monotonic clock; every client records what it saw of each hold, for the real-time client-view check.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use hhs_core::reference::{Effect, Seen, Write as Wrote};
use hhs_core::status::Status;

use super::checks::{Call, Facts, Sighting, Write};
use super::http::{agent, call, Answer};
use super::rng::Rng;

/// What the clients, the subscriber and the fault schedule share.
pub struct Shared {
    pub t0: Instant,
    /// The wall clock at `t0`, to place a booking's end (a UTC instant) on the monotonic clock.
    t0_utc: chrono::DateTime<chrono::Utc>,
    /// Base URLs the clients call (each replica; the edge too with `--edge`).
    pub endpoints: Vec<String>,
    pub client_key: String,
    pub viewer_key: String,
    /// The resources' ids (a deleted one is replaced by its re-created successor), with each one's type and
    /// identifier.
    pub resources: Mutex<Vec<(String, String, String)>>,
    /// What each client saw of its holds, and the steward's writes the model decides by.
    pub sightings: Mutex<Vec<Sighting>>,
    pub facts: Mutex<Facts>,
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
    pub fn new(
        endpoints: Vec<String>,
        client_key: String,
        viewer_key: String,
        resources: Vec<(String, String, String)>,
        clients: usize,
    ) -> Shared {
        let mut facts = Facts::default();
        for (id, ty, _) in &resources {
            facts.type_of.insert(id.clone(), ty.clone());
        }
        Shared {
            t0: Instant::now(),
            t0_utc: chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now()),
            endpoints,
            client_key,
            viewer_key,
            resources: Mutex::new(resources),
            sightings: Mutex::default(),
            facts: Mutex::new(facts),
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

    pub fn us(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    /// A UTC instant (RFC 3339) on the monotonic clock, µs since `t0` (0 if before it or unreadable).
    fn utc_us(&self, at: &str) -> Option<u64> {
        let t: chrono::DateTime<chrono::Utc> = at.parse().ok()?;
        Some((t - self.t0_utc).num_microseconds()?.max(0) as u64)
    }

    fn saw(&self, client: usize, resource: &str, hold: &str, seen: Seen) {
        let s = Sighting { client, resource: resource.to_owned(), hold: hold.to_owned(), seen };
        self.sightings.lock().unwrap_or_else(|p| p.into_inner()).push(s);
    }

    fn record(&self, c: Call) {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(c);
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
        self.writes.lock().unwrap_or_else(|p| p.into_inner()).push(Write {
            client,
            resource: resource.to_owned(),
            token,
            seen,
            accepted,
            frozen,
        });
        accepted
    }
}

/// One client until `stop`: each round, a plain hold (most rounds; sometimes booked, sometimes frozen past its
/// TTL), an all-or-nothing group, or a session with a few holds. Every grant writes to the fenced register.
pub fn client(sh: &Shared, id: usize, rng: Rng) {
    let mut c = Client {
        sh,
        id,
        http: agent(Duration::from_secs(5)),
        owner: format!("chaos-{id}"),
        rng,
        granted: HashSet::new(),
    };
    while !sh.stop.load(Ordering::Relaxed) {
        match c.rng.range(0, 10) {
            0 | 1 => c.group(),
            2 | 3 => c.session(),
            _ => c.single(),
        }
    }
}

/// µs in `seconds`.
fn secs_us(seconds: u64) -> u64 {
    seconds * 1_000_000
}

/// One call's instants on the run's clock: sent, and answered (`None`: no answer).
type Times = (u64, Option<u64>);

struct Client<'a> {
    sh: &'a Shared,
    id: usize,
    http: ureq::Agent,
    owner: String,
    rng: Rng,
    /// Hold ids this client was granted (a 200 for one it has already is a renewal, not a grant).
    granted: HashSet<String>,
}

/// One call to a random endpoint, recorded as `op` on `resource` (a resource, group or session id) with the TTL
/// it asked and the holds it acts on.
#[allow(clippy::too_many_arguments)]
fn invoke(
    sh: &Shared,
    http: &ureq::Agent,
    rng: &mut Rng,
    client: usize,
    key: &str,
    method: &str,
    op: &'static str,
    path: &str,
    resource: &str,
    body: Option<Value>,
    ttl: Option<u32>,
    holds: &[String],
) -> (Answer, Times) {
    let ep = rng.range(0, sh.endpoints.len() as u64) as usize;
    let (start, sent) = (sh.ms(), sh.us());
    let answer = call(http, method, &format!("{}{path}", sh.endpoints[ep]), key, body.as_ref());
    let (end, now) = (sh.ms(), sh.us());
    sh.record(recorded(client, op, resource, (start, end), sent, now, &answer, ttl, holds));
    let answered = answer_time(&answer, now);
    (answer, (sent, answered))
}

fn answer_time(answer: &Answer, now: u64) -> Option<u64> {
    matches!(answer, Answer::Status(..)).then_some(now)
}

#[allow(clippy::too_many_arguments)]
fn recorded(
    client: usize,
    op: &'static str,
    resource: &str,
    ms: (u64, u64),
    sent: u64,
    now: u64,
    answer: &Answer,
    ttl: Option<u32>,
    holds: &[String],
) -> Call {
    let (status, code) = match answer {
        Answer::Status(s, body) => (Some(*s), body["error"]["code"].as_str().map(str::to_owned)),
        Answer::Unknown => (None, None),
    };
    let mut c = Call::new(client, op, resource, ms, (sent, answer_time(answer, now)), status);
    (c.code, c.ttl, c.holds) = (code, ttl, holds.to_vec());
    c
}

impl Client<'_> {
    #[allow(clippy::too_many_arguments)]
    fn invoke(
        &mut self,
        method: &str,
        op: &'static str,
        path: &str,
        resource: &str,
        body: Option<Value>,
        ttl: Option<u32>,
        holds: &[String],
    ) -> (Answer, Times) {
        invoke(
            self.sh,
            &self.http,
            &mut self.rng,
            self.id,
            &self.sh.client_key,
            method,
            op,
            path,
            resource,
            body,
            ttl,
            holds,
        )
    }

    fn lock_op(
        &mut self,
        op: &'static str,
        resource: &str,
        body: Value,
        ttl: Option<u32>,
        holds: &[String],
    ) -> (Answer, Times) {
        self.invoke("POST", op, &format!("/api/locks/{op}"), resource, Some(body), ttl, holds)
    }

    /// Records a granted hold (a lock view) on the last call of this client — or, for a group's members, as a
    /// record of its own (op `group-member`, a copy of the group's call) — writes to the register with its
    /// token, and notes what the client now believes: the hold until `until` (the acquire's send plus the TTL
    /// it was granted, unless given: a session's basis). Its resource, token and hold id.
    fn granted(
        &mut self,
        op: &'static str,
        view: &Value,
        own_call: bool,
        (sent, answered): (u64, u64),
        until: Option<u64>,
    ) -> Option<(String, i64, String)> {
        let (resource, token, hold) =
            (view["resource_id"].as_str()?, view["fencing_token"].as_i64()?, view["id"].as_str()?);
        let fresh = self.granted.insert(hold.to_owned());
        let mut calls = self.sh.calls.lock().unwrap_or_else(|p| p.into_inner());
        if own_call {
            let mut c = calls.iter().rev().find(|c| c.client == self.id)?.clone();
            (c.op, c.resource, c.token, c.hold_id, c.fresh) =
                (op, resource.to_owned(), Some(token), Some(hold.to_owned()), fresh);
            calls.push(c);
        } else if let Some(c) = calls.iter_mut().rev().find(|c| c.client == self.id) {
            (c.token, c.hold_id, c.fresh) = (Some(token), Some(hold.to_owned()), fresh);
        }
        drop(calls);
        let ttl = view["ttl_seconds"].as_u64().unwrap_or(0);
        self.sh.saw(self.id, resource, hold, Seen::Ack { sent, answered, until: until.unwrap_or(sent + secs_us(ttl)) });
        self.sh.write(self.id, resource, token, false);
        Some((resource.to_owned(), token, hold.to_owned()))
    }

    fn pick(&mut self) -> String {
        let resources = self.sh.resources.lock().unwrap_or_else(|p| p.into_inner());
        resources[self.rng.range(0, resources.len() as u64) as usize].0.clone()
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
        let ms =
            if matches!(answer, Answer::Status(409, _)) { self.rng.range(10, 60) } else { self.rng.range(100, 300) };
        sleep(Duration::from_millis(ms));
    }

    /// What a client believes after asking to book `holds` until `until`: acknowledged, each until the booked
    /// end; refused, nothing changed; unknown, it stops relying on the TTL (the booking may have shortened it).
    fn saw_booking(&mut self, holds: &[(String, String)], answer: &Answer, (sent, answered): Times, until: &str) {
        let end = self.sh.utc_us(until);
        for (resource, hold) in holds {
            let seen = match (answer, answered, end) {
                (Answer::Status(200, _), Some(answered), Some(until)) => Seen::Booked { sent, answered, until },
                (Answer::Status(s, _), _, _) if (400..500).contains(s) => continue,
                _ => Seen::Released { sent },
            };
            self.sh.saw(self.id, resource, hold, seen);
        }
    }

    fn saw_release(&mut self, holds: &[(String, String)], (sent, _): Times) {
        for (resource, hold) in holds {
            self.sh.saw(self.id, resource, hold, Seen::Released { sent });
        }
    }

    /// Acquire (sometimes waiting in the queue), write, heartbeat, release — or vanish, freeze past the TTL and
    /// write with the old token, or book the hold for a moment (then cancel it, or let it complete).
    fn single(&mut self) {
        let resource = self.pick();
        let ttl = self.rng.range(1, 6);
        let owner = self.owner.clone();
        // A third of them wait their turn in the resource's queue for up to 1–3 s instead of a 409.
        let wait = if self.rng.chance(33) { self.rng.range(1, 4) } else { 0 };
        let body = json!({"resource_id": resource, "owner_id": owner, "ttl_seconds": ttl, "wait_seconds": wait});
        let (answer, (sent, answered)) = self.lock_op("acquire", &resource, body, Some(ttl as u32), &[]);
        if wait > 0 {
            let mut calls = self.sh.calls.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = calls.iter_mut().rev().find(|c| c.client == self.id) {
                c.waited = true;
            }
        }
        let (Answer::Status(200, view), Some(answered)) = (&answer, answered) else { return self.backoff(&answer) };
        let Some((_, token, hold)) = self.granted("acquire", view, false, (sent, answered), None) else { return };
        let mine = [(resource.clone(), hold.clone())];
        let holds = [hold];
        let release = json!({"resource_id": resource, "owner_id": owner, "fencing_token": token});
        if self.sh.freeze[self.id].swap(false, Ordering::Relaxed) {
            // Paused past the TTL (a GC pause, a stalled VM): then acts on the old token as if still holding.
            sleep(Duration::from_millis(ttl * 1_000 + self.rng.range(1_000, 3_000)));
            self.sh.write(self.id, &resource, token, true);
            let (_, t) = self.lock_op("release", &resource, release, None, &holds);
            return self.saw_release(&mine, t);
        }
        if self.rng.chance(10) {
            return; // vanishes: the hold expires by itself
        }
        if self.rng.chance(10) {
            // Hold → book for 0.5–2.5 s: no more heartbeats; cancelled by release half the time.
            let Some(until) = Self::booking_end(view, self.rng.range(500, 2_500) as i64) else { return };
            let body = json!({"resource_id": resource, "owner_id": owner, "until": until, "fencing_token": token});
            let (booked, t) = self.lock_op("book", &resource, body, None, &holds);
            self.saw_booking(&mine, &booked, t, &until);
            if matches!(booked, Answer::Status(200, _)) && self.rng.chance(50) {
                sleep(Duration::from_millis(self.rng.range(100, 500)));
                let (_, t) = self.lock_op("release", &resource, release, None, &holds);
                self.saw_release(&mine, t);
            }
            return;
        }
        let kept = self.keep(ttl, |c| {
            let (answer, (sent, answered)) = c.lock_op("heartbeat", &resource, release.clone(), None, &holds);
            if let (Answer::Status(200, view), Some(answered)) = (&answer, answered) {
                let until = sent + secs_us(view["ttl_seconds"].as_u64().unwrap_or(ttl));
                c.sh.saw(c.id, &resource, &holds[0], Seen::Ack { sent, answered, until });
            }
            answer
        });
        if kept {
            let (_, t) = self.lock_op("release", &resource, release, None, &holds);
            self.saw_release(&mine, t);
        }
    }

    /// 2–3 resources all or nothing; renewed, released or booked by the group's id — or left to lapse. A 200 to
    /// a group operation means every member, so the client believes each member renewed (as `GroupGuard` does).
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
        let body = json!({"resources": refs, "owner_id": owner, "ttl_seconds": ttl});
        let (answer, (sent, answered)) = self.lock_op("acquire-group", &members.join(","), body, Some(ttl as u32), &[]);
        let (Answer::Status(200, body), Some(answered)) = (&answer, answered) else { return self.backoff(&answer) };
        let (Some(group), Some(views)) = (body["group_id"].as_str().map(str::to_owned), body["holds"].as_array())
        else {
            return;
        };
        let mut mine = vec![];
        for view in views {
            if let Some((resource, _, hold)) = self.granted("group-member", view, true, (sent, answered), None) {
                mine.push((resource, hold));
            }
        }
        let holds: Vec<String> = mine.iter().map(|(_, h)| h.clone()).collect();
        let by_id = json!({"group_id": group, "owner_id": owner});
        if self.rng.chance(10) {
            return; // vanishes: every member expires
        }
        if self.rng.chance(10) {
            let Some(until) = views.first().and_then(|v| Self::booking_end(v, self.rng.range(500, 2_500) as i64))
            else {
                return;
            };
            let (booked, t) = self.lock_op(
                "book",
                &group,
                json!({"group_id": group, "owner_id": owner, "until": until}),
                None,
                &holds,
            );
            self.saw_booking(&mine, &booked, t, &until);
            return; // completes by itself
        }
        let kept = self.keep(ttl, |c| {
            let (answer, (sent, answered)) = c.lock_op("heartbeat-group", &group, by_id.clone(), None, &holds);
            if let (Answer::Status(200, _), Some(answered)) = (&answer, answered) {
                for (resource, hold) in &mine {
                    c.sh.saw(c.id, resource, hold, Seen::Ack { sent, answered, until: sent + secs_us(ttl) });
                }
            }
            answer
        });
        if kept {
            let (_, t) = self.lock_op("release-group", &group, by_id, None, &holds);
            self.saw_release(&mine, t);
        }
    }

    /// A session with 1–3 holds, kept alive by its keepalives only; closed — or left to lapse, taking its holds.
    /// A hold under it is good until the session's last acknowledged keepalive (or its opening) plus its TTL; a
    /// keepalive that lists the holds it renewed renews only those in the client's eyes.
    fn session(&mut self) {
        let ttl = self.rng.range(2, 5);
        let owner = self.owner.clone();
        let (answer, (sent, _)) = self.invoke(
            "POST",
            "open-session",
            "/api/sessions",
            "-",
            Some(json!({"owner_id": owner, "ttl_seconds": ttl})),
            Some(ttl as u32),
            &[],
        );
        let Answer::Status(201, body) = &answer else { return self.backoff(&answer) };
        let Some(session) = body["id"].as_str().map(str::to_owned) else { return };
        let ttl_us = secs_us(body["ttl_seconds"].as_u64().unwrap_or(ttl));
        let mut basis = sent + ttl_us;
        // Each hold: its resource, id, token and when its grant's answer came.
        let mut mine: Vec<(String, String, i64, u64)> = vec![];
        for _ in 0..self.rng.range(1, 4) {
            let resource = self.pick();
            let body = json!({"resource_id": resource, "owner_id": owner, "session_id": session});
            let (answer, (sent, answered)) =
                self.invoke("POST", "acquire-in", "/api/locks/acquire", &resource, Some(body), Some(ttl as u32), &[]);
            if let (Answer::Status(200, view), Some(answered)) = (&answer, answered) {
                if let Some((resource, token, hold)) =
                    self.granted("acquire-in", view, false, (sent, answered), Some(basis))
                {
                    mine.push((resource, hold, token, answered));
                }
            }
        }
        if self.rng.chance(15) {
            return; // vanishes: the session lapses and takes its holds with it
        }
        let path = format!("/api/sessions/{session}");
        let holds: Vec<String> = mine.iter().map(|m| m.1.clone()).collect();
        let kept = self.keep(ttl, |c| {
            let (answer, (sent, answered)) =
                c.invoke("POST", "keepalive", &format!("{path}/keepalive"), &session, None, None, &holds);
            if let (Answer::Status(200, body), Some(answered)) = (&answer, answered) {
                basis = basis.max(sent + ttl_us);
                // A newer origin lists the holds it renewed (resource and token); an older one only counts them.
                let renewed: Option<Vec<String>> = body["renewed"].as_array().map(|list| {
                    let listed = |m: &&(String, String, i64, u64)| {
                        list.iter()
                            .any(|r| r["resource_id"] == m.0.as_str() && r["fencing_token"].as_i64() == Some(m.2))
                    };
                    mine.iter().filter(listed).map(|m| m.1.clone()).collect()
                });
                for (resource, hold, _, granted_at) in &mine {
                    if *granted_at < sent && renewed.as_ref().is_none_or(|r| r.contains(hold)) {
                        c.sh.saw(c.id, resource, hold, Seen::Ack { sent, answered, until: sent + ttl_us });
                    }
                }
                let mut calls = c.sh.calls.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(call) = calls.iter_mut().rev().find(|x| x.client == c.id) {
                    call.renewed = renewed;
                }
            }
            answer
        });
        if kept {
            let (_, t) = self.invoke("DELETE", "close-session", &path, &session, None, None, &holds);
            let pairs: Vec<(String, String)> = mine.iter().map(|m| (m.0.clone(), m.1.clone())).collect();
            self.saw_release(&pairs, t);
        }
    }
}

/// The admin steward, one call at a time so that the model can decide what each client's call must meet: sets
/// a resource's status away from U for 1–3 s (over `PATCH` or, for a bed, an HL7 `ADT` message) and back,
/// force-releases a resource's hold, narrows a type's TTL bounds for 2–4 s, and deletes a bed (force-releasing
/// it first) and creates it again under a new id. Its writes go to the model's facts, its calls to the log of
/// calls (as client `id`).
pub fn steward(sh: &Shared, id: usize, admin: &str, integration: &str, mut rng: Rng) {
    let http = agent(Duration::from_secs(5));
    let mut back: Vec<(Instant, String)> = vec![]; // a resource to set back to U at
    let mut widen: Vec<(Instant, &'static str)> = vec![];
    let mut unavailable: HashSet<String> = HashSet::new();
    let mut control = 0u64;
    let mut bounds: HashMap<&'static str, (u32, u32)> = HashMap::new();
    {
        let facts = sh.facts.lock().unwrap_or_else(|p| p.into_inner());
        for t in ["scanner", "or-room"] {
            bounds.insert(t, facts.initial_bounds.get(t).copied().unwrap_or((1, 3600)));
        }
    }
    while !sh.stop.load(Ordering::Relaxed) {
        sleep(Duration::from_millis(rng.range(150, 600)));
        let now = Instant::now();
        if let Some(i) = back.iter().position(|(at, _)| *at <= now) {
            let (_, r) = back.swap_remove(i);
            if set_status(sh, &http, &mut rng, id, integration, &r, Status::Unoccupied, &mut control) {
                unavailable.remove(&r);
            } else {
                back.push((now + Duration::from_millis(500), r));
            }
            continue;
        }
        if let Some(i) = widen.iter().position(|(at, _)| *at <= now) {
            let (_, ty) = widen.swap_remove(i);
            let wide = bounds[ty];
            if !put_type(
                sh,
                &http,
                &mut rng,
                id,
                admin,
                ty,
                json!({"max_ttl_seconds": wide.1, "default_ttl_seconds": 300.min(wide.1)}),
                (wide.0, wide.1),
            ) {
                widen.push((now + Duration::from_millis(500), ty));
            }
            continue;
        }
        let pick = {
            let resources = sh.resources.lock().unwrap_or_else(|p| p.into_inner());
            resources[rng.range(0, resources.len() as u64) as usize].clone()
        };
        match rng.range(0, 100) {
            0..=34 if !unavailable.contains(&pick.0) && unavailable.len() < 3 => {
                let to =
                    [Status::Closed, Status::Housekeeping, Status::Isolated, Status::Contaminated, Status::Occupied]
                        [rng.range(0, 5) as usize];
                set_status(sh, &http, &mut rng, id, integration, &pick.0, to, &mut control);
                // Whatever the answer, set it back (an unanswered change may have applied).
                unavailable.insert(pick.0.clone());
                back.push((now + Duration::from_millis(rng.range(1_000, 3_000)), pick.0));
            }
            35..=64 => {
                force_release(sh, &http, &mut rng, id, admin, &pick.0);
            }
            65..=74 if widen.is_empty() => {
                let ty = if rng.chance(50) { "scanner" } else { "or-room" };
                if put_type(
                    sh,
                    &http,
                    &mut rng,
                    id,
                    admin,
                    ty,
                    json!({"max_ttl_seconds": 2, "default_ttl_seconds": 2}),
                    (bounds[ty].0.min(2), 2),
                ) {
                    widen.push((now + Duration::from_millis(rng.range(2_000, 4_000)), ty));
                } else {
                    widen.push((now, ty)); // unknown: widen again to be sure
                }
            }
            75..=84 if pick.1 == "bed" && !unavailable.contains(&pick.0) => {
                recreate(sh, &http, &mut rng, id, admin, &pick)
            }
            _ => {}
        }
    }
}

fn effect(answer: &Answer, applied: u16) -> Effect {
    match answer {
        Answer::Status(s, _) if *s == applied => Effect::Applied,
        Answer::Status(s, _) if (400..500).contains(s) => Effect::Refused,
        _ => Effect::Unknown,
    }
}

/// Sets `resource`'s status over `PATCH` or (a bed, half the time) HL7; whether it certainly applied.
#[allow(clippy::too_many_arguments)]
fn set_status(
    sh: &Shared,
    http: &ureq::Agent,
    rng: &mut Rng,
    id: usize,
    key: &str,
    resource: &str,
    to: Status,
    control: &mut u64,
) -> bool {
    let known = sh.resources.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|r| r.0 == resource).cloned();
    let Some((_, ty, ident)) = known else { return true }; // deleted meanwhile
    let (answer, times, applied) = if ty == "bed" && rng.chance(50) {
        *control += 1;
        let (msh, evn) = ("MSH|^~\\&|ADT|CHAOS|HHS|HOSP|20261204083000||ADT^", "|P|2.5\r");
        let message = match to {
            Status::Occupied if rng.chance(50) => format!("{msh}A01|chaos-{control}{evn}EVN|A01|20261204083000\rPID|1||1^^^HOSP^MR||DOE^JANE||19700101|F\rPV1|1|I|{ident}\r"),
            Status::Unoccupied if rng.chance(50) => format!("{msh}A03|chaos-{control}{evn}EVN|A03|20261204083000\rPID|1||1^^^HOSP^MR||DOE^JANE||19700101|F\rPV1|1|I|{ident}\r"),
            _ => format!("{msh}A20^ADT_A20|chaos-{control}{evn}EVN|A20|20261204083000\rNPU|{ident}|{}\r", to.code()),
        };
        let ep = rng.range(0, sh.endpoints.len() as u64) as usize;
        let (start, sent) = (sh.ms(), sh.us());
        let answer = super::http::call_text(
            http,
            &format!("{}/api/hl7/v2", sh.endpoints[ep]),
            key,
            "application/hl7-v2",
            &message,
        );
        let (end, now) = (sh.ms(), sh.us());
        let ack = match &answer {
            Answer::Status(200, Value::String(text)) => {
                text.split('\r').find(|l| l.starts_with("MSA|")).and_then(|l| l.split('|').nth(1)).map(str::to_owned)
            }
            _ => None,
        };
        let mut c = recorded(id, "hl7", resource, (start, end), sent, now, &answer, None, &[]);
        let applied = match (&answer, ack.as_deref()) {
            (Answer::Status(200, _), Some("AA")) => Effect::Applied,
            (Answer::Status(200, _), Some(_)) => Effect::Refused,
            (a, _) => effect(a, 200),
        };
        c.code = ack.or(c.code);
        sh.record(c);
        (answer.clone(), (sent, answer_time(&answer, now)), applied)
    } else {
        let body = json!({"status": to.code()});
        let (answer, times) = invoke(
            sh,
            http,
            rng,
            id,
            key,
            "PATCH",
            "set-status",
            &format!("/api/resources/{resource}"),
            resource,
            Some(body),
            None,
            &[],
        );
        let applied = effect(&answer, 200);
        (answer, times, applied)
    };
    let _ = answer;
    let write = Wrote { sent: times.0, answered: times.1, effect: applied, value: to };
    sh.facts.lock().unwrap_or_else(|p| p.into_inner()).status.entry(resource.to_owned()).or_default().push(write);
    applied == Effect::Applied
}

/// Force-releases whatever holds `resource` (recorded with the hold it ended, from the answer).
fn force_release(sh: &Shared, http: &ureq::Agent, rng: &mut Rng, id: usize, key: &str, resource: &str) {
    let body = json!({"resource_id": resource, "reason": "chaos: an admin takes the bed back"});
    let (answer, _) = invoke(
        sh,
        http,
        rng,
        id,
        key,
        "POST",
        "force-release",
        "/api/locks/force-release",
        resource,
        Some(body),
        None,
        &[],
    );
    if let Answer::Status(200, view) = &answer {
        let mut calls = sh.calls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = calls.iter_mut().rev().find(|c| c.client == id) {
            (c.hold_id, c.token) = (view["id"].as_str().map(str::to_owned), view["fencing_token"].as_i64());
        }
    }
}

/// Sets a type's policy; whether it certainly applied (recorded as the TTL bounds it sets).
#[allow(clippy::too_many_arguments)]
fn put_type(
    sh: &Shared,
    http: &ureq::Agent,
    rng: &mut Rng,
    id: usize,
    key: &str,
    ty: &str,
    change: Value,
    bounds: (u32, u32),
) -> bool {
    let (answer, (sent, answered)) =
        invoke(sh, http, rng, id, key, "PUT", "put-type", &format!("/api/types/{ty}"), ty, Some(change), None, &[]);
    let applied = effect(&answer, 200);
    let write = Wrote { sent, answered, effect: applied, value: bounds };
    sh.facts.lock().unwrap_or_else(|p| p.into_inner()).bounds.entry(ty.to_owned()).or_default().push(write);
    applied == Effect::Applied
}

/// Deletes a bed (after force-releasing it) and creates it again: clients then find it under its new id.
fn recreate(
    sh: &Shared,
    http: &ureq::Agent,
    rng: &mut Rng,
    id: usize,
    key: &str,
    (resource, ty, ident): &(String, String, String),
) {
    force_release(sh, http, rng, id, key, resource);
    let (answer, (sent, answered)) = invoke(
        sh,
        http,
        rng,
        id,
        key,
        "DELETE",
        "delete",
        &format!("/api/resources/{resource}"),
        resource,
        None,
        None,
        &[],
    );
    let gone = effect(&answer, 200);
    sh.facts.lock().unwrap_or_else(|p| p.into_inner()).exists.entry(resource.clone()).or_default().push(Wrote {
        sent,
        answered,
        effect: gone,
        value: false,
    });
    if gone == Effect::Refused {
        return;
    }
    let body = json!({"type": ty, "identifier": ident});
    let (created, _) = invoke(sh, http, rng, id, key, "POST", "create", "/api/resources", ident, Some(body), None, &[]);
    if let Answer::Status(201, view) = created {
        let Some(new) = view["id"].as_str().map(str::to_owned) else { return };
        sh.facts.lock().unwrap_or_else(|p| p.into_inner()).type_of.insert(new.clone(), ty.clone());
        let mut resources = sh.resources.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = resources.iter_mut().find(|r| r.0 == *resource) {
            r.0 = new;
        }
    }
}

/// The subscriber: reads the live stream from `after`, reconnecting to the next replica (with `Last-Event-ID`)
/// whenever a connection ends, and on `resync` reads what it missed from the log. Returns every event id it
/// received, in order, once `stop_subscriber` is set and it has reached `target` (or 30 s passed).
pub fn subscriber(sh: &Shared, after: i64, target: &Mutex<Option<i64>>) -> Vec<i64> {
    let http = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_millis(500))
        .timeout_read(Duration::from_secs(3))
        .build();
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
            if sh.stop_subscriber.load(Ordering::Relaxed)
                && target.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| last >= t)
            {
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
