use thiserror::Error;

/// Why a layout could not be loaded. Every variant names the file and, where
/// there is one, the offending key.
#[derive(Debug, Error)]
pub enum LayoutError {
    /// The layout file could not be read.
    #[error("cannot read layout {path}: {message}")]
    Io {
        /// Path of the layout file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// The TOML is malformed or has an unknown or missing key.
    #[error("layout {origin}: {message}")]
    Toml {
        /// Where the layout came from.
        origin: String,
        /// The parser's message (it names the key and line).
        message: String,
    },
    /// A key has a value that is not allowed.
    #[error("layout {origin}: key `{key}`: {message}")]
    Invalid {
        /// Where the layout came from.
        origin: String,
        /// Dotted key path, e.g. `dimensions.party.fallback`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A reference file (county list) is missing or malformed.
    #[error("reference file {path}: {message}")]
    Reference {
        /// Path of the reference file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// `--layout NAME` named no built-in layout and no file.
    #[error("unknown layout `{name}` (built-in layouts: {known}; or give a path to a .toml file)")]
    UnknownLayout {
        /// The name given.
        name: String,
        /// The built-in names.
        known: String,
    },
}
