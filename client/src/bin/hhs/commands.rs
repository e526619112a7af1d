//! The listing and admin subcommands of `hhs`: each one typed call of the endpoint table, printed as a table or,
//! with `--json`, as the API's JSON: a list as one page of every item (`{"items":[…],"next_after":null}`).

use hhs_client::{Client, ClientError};
use hhs_core::wire::endpoints::{
    Acquire, CreateKey, CreateResource, DeleteResource, Endpoint, ListKeys, ListLocks, ListResources, NoBody, Release,
    RevokeKey, UpdateResource,
};
use hhs_core::wire::{AcquireRequest, CreateKeyRequest, CreateResourceRequest, HolderRequest, UpdateResourceRequest};

use super::{Keys, Resources};

/// A page's items and its `next_after`.
type Split<R, T> = fn(R) -> (Vec<T>, Option<String>);

/// Every page of a list endpoint (`?after=` from each page's `next_after`, which `split` takes out with the items).
async fn every_page<E, T>(
    client: &Client,
    filter: Option<String>,
    split: Split<E::Response, T>,
) -> Result<Vec<T>, ClientError>
where
    E: Endpoint<Request = NoBody>,
    E::Response: serde::de::DeserializeOwned,
{
    let (mut all, mut after) = (vec![], None::<String>);
    loop {
        let q: Vec<String> = ["limit=500".to_owned()]
            .into_iter()
            .chain(filter.clone())
            .chain(after.map(|a| format!("after={a}")))
            .collect();
        let (items, next) = split(client.call::<E>(None, Some(&q.join("&")), &NoBody).await?);
        all.extend(items);
        match next {
            Some(next) => after = Some(next),
            None => return Ok(all),
        }
    }
}

fn print_json<T: serde::Serialize>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// Every page's items as one page, the shape the list endpoint answers (so a script reads `.items` either way).
fn print_page<T: serde::Serialize>(items: &[T]) {
    print_json(&serde_json::json!({ "items": items, "next_after": null }));
}

pub async fn resources(client: &Client, cmd: Resources, json: bool) -> Result<(), ClientError> {
    match cmd {
        Resources::Ls { resource_type } => {
            let filter = resource_type.map(|t| format!("type={t}"));
            let all =
                every_page::<ListResources, _>(client, filter, |p| (p.items, p.next_after.map(|a| a.0.to_string())))
                    .await?;
            if json {
                print_page(&all);
            } else {
                println!("{:<36}  {:<12}  {:<15}  identifier", "id", "type", "status");
                for r in &all {
                    let status = format!("{} {}", r.status.code(), r.status.word());
                    println!("{:<36}  {:<12}  {status:<15}  {}", r.id.0, r.resource_type, r.identifier);
                }
            }
        }
        Resources::Add { resource_type, identifier } => {
            let r =
                client.call::<CreateResource>(None, None, &CreateResourceRequest { resource_type, identifier }).await?;
            if json {
                print_json(&r)
            } else {
                println!("{}", r.id.0)
            }
        }
        Resources::Rm { id } => {
            let r = client.call::<DeleteResource>(Some(&id), None, &NoBody).await?;
            if json {
                print_json(&r)
            } else {
                println!("deleted {} ({} {})", r.id.0, r.resource_type, r.identifier)
            }
        }
        Resources::Status { id, status } => {
            // Sent as given: the API says which codes exist (422) and who may set them (403).
            let req = UpdateResourceRequest { identifier: None, status: Some(status) };
            let r = client.call::<UpdateResource>(Some(&id), None, &req).await?;
            if json {
                print_json(&r)
            } else {
                println!("{} is {} ({})", r.identifier, r.status.word(), r.status.code())
            }
        }
    }
    Ok(())
}

pub async fn locks(client: &Client, json: bool) -> Result<(), ClientError> {
    let all = every_page::<ListLocks, _>(client, None, |p| (p.items, p.next_after.map(|a| a.0.to_string()))).await?;
    if json {
        print_page(&all);
        return Ok(());
    }
    println!("{:<12}  {:<20}  {:<15}  {:<16}  {:>5}  expires", "type", "identifier", "status", "owner", "token");
    for l in &all {
        let expires =
            l.expires_at.filter(|_| l.status == hhs_core::LockStatus::Held).map(|t| t.to_rfc3339()).unwrap_or_default();
        println!(
            "{:<12}  {:<20}  {:<15}  {:<16}  {:>5}  {expires}",
            l.resource_type.as_deref().unwrap_or(""),
            l.identifier.as_deref().unwrap_or(""),
            l.status.as_str(),
            l.owner_id.as_deref().unwrap_or("-"),
            l.fencing_token.map(|t| t.to_string()).unwrap_or_default(),
        );
    }
    Ok(())
}

