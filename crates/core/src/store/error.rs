use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::task::record::CorruptRecord;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached or did not answer in time: worth retrying later.
    #[error("redis unavailable: {0}")]
    Unavailable(#[source] RedisError),
    #[error("redis error: {0}")]
    Redis(#[source] RedisError),
    #[error(transparent)]
    Corrupt(#[from] CorruptRecord),
    #[error("unexpected reply from a store script: {0}")]
    Protocol(String),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// A copy for each caller that shared one failed call (batched claims and finishes);
    /// keeps whether it is worth retrying.
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Unavailable(e) => Self::Unavailable(e.clone()),
            Self::Redis(e) => Self::Redis(e.clone()),
            other => Self::Protocol(other.to_string()),
        }
    }
}

impl From<redis::ParsingError> for StoreError {
    fn from(e: redis::ParsingError) -> Self {
        Self::Protocol(e.to_string())
    }
}

impl From<RedisError> for StoreError {
    fn from(e: RedisError) -> Self {
        let transient = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || matches!(
                e.kind(),
                ErrorKind::Client
                    | ErrorKind::Server(
                        ServerErrorKind::BusyLoading
                            | ServerErrorKind::TryAgain
                            | ServerErrorKind::ClusterDown
                            | ServerErrorKind::MasterDown
                            | ServerErrorKind::ReadOnly
                    )
            );
        if transient {
            Self::Unavailable(e)
        } else {
            Self::Redis(e)
        }
    }
}
