//! `csv_summary`: parses a CSV text and sums it up per column: how many cells are filled,
//! how many are numbers, and the numbers' minimum, maximum and mean. A ragged file (a row
//! with more or fewer fields than the first) fails permanently with `invalid_csv` naming
//! the line: another attempt would read the same text.
//!
//! Its bounds (the text's length, the delimiters) are constants written into the payload
//! schema by [`TaskKind::document`], so the stock api refuses what this worker would.

use errand_worker::kinds::{Failure, Invalid, Limits, TaskContext, TaskKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

/// Longest `csv` a payload may carry, in characters (what JSON Schema's `maxLength` counts):
/// under the api's `api.max_payload_bytes` (256 KiB of payload JSON by default), so a text
/// too long is refused naming `payload.csv` rather than as a whole body.
pub const MAX_CSV_CHARS: usize = 200_000;

/// The delimiters a payload may pick. A short list, so that the schema can state it (an
/// `enum`) and the api refuses any other.
pub const DELIMITERS: [&str; 4] = [",", ";", "\t", "|"];

/// Rows between two looks at the cancellation token and two progress reports.
const ROWS_PER_CHECK: u64 = 1024;

/// The `csv_summary` kind.
#[derive(Debug)]
pub struct CsvSummary;

/// Payload of `csv_summary`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvSummaryPayload {
    /// The CSV text (RFC 4180 quoting), at most 200 000 characters.
    #[schema(example = "city,population\nLyon,522250\nNantes,320732\n")]
    pub csv: String,
    /// The field delimiter: one of `,` `;` tab `|`.
    #[serde(default = "comma")]
    #[schema(default = ",")]
    pub delimiter: String,
    /// Whether the first row names the columns; without it they are `column_1`,
    /// `column_2` …
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub has_headers: bool,
}

fn comma() -> String {
    ",".to_owned()
}

fn yes() -> bool {
    true
}

/// Result of `csv_summary`.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub struct CsvSummaryResult {
    /// Data rows read (the header row is not counted).
    pub rows: u64,
    /// One entry per column, in the file's order.
    #[schema(inline)]
    pub columns: Vec<ColumnSummary>,
}

/// One column of a [`CsvSummaryResult`].
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub struct ColumnSummary {
    /// The header's text, or `column_N` (from 1) without headers.
    pub name: String,
    /// Cells that are not blank (whitespace only counts as blank).
    pub non_empty: u64,
    /// Cells that read as a finite number (`12`, `-3.5`, `1e6`; surrounding spaces allowed).
    pub numeric: u64,
    /// Smallest number in the column; null when it holds none.
    #[schema(required = true)]
    pub min: Option<f64>,
    /// Largest number in the column; null when it holds none.
    #[schema(required = true)]
    pub max: Option<f64>,
    /// Mean of the numbers in the column; null when it holds none.
    #[schema(required = true)]
    pub mean: Option<f64>,
}

impl TaskKind for CsvSummary {
    type Payload = CsvSummaryPayload;
    type Output = CsvSummaryResult;
    const NAME: &'static str = "csv_summary";
    const SUMMARY: &'static str =
        "Per-column statistics of a CSV text: filled cells, numbers, their min, max and mean.";
    const IDEMPOTENT: bool = true;

    fn example() -> Value {
        json!({"csv": "city,population\nLyon,522250\nNantes,320732\n"})
    }

    /// The same bounds as the schema: the worker runs this before every attempt, so a task
    /// that reached the queue some other way (an older api, a hand-written record) still
    /// fails cleanly with `invalid_payload`.
    fn check(p: &CsvSummaryPayload, _limits: &Limits) -> Result<(), Invalid> {
        if p.csv.chars().count() > MAX_CSV_CHARS {
            return Err(Invalid::new(
                "payload.csv",
                format!("must be at most {MAX_CSV_CHARS} characters"),
            ));
        }
        if !DELIMITERS.contains(&p.delimiter.as_str()) {
            return Err(Invalid::new(
                "payload.delimiter",
                "must be one of `,` `;` tab `|`",
            ));
        }
        Ok(())
    }

    /// utoipa's attributes take literals only; bounds kept in constants (or read from
    /// `limits`, errand's `tasks.*` settings) go in here.
    fn document(schema: &mut Value, _limits: &Limits) {
        schema["properties"]["csv"]["maxLength"] = json!(MAX_CSV_CHARS);
        schema["properties"]["delimiter"]["enum"] = json!(DELIMITERS);
    }

