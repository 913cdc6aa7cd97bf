//! What the client sends that is not a body: the query of a task listing. Every request
//! and response body is errand-wire's, the types the server itself reads and writes.

use crate::TaskState;

/// Filters and paging for listing tasks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListTasks {
    /// Only tasks in this state (then ordered by when they entered it); `None`: any state.
    pub state: Option<TaskState>,
    /// Only tasks of this queue; `None`: every queue.
    pub queue: Option<String>,
    /// Only tasks of this kind (an alias stands for its kind); `None`: every kind.
    pub kind: Option<String>,
    /// Page size, 1 to 500 (server default 50).
    pub limit: Option<u32>,
    /// Where to start: the previous page's [`TaskPage::next_cursor`]; `None`: the first
    /// page.
    pub cursor: Option<String>,
}

impl ListTasks {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(s) = self.state {
            q.push(("state", s.as_str().to_owned()));
        }
        if let Some(v) = &self.queue {
            q.push(("queue", v.clone()));
        }
        if let Some(v) = &self.kind {
            q.push(("kind", v.clone()));
        }
        if let Some(v) = self.limit {
            q.push(("limit", v.to_string()));
        }
        if let Some(v) = &self.cursor {
            q.push(("cursor", v.clone()));
        }
        q
    }
}
