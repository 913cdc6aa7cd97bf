//! errand-client: a typed async client for errand's HTTP API.
//!
//! The records it hands back are errand-core's own types ([`TaskRecord`], [`Schedule`],
//! [`WorkerInfo`]), the very structs the server serializes, so a field added to the API
//! reaches clients without a copy to keep in step. Request bodies and the few response
//! envelopes that live in errand-api (which pulls in actix-web) are declared here, in
//! [`types`], with the same field names.
//!
//! ```no_run
//! use errand_client::{Client, SubmitTask};
//! use futures::StreamExt;
//!
//! # async fn demo() -> Result<(), errand_client::Error> {
//! let client = Client::builder("http://127.0.0.1:8080").api_key("secret").build()?;
//! let task = client
//!     .submit(&SubmitTask::new("sleep").payload(serde_json::json!({"duration_secs": 3})))
//!     .await?;
//! let mut events = client.watch(task.id.as_str()).await?;
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     if let Some(p) = event.record().and_then(|r| r.progress.as_ref()) {
//!         println!("{}%", p.percent);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Every method returns [`Error`]: an API refusal carries the server's problem+json body
//! ([`Problem`]), so a caller can branch on `status` and name the offending `field`.

mod error;
mod sse;
pub mod types;

use std::{pin::Pin, time::Duration};

use futures::{Stream, StreamExt, TryStreamExt, stream};
use reqwest::{Method, RequestBuilder, Response, header};
use serde::de::DeserializeOwned;

pub use errand_core::{
    schedule::{Misfire, Schedule},
    store::{WorkerInfo, WorkerQueue},
    task::{
        Callback, Progress, TaskError, TaskId, TaskRecord, TaskState, WebhookEvent, WebhookState,
        WebhookStatus,
    },
};
pub use error::{Error, Problem};
pub use sse::TaskEvent;
pub use types::*;

/// A boxed stream, so the client's streams can be stored and passed around by name.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Error>> + Send>>;

/// Builds a [`Client`]: base URL, API key, timeouts.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base: String,
    api_key: Option<String>,
    connect_timeout: Duration,
    timeout: Duration,
}

impl ClientBuilder {
    /// Sent as `Authorization: Bearer <key>` on every request (needed when the server has
    /// `api.api_keys`).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// How long to wait for a TCP connection: short by default, because an unreachable
    /// server should be reported quickly, not after a long-poll's worth of time.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Limit for one ordinary request. Long polls (`wait`) add their wait to it; event
    /// streams have none (they last as long as the task).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        let base = self.base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::InvalidUrl(base));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .build()
            .map_err(Error::Transport)?;
        Ok(Client {
            http,
            base,
            api_key: self.api_key,
            timeout: self.timeout,
        })
    }
}

/// A handle on one errand API. Cheap to clone (one connection pool is shared).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    api_key: Option<String>,
    timeout: Duration,
}

