//! `thumbnail`: decodes a PNG, scales it down to fit a `max_side` square keeping its aspect
//! ratio (Catmull-Rom filter; an image already small enough is kept as it is), and returns
//! it as a PNG again, with both sizes.
//!
//! Its bounds are utoipa attributes on the payload's fields (`minimum`, `maximum`,
//! `pattern`), plus the text's length from a constant in [`TaskKind::document`]. What a
//! schema cannot say (that the bytes are a PNG, that it is not a decompression bomb) is
//! found by [`TaskKind::check`] and by the decoder's limits, in the worker.

use std::io::Cursor;

use base64::{
    Engine,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use errand_worker::kinds::{Failure, Invalid, Limits, TaskContext, TaskKind};
use image::{DynamicImage, ImageError, ImageFormat, ImageReader, imageops::FilterType};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

/// Longest `png_base64` a payload may carry, in characters: about 187 KB of PNG, under the
/// api's `api.max_payload_bytes` (256 KiB of payload JSON by default).
pub const MAX_PNG_BASE64_CHARS: usize = 250_000;

/// Widest and tallest source image decoded, in pixels. A small PNG can claim a huge canvas;
/// the decoder refuses past this before it allocates (`image_too_large`).
pub const MAX_SOURCE_SIDE: u32 = 8192;

/// Most memory the decoder may allocate for one image.
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;

/// The eight bytes every PNG starts with.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Standard alphabet; padding optional, since clients differ on it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The `thumbnail` kind.
#[derive(Debug)]
pub struct Thumbnail;

/// Payload of `thumbnail`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThumbnailPayload {
    /// The source image: PNG bytes, base64 (standard alphabet, padding optional), at most
    /// 250 000 characters; at most 8192 pixels wide and tall.
    #[schema(
        pattern = "^[A-Za-z0-9+/]*={0,2}$",
        content_encoding = "base64",
        content_media_type = "image/png"
    )]
    pub png_base64: String,
    /// The thumbnail's longest side, in pixels.
    #[schema(minimum = 1, maximum = 1024, example = 128)]
    pub max_side: u32,
}

/// Result of `thumbnail`.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub struct ThumbnailResult {
    /// The thumbnail: PNG bytes, base64 (standard alphabet, padded).
    #[schema(content_encoding = "base64", content_media_type = "image/png")]
    pub png_base64: String,
    /// The source's width, in pixels.
    pub original_width: u32,
    /// The source's height, in pixels.
    pub original_height: u32,
    /// The thumbnail's width, in pixels: at most `max_side`.
    pub width: u32,
    /// The thumbnail's height, in pixels: at most `max_side`.
    pub height: u32,
}

impl TaskKind for Thumbnail {
    type Payload = ThumbnailPayload;
    type Output = ThumbnailResult;
    const NAME: &'static str = "thumbnail";
    const SUMMARY: &'static str =
        "A PNG scaled down to fit a max_side square, aspect ratio kept; returned as a PNG.";
    const IDEMPOTENT: bool = true;

    fn example() -> Value {
        // A 1x1 PNG, opaque red.
        json!({
            "png_base64": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==",
            "max_side": 64
        })
    }

    fn check(p: &ThumbnailPayload, _limits: &Limits) -> Result<(), Invalid> {
        if p.png_base64.len() > MAX_PNG_BASE64_CHARS {
            return Err(Invalid::new(
                "payload.png_base64",
                format!("must be at most {MAX_PNG_BASE64_CHARS} characters"),
            ));
        }
        if !(1..=1024).contains(&p.max_side) {
            return Err(Invalid::new(
                "payload.max_side",
                "must be between 1 and 1024",
            ));
        }
        let bytes = p.bytes()?;
        if !bytes.starts_with(PNG_SIGNATURE) {
            return Err(Invalid::new("payload.png_base64", "is not a PNG"));
        }
        Ok(())
    }

    fn document(schema: &mut Value, _limits: &Limits) {
        schema["properties"]["png_base64"]["maxLength"] = json!(MAX_PNG_BASE64_CHARS);
    }

