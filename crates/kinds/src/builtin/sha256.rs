//! `sha256`: hashes UTF-8 `text` or `base64` data, optionally `rounds` times over (each round
//! hashes the previous digest), to make a task CPU-heavy on purpose. The tutorial chapter's
//! example of work that must not run on the event loop: it runs on tokio's blocking pool,
//! looking at its cancellation token between chunks and rounds, so the worker's executor
//! keeps fetching, heartbeating and running other tasks meanwhile. Idempotent: a pure
//! function of its payload.

use base64::{
    Engine,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256 as Hasher};
use utoipa::ToSchema;

use crate::{Failure, Invalid, Limits, TaskContext, TaskKind};

/// The `sha256` kind's [`TaskKind`] impl; the catalog registers it.
#[derive(Debug)]
pub struct Sha256;

/// Payload of the `sha256` kind: exactly one of `text` and `base64`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sha256Payload {
    /// Text to hash, as UTF-8.
    #[serde(default)]
    pub text: Option<String>,
    /// Bytes to hash, base64 (standard alphabet, padding optional).
    #[serde(default)]
    pub base64: Option<String>,
    /// How many times to hash: round 1 hashes the input, each further round hashes the
    /// previous 32-byte digest. At most `tasks.sha256_max_rounds`.
    #[serde(default = "one")]
    #[schema(minimum = 1, default = 1)]
    pub rounds: u64,
}

fn one() -> u64 {
    1
}

/// Standard alphabet; padding optional, since clients differ on it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Bytes hashed between two looks at the cancellation token.
const CHUNK: usize = 64 * 1024;
/// Rounds between two looks at the cancellation token and two progress reports (a few
/// milliseconds of work).
const ROUNDS_PER_CHECK: u64 = 16 * 1024;

impl Sha256Payload {
    fn data(&self) -> Result<Vec<u8>, Invalid> {
        match (&self.text, &self.base64) {
            (Some(t), None) => Ok(t.as_bytes().to_vec()),
            (None, Some(b)) => BASE64
                .decode(b)
                .map_err(|e| Invalid::new("payload.base64", format!("not valid base64: {e}"))),
            (Some(_), Some(_)) => Err(Invalid::new(
                "payload.base64",
                "give either text or base64, not both",
            )),
            (None, None) => Err(Invalid::new(
                "payload.text",
                "one of text or base64 is required",
            )),
        }
    }
}

/// Result of the `sha256` kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct Sha256Result {
    /// The final digest, 64 lowercase hex digits.
    #[schema(
        example = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        pattern = "^[0-9a-f]{64}$"
    )]
    pub sha256: String,
    /// Length of the input in bytes.
    pub bytes: usize,
    /// How many rounds were hashed: the payload's `rounds` (1 when absent).
    pub rounds: u64,
}

impl TaskKind for Sha256 {
    type Payload = Sha256Payload;
    type Output = Sha256Result;
    const NAME: &'static str = "sha256";
    const SUMMARY: &'static str = "SHA-256 of text or base64 data, optionally repeated `rounds` times; CPU-bound, runs on the blocking pool.";
    const IDEMPOTENT: bool = true;

    fn example() -> Value {
        json!({"text": "abc", "rounds": 1000})
    }

    fn check(p: &Sha256Payload, limits: &Limits) -> Result<(), Invalid> {
        p.data()?;
        if p.rounds == 0 || p.rounds > limits.sha256_max_rounds {
            return Err(Invalid::new(
                "payload.rounds",
                format!(
                    "must be between 1 and {} (tasks.sha256_max_rounds)",
                    limits.sha256_max_rounds
                ),
            ));
        }
        Ok(())
    }

    /// Also states "exactly one of `text` and `base64`" (a null one counts as absent).
    fn document(schema: &mut Value, limits: &Limits) {
        schema["properties"]["rounds"]["maximum"] = json!(limits.sha256_max_rounds);
        schema["oneOf"] = json!([
            {"required": ["text"], "properties": {"text": {"type": "string"}}},
            {"required": ["base64"], "properties": {"base64": {"type": "string"}}},
        ]);
    }

