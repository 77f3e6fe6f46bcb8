//! SQL fragments shared by several statements, as macros so that
//! `concat!` can build each statement as one `&'static str` (the key of the
//! connection's prepared statements).

/// The current time as `created_at` stores it on both backends:
/// RFC 3339 UTC with milliseconds (`2026-06-30T12:00:00.000Z`).
macro_rules! now {
    () => {
        r#"to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#
    };
}

/// The columns of a release, in the order `release_from_row` reads them.
macro_rules! release_columns {
    () => {
        "release_id, analyst, dataset, population, query_key, query_json, rows_json, \
         epsilon_nanos, mechanism, noise_scale, ci95, created_at"
    };
}