    async fn run(ctx: TaskContext, p: ThumbnailPayload) -> Result<ThumbnailResult, Failure> {
        // `check` ran just before (the worker runs it before every attempt): this decodes.
        let png = p
            .bytes()
            .map_err(|e| Failure::permanent("invalid_payload", e.to_string()))?;
        ctx.report(0, format!("decoding {} bytes of PNG", png.len()));
        let worker_ctx = ctx.clone();
        let max_side = p.max_side;
        let job = tokio::task::spawn_blocking(move || scale(&worker_ctx, &png, max_side));
        // A decode or a resize cannot be interrupted: the job looks at the token between
        // them, and this answers at once all the same. Biased: once cancelled, the task
        // ends cancelled.
        tokio::select! {
            biased;
            () = ctx.cancelled() => Err(crate::cancelled(Self::NAME)),
            r = job => crate::joined(Self::NAME, r),
        }
    }
}

impl ThumbnailPayload {
    fn bytes(&self) -> Result<Vec<u8>, Invalid> {
        BASE64
            .decode(&self.png_base64)
            .map_err(|e| Invalid::new("payload.png_base64", format!("not valid base64: {e}")))
    }
}

/// Runs on a blocking-pool thread: decode, resize, encode, looking at the token between.
fn scale(ctx: &TaskContext, png: &[u8], max_side: u32) -> Result<ThumbnailResult, Failure> {
    let stop = || {
        ctx.is_cancelled()
            .then(|| crate::cancelled(Thumbnail::NAME))
            .map_or(Ok(()), Err)
    };
    let source = decode(png)?;
    let (original_width, original_height) = (source.width(), source.height());
    ctx.report(
        30,
        format!("decoded {original_width}x{original_height}, resizing"),
    );
    stop()?;
    let small = if original_width.max(original_height) <= max_side {
        source
    } else {
        source.resize(max_side, max_side, FilterType::CatmullRom)
    };
    ctx.report(
        70,
        format!("resized to {}x{}, encoding", small.width(), small.height()),
    );
    stop()?;
    let mut out = Vec::new();
    small
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .map_err(|e| Failure::permanent("encode_failed", e.to_string()))?;
    ctx.report(100, format!("{} bytes of PNG", out.len()));
    Ok(ThumbnailResult {
        png_base64: base64::engine::general_purpose::STANDARD.encode(&out),
        original_width,
        original_height,
        width: small.width(),
        height: small.height(),
    })
}