    async fn run(ctx: TaskContext, p: Sha256Payload) -> Result<Sha256Result, Failure> {
        let data = p
            .data()
            .map_err(|e| Failure::permanent("invalid_payload", e.to_string()))?;
        let rounds = p.rounds;
        let bytes = data.len();
        let worker_ctx = ctx.clone();
        let digest = tokio::task::spawn_blocking(move || hash(&worker_ctx, &data, rounds))
            .await
            .map_err(|e| Failure::retryable("panic", format!("hashing thread failed: {e}")))??;
        Ok(Sha256Result {
            sha256: hex(&digest),
            bytes,
            rounds,
        })
    }
}

/// Runs on a blocking-pool thread. Returns early once the task is cancelled.
fn hash(ctx: &TaskContext, data: &[u8], rounds: u64) -> Result<[u8; 32], Failure> {
    let cancelled = || Failure::permanent("cancelled", "sha256 was cancelled");
    let mut h = Hasher::new();
    for chunk in data.chunks(CHUNK) {
        if ctx.is_cancelled() {
            return Err(cancelled());
        }
        h.update(chunk);
    }
    let mut digest: [u8; 32] = h.finalize().into();
    for done in 1..rounds {
        if done % ROUNDS_PER_CHECK == 0 {
            if ctx.is_cancelled() {
                return Err(cancelled());
            }
            // Cheap: the worker keeps only the latest report and writes it at its own pace.
            ctx.report(
                (done * 100 / rounds) as u8,
                format!("{done} of {rounds} rounds"),
            );
        }
        digest = Hasher::digest(digest).into();
    }
    ctx.report(100, format!("{rounds} of {rounds} rounds"));
    Ok(digest)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::testing::{context, payload};

    fn check(v: Value) -> Result<(), Invalid> {
        Sha256::check(&payload::<Sha256>(v)?, &Limits::default())
    }

    async fn run(v: Value) -> Value {
        let (ctx, _progress, _cancel) = context();
        let out = Sha256::run(ctx, payload::<Sha256>(v).unwrap())
            .await
            .unwrap();
        serde_json::to_value(out).unwrap()
    }

    #[tokio::test]
    async fn known_digests() {
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(
            run(json!({"text": "abc"})).await,
            json!({"sha256": abc, "bytes": 3, "rounds": 1})
        );
        // Same bytes as base64, padded or not.
        assert_eq!(run(json!({"base64": "YWJj"})).await["sha256"], abc);
        assert_eq!(
            run(json!({"base64": "YWI="})).await,
            run(json!({"base64": "YWI"})).await
        );
        // Empty input.
        assert_eq!(
            run(json!({"text": ""})).await["sha256"],
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // Two rounds = sha256 of the first digest's 32 bytes.
        let twice = Hasher::digest(Hasher::digest(b"abc"));
        assert_eq!(
            run(json!({"text": "abc", "rounds": 2})).await["sha256"],
            hex(&twice)
        );
    }

    #[tokio::test]
    async fn input_longer_than_a_chunk_hashes_as_one_stream() {
        let data = vec![7u8; CHUNK * 2 + 5];
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
        let r = run(json!({"base64": b64})).await;
        assert_eq!(r["sha256"], hex(&Hasher::digest(&data)));
        assert_eq!(r["bytes"], data.len());
    }

    #[test]
    fn validation_names_the_field() {
        let e = check(json!({"base64": "not base64!"})).unwrap_err();
        assert_eq!(e.field, "payload.base64");
        assert!(e.message.contains("base64"), "{e}");
        assert_eq!(check(json!({})).unwrap_err().field, "payload.text");
        assert_eq!(
            check(json!({"text": "a", "base64": "YQ=="}))
                .unwrap_err()
                .field,
            "payload.base64"
        );
        assert_eq!(
            check(json!({"text": "a", "rounds": 0})).unwrap_err().field,
            "payload.rounds"
        );
        assert_eq!(
            check(json!({"text": "a", "rounds": 10_000_001}))
                .unwrap_err()
                .field,
            "payload.rounds"
        );
        assert_eq!(
            payload::<Sha256>(json!({"text": "a", "salt": 1}))
                .unwrap_err()
                .field,
            "payload.salt"
        );
        assert!(check(json!({"text": "a", "rounds": 10_000_000})).is_ok());
    }

    #[tokio::test]
    async fn cancellation_stops_the_rounds() {
        let (ctx, _progress, cancel) = context();
        cancel.cancel();
        let e = Sha256::run(
            ctx,
            payload::<Sha256>(json!({"text": "a", "rounds": 10_000_000})).unwrap(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind, "cancelled");
    }
}