impl Client {
    /// `base` is the API's root, e.g. `http://127.0.0.1:8080`.
    pub fn builder(base: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base: base.into(),
            api_key: None,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
        }
    }

    /// A client with default settings and no API key.
    pub fn new(base: impl Into<String>) -> Result<Self, Error> {
        Self::builder(base).build()
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(header::ACCEPT, "application/json");
        if let Some(k) = &self.api_key {
            r = r.bearer_auth(k);
        }
        r
    }

    async fn send(&self, r: RequestBuilder, timeout: Option<Duration>) -> Result<Response, Error> {
        let r = match timeout {
            Some(t) => r.timeout(t),
            None => r,
        };
        let res = r.send().await.map_err(Error::from_transport)?;
        if res.status().is_success() {
            Ok(res)
        } else {
            Err(Error::from_response(res).await)
        }
    }

    async fn json<T: DeserializeOwned>(&self, r: RequestBuilder) -> Result<T, Error> {
        let res = self.send(r, Some(self.timeout)).await?;
        decode(res).await
    }

    /// Submits one task. Submitting an `id` that exists returns the existing record and
    /// enqueues nothing (see [`SubmitTask::id`]).
    pub async fn submit(&self, task: &SubmitTask) -> Result<TaskRecord, Error> {
        self.json(self.request(Method::POST, "/v1/tasks").json(task))
            .await
    }

    /// Submits many tasks in one request; one invalid task rejects them all.
    pub async fn submit_batch(&self, tasks: &[SubmitTask]) -> Result<BatchResult, Error> {
        self.json(
            self.request(Method::POST, "/v1/tasks/batch")
                .json(&serde_json::json!({ "tasks": tasks })),
        )
        .await
    }

    /// The task's record now.
    pub async fn get(&self, id: &str) -> Result<TaskRecord, Error> {
        self.json(self.request(Method::GET, &task_path(id, "")))
            .await
    }

    /// The record once the task is terminal, or as it is after `limit`. One long poll is
    /// at most 30 s (and never more than the server's `api.max_wait_secs`: a server that
    /// refuses the length is asked again with half), so `limit` may be any length.
    pub async fn wait(&self, id: &str, limit: Duration) -> Result<TaskRecord, Error> {
        let deadline = std::time::Instant::now() + limit;
        let mut cap = 30;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let secs = left.as_secs().clamp(1, cap);
            let r = self
                .request(Method::GET, &task_path(id, ""))
                .query(&[("wait", secs)]);
            let res = match self
                .send(r, Some(self.timeout + Duration::from_secs(secs)))
                .await
            {
                Err(Error::Api { problem, .. })
                    if problem.status == 400
                        && problem.field.as_deref() == Some("wait")
                        && secs > 1 =>
                {
                    cap = secs / 2;
                    continue;
                }
                other => other?,
            };
            let rec: TaskRecord = decode(res).await?;
            if rec.state.is_terminal() || left.as_secs() <= secs {
                return Ok(rec);
            }
        }
    }

    /// The task's events as they happen (server-sent events): its record now, then one per
    /// state change or progress report; the stream ends after the terminal state.
    pub async fn watch(&self, id: &str) -> Result<BoxStream<TaskEvent>, Error> {
        let r = self
            .request(Method::GET, &task_path(id, "/events"))
            .header(header::ACCEPT, "text/event-stream");
        let res = self.send(r, None).await?;
        Ok(sse::events(res.bytes_stream()).boxed())
    }

    /// One page of tasks, newest first.
    pub async fn list_page(&self, q: &ListTasks) -> Result<TaskPage, Error> {
        self.json(self.request(Method::GET, "/v1/tasks").query(&q.query()))
            .await
    }

    /// Every task matching `q`, page after page until the last (lazily: a page is fetched
    /// only when the previous one is used up).
    pub fn list(&self, q: ListTasks) -> BoxStream<TaskRecord> {
        let client = self.clone();
        stream::try_unfold(Some(q), move |q| {
            let client = client.clone();
            async move {
                let Some(q) = q else { return Ok(None) };
                let page = client.list_page(&q).await?;
                let next = page.next_cursor.map(|c| ListTasks {
                    cursor: Some(c),
                    ..q
                });
                Ok::<_, Error>(Some((
                    stream::iter(page.tasks.into_iter().map(Ok::<_, Error>)),
                    next,
                )))
            }
        })
        .try_flatten()
        .boxed()
    }

    /// Cancels a task: at once if it has not started (state `cancelled`), else it is told
    /// to stop (still `running`, `cancel_requested` true). 409 ([`Error::Api`]) if terminal.
    pub async fn cancel(&self, id: &str) -> Result<TaskRecord, Error> {
        self.json(self.request(Method::POST, &task_path(id, "/cancel")))
            .await
    }

    /// Queues a failed or cancelled task again with a fresh attempt budget.
    pub async fn retry(&self, id: &str) -> Result<TaskRecord, Error> {
        self.json(self.request(Method::POST, &task_path(id, "/retry")))
            .await
    }

    pub async fn queues(&self) -> Result<Vec<QueueInfo>, Error> {
        let l: QueueList = self.json(self.request(Method::GET, "/v1/queues")).await?;
        Ok(l.queues)
    }

    /// Pauses `queue`: its workers take none of its tasks until it is resumed (running
    /// ones finish; submits are still accepted). Needs an admin key when keys are set.
    pub async fn pause_queue(&self, queue: &str) -> Result<QueuePause, Error> {
        self.json(self.request(Method::POST, &format!("/v1/queues/{queue}/pause")))
            .await
    }

    /// Resumes `queue`; its idle workers fetch at once.
    pub async fn resume_queue(&self, queue: &str) -> Result<QueuePause, Error> {
        self.json(self.request(Method::POST, &format!("/v1/queues/{queue}/resume")))
            .await
    }

    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        let l: WorkerList = self.json(self.request(Method::GET, "/v1/workers")).await?;
        Ok(l.workers)
    }

    /// The task catalog, with each kind's payload schema.
    pub async fn kinds(&self) -> Result<Vec<KindInfo>, Error> {
        self.json(self.request(Method::GET, "/v1/kinds")).await
    }

    pub async fn create_schedule(&self, s: &CreateSchedule) -> Result<Schedule, Error> {
        self.json(self.request(Method::POST, "/v1/schedules").json(s))
            .await
    }

    pub async fn schedule(&self, id: &str) -> Result<Schedule, Error> {
        self.json(self.request(Method::GET, &schedule_path(id, "")))
            .await
    }

    /// Every schedule, in id order, page after page.
    pub fn schedules(&self) -> BoxStream<Schedule> {
        let client = self.clone();
        stream::try_unfold(Some(None::<String>), move |cursor| {
            let client = client.clone();
            async move {
                let Some(cursor) = cursor else {
                    return Ok(None);
                };
                let mut r = client
                    .request(Method::GET, "/v1/schedules")
                    .query(&[("limit", "500")]);
                if let Some(c) = &cursor {
                    r = r.query(&[("cursor", c)]);
                }
                let page: SchedulePage = client.json(r).await?;
                Ok::<_, Error>(Some((
                    stream::iter(page.schedules.into_iter().map(Ok::<_, Error>)),
                    page.next_cursor.map(Some),
                )))
            }
        })
        .try_flatten()
        .boxed()
    }

    pub async fn delete_schedule(&self, id: &str) -> Result<(), Error> {
        self.send(
            self.request(Method::DELETE, &schedule_path(id, "")),
            Some(self.timeout),
        )
        .await?;
        Ok(())
    }

    /// Enables (`true`) or disables a schedule; returns it as it now is.
    pub async fn set_schedule_enabled(&self, id: &str, enabled: bool) -> Result<Schedule, Error> {
        let action = if enabled { "/enable" } else { "/disable" };
        self.json(self.request(Method::POST, &schedule_path(id, action)))
            .await
    }
}

/// Percent-encodes an id for a path segment, so an id the server would refuse reaches it
/// (and is refused with a problem naming `id`) instead of changing the route.
fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn task_path(id: &str, rest: &str) -> String {
    format!("/v1/tasks/{}{rest}", segment(id))
}

fn schedule_path(id: &str, rest: &str) -> String {
    format!("/v1/schedules/{}{rest}", segment(id))
}

async fn decode<T: DeserializeOwned>(res: Response) -> Result<T, Error> {
    let status = res.status();
    let body = res.bytes().await.map_err(Error::from_transport)?;
    serde_json::from_slice(&body).map_err(|e| Error::Decode {
        status: status.as_u16(),
        message: e.to_string(),
    })
}
