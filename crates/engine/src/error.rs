//! The engine's errors. None carries a count or a row.

use crate::Dim;

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
        /// The dimension.
        dim: Dim,
        /// The value given.
        value: String,
        /// The dimension's public values.
        allowed: Vec<String>,
    },
    /// A dimension this dataset's layout does not record.
    #[error("dimension `{0}` is not recorded by this dataset's layout")]
    DimensionAbsent(Dim),
    /// A dimension named twice in `group_by`, or filtered twice.
    #[error("dimension `{0}` appears twice in the query")]
    DuplicateDimension(Dim),
    /// A filter with an empty list of values.
    #[error("the filter on `{0}` lists no values")]
    EmptyFilter(Dim),
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
