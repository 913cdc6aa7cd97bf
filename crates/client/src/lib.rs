//! errand-client: a typed async client for errand's HTTP API.
//!
//! The bodies it sends and the records it hands back are errand-wire's types
//! ([`SubmitTask`], [`TaskRecord`], [`Schedule`], [`WorkerInfo`], …), the very structs the
//! server reads and writes, so a field added to the API reaches clients without a copy to
//! keep in step. It links nothing of the server (no Redis, no apalis, no OpenTelemetry).
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
//!
//! Besides the refusals each method lists, any call can end in:
//! - [`Error::Transport`]: no answer (connection refused, DNS, a timeout);
//! - [`Error::Api`] with 401 (no or unknown API key, when the server has `api.api_keys`),
//!   403 (a key without the scope the call needs: `read` for reads, `submit` for changing
//!   tasks, `admin` for queues and schedules), or 503 (Redis unavailable; `retry_after`
//!   says when to try again);
//! - [`Error::Decode`]: a 2xx answer this client cannot read (a server of another version).

mod error;
mod sse;
pub mod types;

use std::{pin::Pin, time::Duration};

use futures::{Stream, StreamExt, TryStreamExt, stream};
use reqwest::{Method, RequestBuilder, Response, header};
use serde::de::DeserializeOwned;