/// The PNG decoded within [`MAX_SOURCE_SIDE`] and [`MAX_DECODE_BYTES`]. Both failures are
/// permanent: the same bytes decode the same way on every attempt.
fn decode(png: &[u8]) -> Result<DynamicImage, Failure> {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SOURCE_SIDE);
    limits.max_image_height = Some(MAX_SOURCE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = ImageReader::with_format(Cursor::new(png), ImageFormat::Png);
    reader.limits(limits);
    reader.decode().map_err(|e| match e {
        ImageError::Limits(l) => Failure::permanent(
            "image_too_large",
            format!("{l} (at most {MAX_SOURCE_SIDE}x{MAX_SOURCE_SIDE} pixels)"),
        ),
        other => Failure::permanent("invalid_image", format!("not a PNG this can read: {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::context;
    use image::{GenericImageView, Rgba, RgbaImage};

    /// A `w`x`h` PNG: red left half, blue right half.
    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbaImage::from_fn(w, h, |x, _| {
            if x < w / 2 {
                Rgba([255, 0, 0, 255])
            } else {
                Rgba([0, 0, 255, 255])
            }
        });
        let mut out = Vec::new();
        DynamicImage::ImageRgba8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    fn payload(png: &[u8], max_side: u32) -> ThumbnailPayload {
        ThumbnailPayload {
            png_base64: base64::engine::general_purpose::STANDARD.encode(png),
            max_side,
        }
    }

    fn decoded(r: &ThumbnailResult) -> DynamicImage {
        let bytes = BASE64.decode(&r.png_base64).unwrap();
        image::load_from_memory_with_format(&bytes, ImageFormat::Png).unwrap()
    }

    #[tokio::test]
    async fn scales_down_keeping_the_aspect_ratio() {
        let (ctx, latest, _cancel) = context();
        let r = Thumbnail::run(ctx, payload(&png(400, 200), 100))
            .await
            .unwrap();
        assert_eq!(
            (r.original_width, r.original_height, r.width, r.height),
            (400, 200, 100, 50)
        );
        let img = decoded(&r);
        assert_eq!(img.dimensions(), (100, 50));
        // The halves are still red and blue.
        assert_eq!(img.get_pixel(10, 25), Rgba([255, 0, 0, 255]));
        assert_eq!(img.get_pixel(90, 25), Rgba([0, 0, 255, 255]));
        assert_eq!(latest().map(|(p, _)| p), Some(100));

        // Portrait too, and an image already small enough keeps its size.
        let (ctx, _latest, _cancel) = context();
        let r = Thumbnail::run(ctx, payload(&png(30, 90), 45))
            .await
            .unwrap();
        assert_eq!((r.width, r.height), (15, 45));
        let (ctx, _latest, _cancel) = context();
        let r = Thumbnail::run(ctx, payload(&png(30, 20), 64))
            .await
            .unwrap();
        assert_eq!((r.width, r.height), (30, 20));
        assert_eq!(decoded(&r).dimensions(), (30, 20));
    }

    #[tokio::test]
    async fn the_documented_example_runs() {
        let (ctx, _latest, _cancel) = context();
        let p: ThumbnailPayload = serde_json::from_value(Thumbnail::example()).unwrap();
        assert!(Thumbnail::check(&p, &Limits::default()).is_ok());
        let r = Thumbnail::run(ctx, p).await.unwrap();
        assert_eq!((r.width, r.height), (1, 1));
    }

    #[tokio::test]
    async fn bad_images_fail_permanently() {
        // A PNG signature with garbage after it.
        let mut junk = PNG_SIGNATURE.to_vec();
        junk.extend_from_slice(b"not really");
        let (ctx, _latest, _cancel) = context();
        let e = Thumbnail::run(ctx, payload(&junk, 10)).await.unwrap_err();
        assert_eq!((e.kind.as_str(), e.retryable), ("invalid_image", false));

        // A canvas wider than MAX_SOURCE_SIDE is refused before it is allocated.
        let (ctx, _latest, _cancel) = context();
        let e = Thumbnail::run(ctx, payload(&png(MAX_SOURCE_SIDE + 1, 1), 10))
            .await
            .unwrap_err();
        assert_eq!((e.kind.as_str(), e.retryable), ("image_too_large", false));
    }

    #[tokio::test]
    async fn a_cancelled_task_ends_cancelled() {
        let (ctx, _latest, cancel) = context();
        cancel.cancel();
        let e = Thumbnail::run(ctx, payload(&png(8, 8), 4))
            .await
            .unwrap_err();
        assert_eq!(e.kind, "cancelled");
    }

    #[test]
    fn check_names_the_field() {
        let limits = Limits::default();
        let small = png(2, 2);
        assert!(Thumbnail::check(&payload(&small, 1), &limits).is_ok());
        for (p, field) in [
            (payload(&small, 0), "payload.max_side"),
            (payload(&small, 1025), "payload.max_side"),
            (payload(b"GIF89a", 10), "payload.png_base64"),
            (
                ThumbnailPayload {
                    png_base64: "!!".into(),
                    max_side: 10,
                },
                "payload.png_base64",
            ),
        ] {
            assert_eq!(Thumbnail::check(&p, &limits).unwrap_err().field, field);
        }

        let mut schema =
            serde_json::to_value(<ThumbnailPayload as utoipa::PartialSchema>::schema()).unwrap();
        Thumbnail::document(&mut schema, &limits);
        let side = &schema["properties"]["max_side"];
        assert_eq!(
            (&side["minimum"], &side["maximum"]),
            (&json!(1), &json!(1024))
        );
        assert_eq!(
            schema["properties"]["png_base64"]["maxLength"],
            MAX_PNG_BASE64_CHARS
        );
        assert_eq!(schema["additionalProperties"], false, "{schema}");
    }
}
