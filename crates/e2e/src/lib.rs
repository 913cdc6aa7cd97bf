//! Nothing here: the crate exists for its `tests/`, the suites over the whole deployment (the
//! real errand-api and errand-worker binaries, a real Redis or Redis Cluster, the compose
//! stack), which belong to no single crate. Each file or directory in `tests/` is one test
//! binary (`chaos`, `cluster`, `compose`, `e2e`, `observability`, `production`, `tutorial`), so
//! `cargo nextest run -p errand-e2e --test chaos` selects one suite.