pub use errand_wire::*;
pub use error::Error;
pub use sse::TaskEvent;
pub use types::ListTasks;

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

    /// How long to wait for a TCP connection: short by default (5 s), because an unreachable
    /// server should be reported quickly, not after a long-poll's worth of time.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Limit for one ordinary request (default 30 s). Long polls ([`Client::wait`]) add
    /// their wait to it; event streams ([`Client::watch`]) have none (they last as long as
    /// the task). Exceeding it is an [`Error::Transport`].
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Makes the client; no request is sent, so an unreachable server shows only at the
    /// first call. [`Error::InvalidUrl`] when the base URL is not `http://` or `https://`;
    /// [`Error::Transport`] if the TLS backend cannot be initialised.
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
    /// Starts building a client for the API at `base`, its root, e.g.
    /// `http://127.0.0.1:8080` (a trailing `/` is dropped). Defaults: no API key, 5 s to
    /// connect, 30 s per request.
    pub fn builder(base: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base: base.into(),
            api_key: None,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
        }
    }

    /// A client with default settings and no API key; fails as [`ClientBuilder::build`].
    pub fn new(base: impl Into<String>) -> Result<Self, Error> {
        Self::builder(base).build()
    }

    /// The API root requests go to, as given to [`Client::builder`] without a trailing `/`.
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

    /// Submits one task (`POST /v1/tasks`) and returns its record as created (`queued`, or
    /// `scheduled` when delayed). Submitting an `id` that exists returns the existing
    /// record and enqueues nothing (see [`SubmitTask::id`]).
    ///
    /// Refusals ([`Error::Api`]): 422 for an invalid field (unknown kind, a payload that
    /// does not fit the kind's schema, a bad queue name or range; [`Problem::field`] names
    /// it), 413 for a payload over the server's `api.max_payload_bytes`, 429 when the
    /// submit rate limit is reached (see `retry_after`).
    pub async fn submit(&self, task: &SubmitTask) -> Result<TaskRecord, Error> {
        self.json(self.request(Method::POST, "/v1/tasks").json(task))
            .await
    }

    /// Submits many tasks in one request (`POST /v1/tasks/batch`); the result lists what
    /// became of each, in order. One invalid task rejects them all and nothing is enqueued:
    /// 422 with [`Problem::field`] as `tasks[i].field`. 413 when there are more than the
    /// server's `api.max_batch` (1000 by default) or the body is too large; 429 as for
    /// [`Client::submit`].
    pub async fn submit_batch(&self, tasks: &[SubmitTask]) -> Result<BatchResult, Error> {
        self.json(
            self.request(Method::POST, "/v1/tasks/batch")
                .json(&serde_json::json!({ "tasks": tasks })),
        )
        .await
    }

    /// The task's record now (`GET /v1/tasks/{id}`). 404 ([`Error::Api`]) when there is no
    /// such task or its record expired (problem type `…/task-expired`); 400 for an id the
    /// server cannot accept.
    pub async fn get(&self, id: &str) -> Result<TaskRecord, Error> {
        self.json(self.request(Method::GET, &task_path(id, "")))
            .await
    }

    /// The record once the task is terminal, or as it is after `limit` (check
    /// `state.is_terminal()` to tell which). Long polls `GET /v1/tasks/{id}?wait=…`, each
    /// at most 30 s (and never more than the server's `api.max_wait_secs`: a server that
    /// refuses the length is asked again with half), so `limit` may be any length; a
    /// `limit` under a second waits one second. Errors as [`Client::get`].
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

    /// The task's events as they happen (`GET /v1/tasks/{id}/events`, server-sent events):
    /// its record now, then one per state change or progress report; the stream ends after
    /// the terminal state or [`TaskEvent::Gone`].
    ///
    /// The call itself fails with 404 ([`Error::Api`]) for an unknown task. An item of the
    /// stream is an error when the connection drops ([`Error::Transport`]), a frame cannot
    /// be read, or the body ends before the task did ([`Error::Stream`]); the stream ends
    /// after its first error.
    pub async fn watch(&self, id: &str) -> Result<BoxStream<TaskEvent>, Error> {
        let r = self
            .request(Method::GET, &task_path(id, "/events"))
            .header(header::ACCEPT, "text/event-stream");
        let res = self.send(r, None).await?;
        Ok(sse::events(res.bytes_stream()).boxed())
    }

    /// One page of tasks, newest first (`GET /v1/tasks`); pass its `next_cursor` as
    /// [`ListTasks::cursor`] for the next. 400 ([`Error::Api`]) for a bad filter or cursor
    /// (a `limit` outside 1 to 500, a cursor that is not one of its own).
    pub async fn list_page(&self, q: &ListTasks) -> Result<TaskPage, Error> {
        self.json(self.request(Method::GET, "/v1/tasks").query(&q.query()))
            .await
    }

    /// Every task matching `q`, page after page until the last (lazily: a page is fetched
    /// only when the previous one is used up), starting from `q.cursor`. Each page is a
    /// [`Client::list_page`] call; its error is the stream's item, and the stream ends
    /// there.
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

    /// Cancels a task (`POST /v1/tasks/{id}/cancel`): at once if it has not started (state
    /// `cancelled`), else its worker is told to stop it (still `running`,
    /// `cancel_requested` true). 404 ([`Error::Api`]) for an unknown task, 409 if it is
    /// already terminal.
    pub async fn cancel(&self, id: &str) -> Result<TaskRecord, Error> {
        self.json(self.request(Method::POST, &task_path(id, "/cancel")))
            .await
    }

    /// Queues a failed or cancelled task again with a fresh attempt budget
    /// (`POST /v1/tasks/{id}/retry`). 404 ([`Error::Api`]) for an unknown task, 409 when it
    /// is neither `failed` nor `cancelled`.
    pub async fn retry(&self, id: &str) -> Result<TaskRecord, Error> {
        self.json(self.request(Method::POST, &task_path(id, "/retry")))
            .await
    }

    /// Every queue ever submitted to, with its tasks counted by state (`GET /v1/queues`).
    pub async fn queues(&self) -> Result<Vec<QueueInfo>, Error> {
        let l: QueueList = self.json(self.request(Method::GET, "/v1/queues")).await?;
        Ok(l.queues)
    }

    /// Pauses `queue` (`POST /v1/queues/{queue}/pause`): its workers take none of its tasks
    /// until it is resumed (running ones finish; submits are still accepted). Pausing a
    /// paused queue, or one nobody submitted to yet, is fine. Needs an admin key when keys
    /// are set (403 otherwise); 400 ([`Error::Api`]) for a malformed queue name.
    pub async fn pause_queue(&self, queue: &str) -> Result<QueuePause, Error> {
        self.json(self.request(Method::POST, &format!("/v1/queues/{queue}/pause")))
            .await
    }

    /// Resumes `queue` (`POST /v1/queues/{queue}/resume`); its idle workers fetch at once.
    /// Resuming a queue that is not paused changes nothing. Admin scope and errors as
    /// [`Client::pause_queue`].
    pub async fn resume_queue(&self, queue: &str) -> Result<QueuePause, Error> {
        self.json(self.request(Method::POST, &format!("/v1/queues/{queue}/resume")))
            .await
    }

    /// `queue`'s limits and what they hold back (`GET /v1/queues/{queue}/limits`).
    pub async fn limits(&self, queue: &str) -> Result<QueueLimits, Error> {
        self.json(self.request(Method::GET, &format!("/v1/queues/{queue}/limits")))
            .await
    }

    /// Replaces `queue`'s limits (`PUT /v1/queues/{queue}/limits`, admin scope): every
    /// worker's next fetch holds to them. 422 ([`Error::Api`]) naming a limit that does not fit.
    pub async fn set_limits(&self, queue: &str, limits: &SetLimits) -> Result<QueueLimits, Error> {
        self.json(
            self.request(Method::PUT, &format!("/v1/queues/{queue}/limits"))
                .json(limits),
        )
        .await
    }

    /// Starts a bulk action on `queue`'s matching tasks (`POST /v1/queues/{queue}/bulk`,
    /// admin scope); the server works it in slices. Follow it with [`Client::bulk`].
    pub async fn start_bulk(&self, queue: &str, b: &StartBulk) -> Result<BulkJob, Error> {
        self.json(
            self.request(Method::POST, &format!("/v1/queues/{queue}/bulk"))
                .json(b),
        )
        .await
    }

    /// A bulk action's progress (`GET /v1/queues/{queue}/bulk/{id}`).
    pub async fn bulk(&self, queue: &str, id: &str) -> Result<BulkJob, Error> {
        self.json(self.request(Method::GET, &format!("/v1/queues/{queue}/bulk/{id}")))
            .await
    }

    /// Submits a workflow (`POST /v1/workflows`): checked whole (422 naming the field,
    /// e.g. `steps[1].after[0]`) before anything is written; its first steps are queued at
    /// once. An id that exists answers that workflow and writes nothing. `w` is a
    /// [`SubmitWorkflow`], or any JSON of its shape (the CLI sends a file's).
    pub async fn submit_workflow(&self, w: &impl serde::Serialize) -> Result<Workflow, Error> {
        self.json(self.request(Method::POST, "/v1/workflows").json(w))
            .await
    }

    /// A workflow as it stands (`GET /v1/workflows/{id}`); 404 when there is none.
    pub async fn workflow(&self, id: &str) -> Result<Workflow, Error> {
        self.json(self.request(Method::GET, &workflow_path(id, "")))
            .await
    }

    /// One page of workflows, newest first (`GET /v1/workflows`), after `cursor` (a page's
    /// `next_cursor`).
    pub async fn workflows(&self, limit: u32, cursor: Option<&str>) -> Result<WorkflowPage, Error> {
        let mut q = vec![("limit", limit.to_string())];
        if let Some(c) = cursor {
            q.push(("cursor", c.to_owned()));
        }
        self.json(self.request(Method::GET, "/v1/workflows").query(&q))
            .await
    }

    /// Cancels a workflow (`POST /v1/workflows/{id}/cancel`): what has not started never
    /// will, running steps are told to stop. 409 when it already ended.
    pub async fn cancel_workflow(&self, id: &str) -> Result<Workflow, Error> {
        self.json(self.request(Method::POST, &workflow_path(id, "/cancel")))
            .await
    }

    /// Worker processes alive now, those whose heartbeat has not lapsed
    /// (`GET /v1/workers`).
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        let l: WorkerList = self.json(self.request(Method::GET, "/v1/workers")).await?;
        Ok(l.workers)
    }

    /// The task catalog, with each kind's payload schema (`GET /v1/kinds`).
    pub async fn kinds(&self) -> Result<Vec<KindInfo>, Error> {
        self.json(self.request(Method::GET, "/v1/kinds")).await
    }

    /// Creates a periodic schedule (`POST /v1/schedules`) and returns it with its next
    /// fire time. Creating an existing id with the same definition returns the stored
    /// schedule; with a different one, 409 ([`Error::Api`]). 422 for an invalid cron,
    /// time zone, kind or payload ([`Problem::field`] names it). Admin scope.
    pub async fn create_schedule(&self, s: &CreateSchedule) -> Result<Schedule, Error> {
        self.json(self.request(Method::POST, "/v1/schedules").json(s))
            .await
    }

    /// One schedule as it is now (`GET /v1/schedules/{id}`); 404 ([`Error::Api`]) when
    /// there is none with this id.
    pub async fn schedule(&self, id: &str) -> Result<Schedule, Error> {
        self.json(self.request(Method::GET, &schedule_path(id, "")))
            .await
    }

    /// Every schedule, in id order (`GET /v1/schedules`, 500 per page, fetched lazily); a
    /// page's error is the stream's item, and the stream ends there.
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

    /// Deletes a schedule (`DELETE /v1/schedules/{id}`): it fires no more; tasks it already
    /// submitted are untouched. 404 ([`Error::Api`]) when there is none. Admin scope.
    pub async fn delete_schedule(&self, id: &str) -> Result<(), Error> {
        self.send(
            self.request(Method::DELETE, &schedule_path(id, "")),
            Some(self.timeout),
        )
        .await?;
        Ok(())
    }

    /// Enables (`true`) or disables a schedule (`POST /v1/schedules/{id}/enable` or
    /// `/disable`); returns it as it now is. 404 ([`Error::Api`]) when there is none.
    /// Admin scope.
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

fn workflow_path(id: &str, rest: &str) -> String {
    format!("/v1/workflows/{}{rest}", segment(id))
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