pub async fn keys(client: &Client, cmd: Keys, json: bool) -> Result<(), ClientError> {
    match cmd {
        Keys::Ls => {
            let page = client.call::<ListKeys>(None, None, &NoBody).await?;
            if json {
                print_json(&page);
            } else {
                println!("{:<16}  {:<20}  {:<7}  revoked", "id", "principal", "role");
                for k in &page.items {
                    println!(
                        "{:<16}  {:<20}  {:<7}  {}",
                        k.id,
                        k.principal,
                        k.role.as_str(),
                        k.revoked_at.map(|t| t.to_rfc3339()).unwrap_or_default()
                    );
                }
            }
        }
        Keys::Create { principal, role } => {
            let k = client.call::<CreateKey>(None, None, &CreateKeyRequest { principal, role }).await?;
            // The key itself is shown once, here; it cannot be read back.
            if json {
                print_json(&k)
            } else {
                println!("{}", k.key)
            }
        }
        Keys::Revoke { id } => {
            let k = client.call::<RevokeKey>(Some(&id), None, &NoBody).await?;
            if json {
                print_json(&k)
            } else {
                println!("revoked {}", k.id)
            }
        }
    }
    Ok(())
}

/// The live event stream, a line per event (time, kind, resource, owner, token), until the stream ends.
pub async fn watch(client: &Client) -> Result<(), ClientError> {
    let mut resp = client.get_raw("/api/events/stream").await?;
    let mut buf = String::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| ClientError::Transport(e.to_string()))? {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find('\n') {
            let line: String = buf.drain(..=end).collect();
            let Some(data) = line.trim_end().strip_prefix("data:") else { continue };
            let Ok(e) = serde_json::from_str::<hhs_core::wire::EventView>(data.trim()) else { continue };
            println!(
                "{}  {:<16}  {}  {}  {}",
                e.at.to_rfc3339(),
                e.kind.as_str(),
                e.resource_id.map(|r| r.0.to_string()).unwrap_or_default(),
                e.owner_id.unwrap_or_default(),
                e.fencing_token.map(|t| format!("token {t}")).unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// N owners acquire one resource at once; prints how many got each answer, then releases the winner's hold.
pub async fn race(client: &Client, resource: &str, n: usize) -> Result<(), ClientError> {
    let mut no_retry = client.clone();
    no_retry.retry.attempts = 1;
    // On stderr, and only on a terminal (indicatif hides it otherwise): the table on stdout stays clean.
    let bar = indicatif::ProgressBar::new(n as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} answers ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (c, req) = (
                no_retry.clone(),
                AcquireRequest {
                    resource_id: resource.to_owned(),
                    owner_id: format!("racer-{i}"),
                    ttl_seconds: Some(30.0),
                    session_id: None,
                    wait_seconds: None,
                },
            );
            let bar = bar.clone();
            tokio::spawn(async move {
                let answer = c.call::<Acquire>(None, None, &req).await;
                bar.inc(1);
                (i, answer)
            })
        })
        .collect();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut winners = vec![];
    for t in tasks {
        let (i, answer) = t.await.map_err(|e| ClientError::Transport(e.to_string()))?;
        let label = match &answer {
            Ok(_) => {
                winners.push(i);
                "200 granted".to_owned()
            }
            Err(ClientError::Api { status, error }) => format!("{status} {}", error.code.as_str()),
            Err(e) => format!("no answer ({e})"),
        };
        *counts.entry(label).or_default() += 1;
    }
    bar.finish_and_clear();
    println!("| answer | count |\n|---|---:|");
    for (label, count) in &counts {
        println!("| {label} | {count} |");
    }
    for i in winners {
        let req =
            HolderRequest { resource_id: resource.to_owned(), owner_id: format!("racer-{i}"), fencing_token: None };
        client.call::<Release>(None, None, &req).await?;
    }
    Ok(())
}
