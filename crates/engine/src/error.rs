//! The engine's errors. None carries a count or a row.

/// Everything that can go wrong building domains, loading data or counting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// A dimension name that is not one of this dataset's dimensions.
    #[error("unknown dimension `{name}`; allowed: {}", allowed.join(", "))]
    UnknownDimension {
        /// The name given.
        name: String,
        /// The dimensions this dataset has.
        allowed: Vec<String>,
    },
    /// A filter value that is not in the dimension's public domain.
    #[error("invalid value `{value}` for dimension `{dim}`; allowed: {}", allowed.join(", "))]
    InvalidValue {
        /// The dimension's name.
        dim: String,
        /// The value given.
        value: String,
        /// The dimension's public values.
        allowed: Vec<String>,
    },
    /// A dimension this dataset's layout does not record (by name, or `#N`
    /// for a [`crate::Dim`] of other domains).
    #[error("dimension `{0}` is not recorded by this dataset's layout")]
    DimensionAbsent(String),
    /// A dimension named twice in `group_by`, or filtered twice.
    #[error("dimension `{0}` appears twice in the query")]
    DuplicateDimension(String),
    /// A filter with an empty list of values.
    #[error("the filter on `{0}` lists no values")]
    EmptyFilter(String),
    /// The query touches more dimensions (`group_by` ∪ filter keys) than
    /// one count may.
    #[error("the query touches {count} dimensions; at most {max} are allowed")]
    TooManyDimensions {
        /// Dimensions the query touches.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The cross product of the group-by dimensions is larger than the engine counts.
    #[error("the query has {cells} cells; at most {max} are allowed")]
    TooManyCells {
        /// Cells the query would have.
        cells: u64,
        /// The limit.
        max: u64,
    },
    /// The domain specification (age bands, reference year) is unusable.
    #[error("invalid domain specification: {0}")]
    InvalidSpec(String),
    /// A file could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The file or folder.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A Parquet file could not be decoded.
    #[error("{path}: parquet: {message}")]
    Parquet {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A Parquet file does not have the columns or values the layout requires.
    #[error("{path}: {message}")]
    Schema {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}