    async fn run(ctx: TaskContext, p: CsvSummaryPayload) -> Result<CsvSummaryResult, Failure> {
        ctx.report(0, format!("parsing {} bytes", p.csv.len()));
        let worker_ctx = ctx.clone();
        let job = tokio::task::spawn_blocking(move || summarize(&worker_ctx, &p));
        // The job looks at the token between rows; this answers at once all the same, and
        // the job ends at its next look. Biased: once cancelled, the task ends cancelled.
        tokio::select! {
            biased;
            () = ctx.cancelled() => Err(crate::cancelled(Self::NAME)),
            r = job => crate::joined(Self::NAME, r),
        }
    }
}

/// What is known of one column so far.
#[derive(Debug)]
struct Column {
    name: String,
    non_empty: u64,
    numeric: u64,
    min: f64,
    max: f64,
    sum: f64,
}

impl Column {
    fn new(name: String) -> Self {
        Self {
            name,
            non_empty: 0,
            numeric: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
        }
    }

    fn add(&mut self, cell: &str) {
        let cell = cell.trim();
        if cell.is_empty() {
            return;
        }
        self.non_empty += 1;
        // `NaN` and `inf` parse as f64; they are words in a report, not numbers.
        if let Ok(n) = cell.parse::<f64>()
            && n.is_finite()
        {
            self.numeric += 1;
            self.min = self.min.min(n);
            self.max = self.max.max(n);
            self.sum += n;
        }
    }

    fn summary(self) -> ColumnSummary {
        let some = self.numeric > 0;
        ColumnSummary {
            name: self.name,
            non_empty: self.non_empty,
            numeric: self.numeric,
            min: some.then_some(self.min),
            max: some.then_some(self.max),
            mean: some.then(|| self.sum / self.numeric as f64),
        }
    }
}

