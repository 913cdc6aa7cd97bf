//! The client tour of docs/client.md, runnable: `cargo run -p errand-client --example tour`
//! against `just up` (or set ERRAND_URL / ERRAND_API_KEY).

use std::time::Duration;

use errand_client::{Client, ListTasks, SubmitTask, TaskEvent, TaskState};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), errand_client::Error> {
    let url = std::env::var("ERRAND_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let mut builder = Client::builder(url);
    if let Ok(key) = std::env::var("ERRAND_API_KEY") {
        builder = builder.api_key(key);
    }
    let client = builder.build()?;

    // Submit, then follow it live: the record now, then one event per change.
    let task = client
        .submit(&SubmitTask::new("sleep").payload(json!({"duration_secs": 3})))
        .await?;
    let mut events = client.watch(task.id.as_str()).await?;
    while let Some(ev) = events.next().await {
        match ev? {
            TaskEvent::Progress(r) => println!("progress {:?}", r.progress),
            TaskEvent::State(r) => println!("now {}", r.state.as_str()),
            TaskEvent::Gone => break,
        }
    }

    // Or block until it ends (long-poll; no busy polling).
    let done = client
        .wait(task.id.as_str(), Duration::from_secs(60))
        .await?;
    assert_eq!(done.state, TaskState::Succeeded);
    println!("result {}", done.result.unwrap_or_default());

    // Every failed task of a queue, page after page, as one stream.
    let failed: Vec<_> = client
        .list(ListTasks {
            state: Some(TaskState::Failed),
            queue: Some("default".into()),
            ..Default::default()
        })
        .try_collect()
        .await?;
    println!("{} failed tasks in `default`", failed.len());

    // Refusals carry the server's problem+json body.
    match client.submit(&SubmitTask::new("no-such-kind")).await {
        Err(e) if e.status() == Some(422) => {
            let p = e.problem().expect("an API refusal");
            println!("refused: field {:?}: {}", p.field, p.detail);
        }
        other => {
            other?;
        }
    }
    Ok(())
}
