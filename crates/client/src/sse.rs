//! Reading `GET /v1/tasks/{id}/events`: frames of `event:` and `data:` lines ended by a
//! blank line; `:` lines are keep-alives. Only what errand sends is understood (one data
//! line per frame), which keeps this small; anything else is an [`Error::Stream`].

use futures::{Stream, StreamExt, stream};

use crate::{Error, TaskRecord};

/// One event of a task's stream.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskEvent {
    /// The task entered a state (the first event is the state it is in now).
    State(TaskRecord),
    /// A progress report (or another change) without a change of state.
    Progress(TaskRecord),
    /// The record disappeared (expired or deleted) while being watched.
    Gone,
}

impl TaskEvent {
    /// The record carried by the event (none for [`TaskEvent::Gone`]).
    pub fn record(&self) -> Option<&TaskRecord> {
        match self {
            Self::State(r) | Self::Progress(r) => Some(r),
            Self::Gone => None,
        }
    }

    /// True for the last event of a stream.
    pub fn is_final(&self) -> bool {
        self.record().is_none_or(|r| r.state.is_terminal())
    }
}

fn parse_frame(frame: &str) -> Result<Option<TaskEvent>, Error> {
    let mut name = None;
    let mut data = None;
    for line in frame.lines() {
        if line.starts_with(':') || line.is_empty() {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = Some(value.to_owned()),
            "data" => data = Some(value.to_owned()),
            _ => {}
        }
    }
    let Some(name) = name else {
        return Ok(None);
    };
    if name == "gone" {
        return Ok(Some(TaskEvent::Gone));
    }
    let data = data.ok_or_else(|| Error::Stream(format!("event `{name}` without data")))?;
    let record: TaskRecord =
        serde_json::from_str(&data).map_err(|e| Error::Stream(format!("event `{name}`: {e}")))?;
    Ok(Some(if name == "progress" {
        TaskEvent::Progress(record)
    } else {
        TaskEvent::State(record)
    }))
}

/// Turns the response body into events; a body that ends before a terminal event is an
/// error, so a watcher never takes a dropped connection for the task's end.
pub(crate) fn events<S, C>(body: S) -> impl Stream<Item = Result<TaskEvent, Error>> + Send
where
    S: Stream<Item = Result<C, reqwest::Error>> + Send + Unpin + 'static,
    C: AsRef<[u8]>,
{
    struct St<S> {
        body: S,
        buf: Vec<u8>,
        done: bool,
    }
    stream::unfold(
        St {
            body,
            buf: Vec::new(),
            done: false,
        },
        |mut st| async move {
            if st.done {
                return None;
            }
            loop {
                if let Some(end) = find_frame_end(&st.buf) {
                    let frame: Vec<u8> = st.buf.drain(..end).collect();
                    let text = String::from_utf8_lossy(&frame).replace("\r\n", "\n");
                    match parse_frame(&text) {
                        Ok(Some(ev)) => {
                            st.done = ev.is_final();
                            return Some((Ok(ev), st));
                        }
                        Ok(None) => continue,
                        Err(e) => {
                            st.done = true;
                            return Some((Err(e), st));
                        }
                    }
                }
                match st.body.next().await {
                    Some(Ok(chunk)) => st.buf.extend_from_slice(chunk.as_ref()),
                    Some(Err(e)) => {
                        st.done = true;
                        return Some((Err(Error::from_transport(e)), st));
                    }
                    None => {
                        st.done = true;
                        return Some((
                            Err(Error::Stream("the stream ended before the task did".into())),
                            st,
                        ));
                    }
                }
            }
        },
    )
}

/// The end (exclusive, blank line included) of the first complete frame in `buf`.
fn find_frame_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalives_and_unknown_fields_are_skipped() {
        assert_eq!(parse_frame(": keep-alive\n").unwrap(), None);
        assert!(matches!(
            parse_frame("event: gone\ndata: {}\n").unwrap(),
            Some(TaskEvent::Gone)
        ));
    }

    #[test]
    fn a_non_record_data_line_is_a_stream_error() {
        let e = parse_frame("event: running\ndata: {\"id\":1}\n").unwrap_err();
        assert!(matches!(e, Error::Stream(m) if m.contains("running")));
    }

    #[test]
    fn frame_end_finds_either_line_ending() {
        assert_eq!(find_frame_end(b"a\n\nb"), Some(3));
        assert_eq!(find_frame_end(b"a\r\n\r\nb"), Some(5));
        assert_eq!(find_frame_end(b"a\nb"), None);
    }
}