/// Runs on a blocking-pool thread; returns early once the task is cancelled.
fn summarize(ctx: &TaskContext, p: &CsvSummaryPayload) -> Result<CsvSummaryResult, Failure> {
    let delimiter = match p.delimiter.as_bytes() {
        [d] => *d,
        _ => return Err(Failure::permanent("invalid_payload", "bad delimiter")),
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(p.has_headers)
        // Every row must have as many fields as the first: a ragged file is an error.
        .flexible(false)
        .from_reader(p.csv.as_bytes());
    let mut columns: Vec<Column> = if p.has_headers {
        reader
            .headers()
            .map_err(invalid_csv)?
            .iter()
            .map(|h| Column::new(h.to_owned()))
            .collect()
    } else {
        Vec::new()
    };
    let total = p.csv.len().max(1) as u64;
    let mut rows = 0u64;
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(invalid_csv)? {
        if columns.is_empty() {
            columns = (1..=record.len())
                .map(|i| Column::new(format!("column_{i}")))
                .collect();
        }
        for (column, cell) in columns.iter_mut().zip(record.iter()) {
            column.add(cell);
        }
        rows += 1;
        if rows.is_multiple_of(ROWS_PER_CHECK) {
            if ctx.is_cancelled() {
                return Err(crate::cancelled(CsvSummary::NAME));
            }
            let at = reader.position().byte();
            ctx.report((at * 100 / total) as u8, format!("{rows} rows read"));
        }
    }
    ctx.report(100, format!("{rows} rows read"));
    Ok(CsvSummaryResult {
        rows,
        columns: columns.into_iter().map(Column::summary).collect(),
    })
}

/// A CSV the parser refuses, as the task's failure: permanent, naming the line.
fn invalid_csv(e: csv::Error) -> Failure {
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => {
            let line = pos.as_ref().map_or(0, csv::Position::line);
            let fields = if *len == 1 { "field" } else { "fields" };
            format!("line {line}: {len} {fields}, but the first row has {expected_len}")
        }
        _ => match e.position() {
            Some(pos) => format!("line {}: {e}", pos.line()),
            None => e.to_string(),
        },
    };
    Failure::permanent("invalid_csv", message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::context;

    fn payload(v: Value) -> CsvSummaryPayload {
        serde_json::from_value(v).expect("payload")
    }

    async fn run(v: Value) -> Result<CsvSummaryResult, Failure> {
        let (ctx, _latest, _cancel) = context();
        CsvSummary::run(ctx, payload(v)).await
    }

    fn column(name: &str, non_empty: u64, numbers: &[f64]) -> ColumnSummary {
        let (min, max, mean) = if numbers.is_empty() {
            (None, None, None)
        } else {
            (
                numbers.iter().copied().reduce(f64::min),
                numbers.iter().copied().reduce(f64::max),
                Some(numbers.iter().sum::<f64>() / numbers.len() as f64),
            )
        };
        ColumnSummary {
            name: name.into(),
            non_empty,
            numeric: numbers.len() as u64,
            min,
            max,
            mean,
        }
    }

    #[tokio::test]
    async fn sums_up_each_column() {
        let r = run(json!({"csv": "city,population,area\nLyon,522250, 47.87\nNantes,320732,\n\"Saint-Étienne, Loire\",n/a,79.97\n"}))
            .await
            .unwrap();
        assert_eq!(
            r,
            CsvSummaryResult {
                rows: 3,
                columns: vec![
                    column("city", 3, &[]),
                    column("population", 3, &[522250.0, 320732.0]),
                    column("area", 2, &[47.87, 79.97]),
                ],
            }
        );
    }

    #[tokio::test]
    async fn without_headers_every_row_is_data_and_columns_are_numbered() {
        let r = run(json!({"csv": "1;2\n3;x\n", "delimiter": ";", "has_headers": false}))
            .await
            .unwrap();
        assert_eq!(r.rows, 2);
        assert_eq!(
            r.columns,
            [
                column("column_1", 2, &[1.0, 3.0]),
                column("column_2", 2, &[2.0])
            ]
        );
        // Tabs too; `NaN` and `inf` are words.
        let r = run(json!({"csv": "a\tb\nNaN\tinf\n-1e3\t\n", "delimiter": "\t"}))
            .await
            .unwrap();
        assert_eq!(r.columns, [column("a", 2, &[-1000.0]), column("b", 1, &[])]);
    }

    #[tokio::test]
    async fn an_empty_text_or_a_header_alone_has_no_rows() {
        let r = run(json!({"csv": ""})).await.unwrap();
        assert_eq!((r.rows, r.columns.len()), (0, 0));
        let r = run(json!({"csv": "a,b\n"})).await.unwrap();
        assert_eq!(r.rows, 0);
        assert_eq!(r.columns, [column("a", 0, &[]), column("b", 0, &[])]);
    }

    #[tokio::test]
    async fn a_ragged_row_fails_permanently_naming_its_line() {
        let e = run(json!({"csv": "a,b\n1,2\n3,4,5\n6,7\n"}))
            .await
            .unwrap_err();
        assert_eq!(e.kind, "invalid_csv");
        assert!(!e.retryable);
        assert!(e.message.starts_with("line 3:"), "{}", e.message);
        assert!(e.message.contains("3 fields"), "{}", e.message);
        let e = run(json!({"csv": "1\n2,3\n", "has_headers": false}))
            .await
            .unwrap_err();
        assert!(e.message.starts_with("line 2:"), "{}", e.message);
    }

    #[tokio::test]
    async fn reports_progress_and_stops_when_cancelled() {
        let big = "n\n".to_owned() + &"1\n".repeat(5000);
        let (ctx, latest, _cancel) = context();
        let r = CsvSummary::run(ctx, payload(json!({"csv": big})))
            .await
            .unwrap();
        assert_eq!(r.rows, 5000);
        assert_eq!(r.columns[0].mean, Some(1.0));
        assert_eq!(latest(), Some((100, Some("5000 rows read".into()))));

        let (ctx, _latest, cancel) = context();
        cancel.cancel();
        let e = CsvSummary::run(ctx, payload(json!({"csv": "n\n1\n"})))
            .await
            .unwrap_err();
        assert_eq!(e.kind, "cancelled");
    }

    #[test]
    fn check_holds_the_bounds_the_schema_states() {
        let limits = Limits::default();
        let ok = payload(json!({"csv": "a\n1\n", "delimiter": "|"}));
        assert!(CsvSummary::check(&ok, &limits).is_ok());
        let long = payload(json!({"csv": "x".repeat(MAX_CSV_CHARS + 1)}));
        assert_eq!(
            CsvSummary::check(&long, &limits).unwrap_err().field,
            "payload.csv"
        );
        let odd = payload(json!({"csv": "a", "delimiter": "::"}));
        assert_eq!(
            CsvSummary::check(&odd, &limits).unwrap_err().field,
            "payload.delimiter"
        );

        let mut schema =
            serde_json::to_value(<CsvSummaryPayload as utoipa::PartialSchema>::schema()).unwrap();
        CsvSummary::document(&mut schema, &limits);
        assert_eq!(schema["properties"]["csv"]["maxLength"], MAX_CSV_CHARS);
        assert_eq!(schema["properties"]["delimiter"]["enum"], json!(DELIMITERS));
        assert_eq!(schema["required"], json!(["csv"]), "{schema}");
        assert_eq!(schema["additionalProperties"], false, "{schema}");
    }
}
