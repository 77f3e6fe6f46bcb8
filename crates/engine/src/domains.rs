//! Public domains: the values every dimension can take, from the layout and
//! the domain specification alone, never from data.

use std::collections::HashMap;

use layout::Layout;

use crate::EngineError;

/// The most cells a single query may have; the server usually caps lower.
pub const MAX_CELLS: u64 = 1 << 24;

/// The most dimensions one query may touch (`group_by` ∪ filter keys).
pub const MAX_QUERY_DIMS: usize = 8;

/// A dimension of one dataset: its position in [`Domains::dims`]. Names
/// are data (the layout declares them), so a `Dim` means something only
/// with the [`Domains`] it came from ([`Domains::dim`], [`Domains::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dim(u8);

impl Dim {
    /// The position of the dimension in [`Domains::dims`].
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// This dimension's bit in a set of dimensions (at most 64 per dataset).
    pub(crate) fn bit(self) -> u64 {
        1 << self.0
    }
}

/// How a dimension's codes come out of its Parquet column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DimKind {
    /// The county reference list (`county` column, dictionary of names).
    County,
    /// Banded from the `birth_year` column on the reference year.
    AgeBand,
    /// The `registration_year` column, one value per year.
    RegistrationYear,
    /// A code table of the layout (standard or the state's own).
    Coded,
}

/// The public domain of one dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimDomain {
    /// Which dimension.
    pub dim: Dim,
    /// The name used in queries and answers (`age_band`,
    /// `state_house_district`).
    pub name: String,
    /// Where its codes come from.
    pub kind: DimKind,
    /// The Parquet column it is computed from.
    pub column: String,
    /// The values used as query and answer keys, in answer order.
    pub values: Vec<String>,
    /// Human-readable labels, one per value.
    pub labels: Vec<String>,
}

/// What the layout does not say: how ages are banded, and on which year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSpec {
    /// Lower edges of the age bands, strictly increasing, e.g.
    /// `[18, 25, 35, 45, 55, 65, 75]`.
    pub age_bands: Vec<u16>,
    /// The reference year: age = `as_of_year − birth_year`; registration
    /// years run up to it.
    pub as_of_year: i16,
}

/// A validated query over public domains.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CountQuery {
    /// Dimensions to group by; cells are row-major in this order.
    pub group_by: Vec<Dim>,
    /// Per dimension, the domain values to keep: AND across dimensions, OR
    /// within one.
    pub filter: Vec<(Dim, Vec<String>)>,
}

/// The public domains of a dataset's dimensions. Built only from the layout
/// and the [`DomainSpec`]; shared read-only across threads.
#[derive(Debug, Clone)]
pub struct Domains {
    /// In canonical order: the standard dimensions the layout records in
    /// [`layout::STANDARD_DIMENSIONS`] order, then its own.
    dims: Vec<DimDomain>,
    /// Per dimension: value → code.
    lookup: Vec<HashMap<String, u16>>,
    /// Per dimension: the code of a value outside the table (coded dims).
    fallback: Vec<Option<u16>>,
    /// Per dimension: the code of a null value (coded dims).
    null_code: Vec<Option<u16>>,
    /// Per dimension nested in the county: its valid (county code, code)
    /// pairs, in answer order.
    nested: Vec<Option<Vec<(u16, u16)>>>,
    /// Birth year (as `u16` bits) → age band code.
    age_table: Vec<u8>,
    /// Registration year (as `u16` bits) → code.
    registration_table: Vec<u16>,
    spec: DomainSpec,
    /// The layout's declared `name`: what analysts are told the dataset
    /// follows (never the path it was loaded from).
    layout_name: String,
}

/// One factor of a query's cells: a grouped dimension, or a dimension
/// nested in the county grouped together with the county.
#[derive(Debug, Clone)]
pub(crate) enum Unit {
    /// A grouped dimension at `pos` in `group_by`: the kept codes in domain
    /// order.
    One {
        dim: Dim,
        pos: usize,
        kept: Vec<u16>,
    },
    /// The county (`parent`, at `ppos`) and a dimension nested in it
    /// (`child`, at `cpos`): only the valid pairs that pass the filters, in
    /// the layout's order.
    Nested {
        parent: Dim,
        ppos: usize,
        child: Dim,
        cpos: usize,
        pairs: Vec<(u16, u16)>,
    },
}

impl Unit {
    /// Number of values (cells) of this factor.
    pub fn len(&self) -> usize {
        match self {
            Unit::One { kept, .. } => kept.len(),
            Unit::Nested { pairs, .. } => pairs.len(),
        }
    }
}

/// The validated plan of a query: what the counting loop needs.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The factors of the cells, row-major: each grouped dimension in
    /// group-by order, a nested pair at the first of its two positions.
    pub group: Vec<Unit>,
    /// Number of grouped dimensions (the length of a cell key).
    pub width: usize,
    /// Per filtered dimension not grouped: which codes pass.
    pub filters: Vec<(Dim, Vec<bool>)>,
    /// Number of cells.
    pub cells: usize,
}

impl Plan {
    /// Every dimension the query touches (a [`Dim::bit`] set): what a
    /// pre-aggregated level must keep to answer it.
    pub fn needed(&self) -> u64 {
        let grouped = self.group.iter().fold(0u64, |m, u| match u {
            Unit::One { dim, .. } => m | dim.bit(),
            Unit::Nested { parent, child, .. } => m | parent.bit() | child.bit(),
        });
        self.filters.iter().fold(grouped, |m, (d, _)| m | d.bit())
    }
}

fn age_labels(edges: &[u16]) -> Vec<String> {
    let mut labels = Vec::with_capacity(edges.len() + 2);
    labels.push(format!("<{}", edges[0]));
    for pair in edges.windows(2) {
        labels.push(format!("{}-{}", pair[0], pair[1] - 1));
    }
    labels.push(format!("{}+", edges[edges.len() - 1]));
    labels.push("unknown".to_owned());
    labels
}

/// Refuses age bands and an as-of year no dataset could be counted with.
fn check_spec(layout: &Layout, spec: &DomainSpec) -> Result<(), EngineError> {
    let edges = &spec.age_bands;
    if edges.is_empty() {
        return Err(EngineError::InvalidSpec(
            "age_bands must list at least one edge".into(),
        ));
    }
    if edges.windows(2).any(|w| w[0] >= w[1]) {
        return Err(EngineError::InvalidSpec(format!(
            "age_bands must be strictly increasing, got {edges:?}"
        )));
    }
    if edges.len() > 200 {
        return Err(EngineError::InvalidSpec("at most 200 age bands".into()));
    }
    if !(1800..=2200).contains(&spec.as_of_year) {
        return Err(EngineError::InvalidSpec(format!(
            "as_of year {} is not plausible",
            spec.as_of_year
        )));
    }
    if layout.registration_date.is_some() && spec.as_of_year < layout.first_registration_year {
        return Err(EngineError::InvalidSpec(format!(
            "as_of year {} is before the layout's first registration year {}",
            spec.as_of_year, layout.first_registration_year
        )));
    }
    Ok(())
}

/// A dimension's domain as the layout and spec give it, before it has its
/// place (`dim`) among the dataset's dimensions.
struct Found {
    domain: DimDomain,
    fallback: Option<u16>,
    null_code: Option<u16>,
    /// For a dimension within the county: (county code, code) pairs.
    nested: Option<Vec<(u16, u16)>>,
}

/// The public domain of the standard or layout dimension `name`, from the
/// layout and the spec alone; `None` when the layout does not record it.
fn dim_domain(layout: &Layout, spec: &DomainSpec, name: &str) -> Option<Found> {
    let derived = |kind: DimKind, column: &str, values: Vec<String>| Found {
        domain: DimDomain {
            dim: Dim(0),
            name: name.to_owned(),
            kind,
            column: column.to_owned(),
            labels: values.clone(),
            values,
        },
        fallback: None,
        null_code: None,
        nested: None,
    };
    match name {
        "county" => Some(derived(
            DimKind::County,
            "county",
            layout
                .county
                .counties
                .iter()
                .map(|c| c.name.clone())
                .collect(),
        )),
        "age_band" => layout
            .birth_year
            .as_ref()
            .map(|_| derived(DimKind::AgeBand, "birth_year", age_labels(&spec.age_bands))),
        "registration_year" => layout.registration_date.as_ref().map(|_| {
            let mut values: Vec<String> = (layout.first_registration_year..=spec.as_of_year)
                .map(|y| y.to_string())
                .collect();
            values.push("unknown".to_owned());
            derived(DimKind::RegistrationYear, "registration_year", values)
        }),
        vote if vote.starts_with(layout::VOTE_PREFIX) => {
            layout.elections.iter().find(|e| e.dimension == vote)?;
            let categories = layout.history.as_ref()?.categories();
            let (values, labels) = categories
                .iter()
                .map(|&c| {
                    let (v, l) = layout::CATEGORIES[usize::from(c)];
                    (v.to_owned(), l.to_owned())
                })
                .unzip();
            Some(Found {
                domain: DimDomain {
                    dim: Dim(0),
                    name: vote.to_owned(),
                    kind: DimKind::Coded,
                    column: vote.to_owned(),
                    values,
                    labels,
                },
                // Ingest writes only these values; a null is no record.
                fallback: Some(u16::from(layout::DID_NOT_VOTE)),
                null_code: Some(u16::from(layout::DID_NOT_VOTE)),
                nested: None,
            })
        }
        coded => {
            let column = layout.coded(coded)?;
            Some(Found {
                domain: DimDomain {
                    dim: Dim(0),
                    name: coded.to_owned(),
                    kind: DimKind::Coded,
                    column: coded.to_owned(),
                    values: column.codes.iter().map(|c| c.code.clone()).collect(),
                    labels: column.codes.iter().map(|c| c.label.clone()).collect(),
                },
                fallback: Some(column.fallback as u16),
                null_code: Some(column.blank.unwrap_or(column.fallback) as u16),
                nested: column
                    .within
                    .as_ref()
                    .map(|n| n.pairs.iter().map(|&(c, v)| (c, u16::from(v))).collect()),
            })
        }
    }
}

/// Every dimension name the layout records, in canonical order: the
/// standard ones, then the layout's own in its order, then one per
/// configured election.
fn dimension_names(layout: &Layout) -> Vec<&str> {
    let own = layout
        .coded
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| !layout::STANDARD_DIMENSIONS.contains(n));
    let votes = layout.elections.iter().map(|e| e.dimension.as_str());
    layout::STANDARD_DIMENSIONS
        .into_iter()
        .chain(own)
        .chain(votes)
        .collect()
}

/// Birth year (as `u16` bits) → age band code: a year before the layout's
/// `min_birth_year` or after the as-of year is `unknown`.
fn age_table(layout: &Layout, spec: &DomainSpec) -> Vec<u8> {
    let edges = &spec.age_bands;
    let unknown_age = (edges.len() + 1) as u8;
    (0..=u16::MAX)
        .map(|bits| {
            let year = bits as i16;
            if year < layout.min_birth_year || year > spec.as_of_year {
                return unknown_age;
            }
            let age = i32::from(spec.as_of_year) - i32::from(year);
            edges.partition_point(|&e| i32::from(e) <= age) as u8
        })
        .collect()
}

/// Registration year (as `u16` bits) → code: years outside the layout's
/// first year ..= the as-of year are `unknown`.
fn registration_table(layout: &Layout, spec: &DomainSpec) -> Vec<u16> {
    let first = layout.first_registration_year;
    let unknown_year = (spec.as_of_year - first + 1).max(0) as u16;
    (0..=u16::MAX)
        .map(|bits| {
            let year = bits as i16;
            if (first..=spec.as_of_year).contains(&year) {
                (year - first) as u16
            } else {
                unknown_year
            }
        })
        .collect()
}

impl Domains {
    /// Builds the domains of every dimension `layout` records.
    ///
    /// - `county`: the reference list's names in file order;
    /// - `age_band`: `<e0`, `e0-(e1-1)`, …, `eN+`, `unknown` (values = labels);
    ///   a null birth year, one before the layout's `min_birth_year` or one
    ///   after `as_of_year` is `unknown`;
    /// - coded dimensions: the layout's codes and labels, in table order;
    /// - `registration_year`: the layout's first year ..= `as_of_year`, then
    ///   `unknown` (null or out of range).
    pub fn new(layout: &Layout, spec: &DomainSpec) -> Result<Domains, EngineError> {
        check_spec(layout, spec)?;
        let (mut dims, mut fallback, mut null_code) = (Vec::new(), Vec::new(), Vec::new());
        let mut nested = Vec::new();
        for name in dimension_names(layout) {
            let Some(mut found) = dim_domain(layout, spec, name) else {
                continue;
            };
            if found.domain.values.len() > u16::MAX as usize {
                return Err(EngineError::InvalidSpec(format!(
                    "dimension `{name}` has {} values; at most {} are supported",
                    found.domain.values.len(),
                    u16::MAX
                )));
            }
            found.domain.dim = Dim(dims.len() as u8);
            dims.push(found.domain);
            fallback.push(found.fallback);
            null_code.push(found.null_code);
            nested.push(found.nested);
        }
        if dims.len() > 64 {
            return Err(EngineError::InvalidSpec(format!(
                "{} dimensions; at most 64 are supported",
                dims.len()
            )));
        }
        let lookup = dims
            .iter()
            .map(|d| {
                d.values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v.clone(), i as u16))
                    .collect()
            })
            .collect();
        Ok(Domains {
            dims,
            lookup,
            fallback,
            null_code,
            nested,
            age_table: age_table(layout, spec),
            registration_table: registration_table(layout, spec),
            spec: spec.clone(),
            layout_name: layout.name.clone(),
        })
    }

    /// The dimensions this dataset has, in canonical order.
    pub fn dims(&self) -> &[DimDomain] {
        &self.dims
    }

    /// The domain of `dim`, if `dim` is one of these domains' dimensions.
    pub fn get(&self, dim: Dim) -> Option<&DimDomain> {
        self.dims.get(dim.index())
    }

    /// The domain of the dimension named `name`, if the dataset has it.
    pub fn by_name(&self, name: &str) -> Option<&DimDomain> {
        self.dims.iter().find(|d| d.name == name)
    }

    /// The name of `dim` (`party`); empty for a `Dim` of other domains.
    pub fn name(&self, dim: Dim) -> &str {
        self.get(dim).map_or("", |d| d.name.as_str())
    }

    /// The spec these domains were built with.
    pub fn spec(&self) -> &DomainSpec {
        &self.spec
    }

    /// The name the layout declares (`nc`), whether it was given to the
    /// server by name or by path.
    pub fn layout_name(&self) -> &str {
        &self.layout_name
    }

    /// Names of the dimensions this dataset has.
    pub fn dim_names(&self) -> Vec<String> {
        self.dims.iter().map(|d| d.name.clone()).collect()
    }

    /// Parses a dimension name given by a client: `UnknownDimension` (listing
    /// this dataset's dimensions) for a name that is no dimension, or one the
    /// layout does not record.
    pub fn dim(&self, name: &str) -> Result<Dim, EngineError> {
        self.by_name(name)
            .map(|d| d.dim)
            .ok_or_else(|| EngineError::UnknownDimension {
                name: name.to_owned(),
                allowed: self.dim_names(),
            })
    }

    /// `DimensionAbsent` for a `Dim` that is not one of these domains'.
    fn present(&self, dim: Dim) -> Result<&DimDomain, EngineError> {
        self.get(dim)
            .ok_or_else(|| EngineError::DimensionAbsent(format!("#{}", dim.index())))
    }

    /// The code of `value` in `dim`'s domain.
    pub fn code(&self, dim: Dim, value: &str) -> Result<u16, EngineError> {
        let domain = self.present(dim)?;
        self.lookup[dim.index()]
            .get(value)
            .copied()
            .ok_or_else(|| EngineError::InvalidValue {
                dim: domain.name.clone(),
                value: value.to_owned(),
                allowed: domain.values.clone(),
            })
    }

    pub(crate) fn domain_len(&self, dim: Dim) -> usize {
        self.get(dim).map_or(0, |d| d.values.len())
    }

    pub(crate) fn value_code(&self, dim: Dim, value: &str) -> Option<u16> {
        self.lookup.get(dim.index())?.get(value).copied()
    }

    pub(crate) fn fallback(&self, dim: Dim) -> Option<u16> {
        self.fallback.get(dim.index()).copied().flatten()
    }

    pub(crate) fn null_code(&self, dim: Dim) -> Option<u16> {
        self.null_code.get(dim.index()).copied().flatten()
    }

    /// The valid (county code, code) pairs of `dim` if it is nested in the
    /// county, in answer order.
    pub fn nested_pairs(&self, dim: Dim) -> Option<&[(u16, u16)]> {
        self.nested.get(dim.index())?.as_deref()
    }

    pub(crate) fn age_table(&self) -> &[u8] {
        &self.age_table
    }

    pub(crate) fn registration_table(&self) -> &[u16] {
        &self.registration_table
    }

    /// Validates `q` against these domains and works out its cells.
    pub(crate) fn plan(&self, q: &CountQuery) -> Result<Plan, EngineError> {
        let mut seen = 0u64;
        for &dim in &q.group_by {
            let domain = self.present(dim)?;
            if seen & dim.bit() != 0 {
                return Err(EngineError::DuplicateDimension(domain.name.clone()));
            }
            seen |= dim.bit();
        }
        let masks = self.filter_masks(q)?;
        let touched = masks.iter().fold(seen, |m, (d, _)| m | d.bit());
        if touched.count_ones() as usize > MAX_QUERY_DIMS {
            return Err(EngineError::TooManyDimensions {
                count: touched.count_ones() as usize,
                max: MAX_QUERY_DIMS,
            });
        }
        let group = self.units(q, &masks);
        let cells = group
            .iter()
            .fold(1u64, |n, u| n.saturating_mul(u.len() as u64));
        if cells > MAX_CELLS {
            return Err(EngineError::TooManyCells {
                cells,
                max: MAX_CELLS,
            });
        }
        let filters = masks
            .into_iter()
            .filter(|(d, _)| !q.group_by.contains(d))
            .collect();
        Ok(Plan {
            group,
            width: q.group_by.len(),
            filters,
            cells: cells as usize,
        })
    }

    /// The factors of `q`'s cells (see [`Unit`]): a nested dimension
    /// grouped with the county becomes one factor of valid pairs.
    fn units(&self, q: &CountQuery, masks: &[(Dim, Vec<bool>)]) -> Vec<Unit> {
        let keeps = |dim: Dim, code: u16| {
            masks
                .iter()
                .find(|(d, _)| *d == dim)
                .is_none_or(|(_, m)| m[code as usize])
        };
        let county = self.by_name("county").map(|d| d.dim);
        let pos_of = |dim: Dim| q.group_by.iter().position(|d| *d == dim);
        // The first nested dimension grouped along with the county pairs
        // with it; any other is crossed like a plain dimension.
        let paired = county.filter(|c| pos_of(*c).is_some()).and_then(|c| {
            q.group_by
                .iter()
                .find(|d| self.nested_pairs(**d).is_some())
                .map(|child| (c, *child))
        });
        let mut units = Vec::with_capacity(q.group_by.len());
        for (pos, &dim) in q.group_by.iter().enumerate() {
            match paired {
                Some((parent, child)) if dim == parent || dim == child => {
                    if dim == child && pos_of(parent) < Some(pos)
                        || dim == parent && pos_of(child) < Some(pos)
                    {
                        continue; // already placed at the first of the two
                    }
                    let pairs = self
                        .nested_pairs(child)
                        .expect("paired dims are nested")
                        .iter()
                        .copied()
                        .filter(|&(p, c)| keeps(parent, p) && keeps(child, c))
                        .collect();
                    units.push(Unit::Nested {
                        parent,
                        ppos: pos_of(parent).expect("grouped"),
                        child,
                        cpos: pos_of(child).expect("grouped"),
                        pairs,
                    });
                }
                _ => {
                    let kept = (0..self.domain_len(dim) as u16)
                        .filter(|&c| keeps(dim, c))
                        .collect();
                    units.push(Unit::One { dim, pos, kept });
                }
            }
        }
        units
    }

    /// Per filtered dimension, which codes pass; checks each filter.
    fn filter_masks(&self, q: &CountQuery) -> Result<Vec<(Dim, Vec<bool>)>, EngineError> {
        let mut masks: Vec<(Dim, Vec<bool>)> = Vec::with_capacity(q.filter.len());
        let mut filtered = 0u64;
        for (dim, values) in &q.filter {
            let dim = *dim;
            let domain = self.present(dim)?;
            if filtered & dim.bit() != 0 {
                return Err(EngineError::DuplicateDimension(domain.name.clone()));
            }
            filtered |= dim.bit();
            if values.is_empty() {
                return Err(EngineError::EmptyFilter(domain.name.clone()));
            }
            let mut mask = vec![false; domain.values.len()];
            for v in values {
                mask[self.code(dim, v)? as usize] = true;
            }
            masks.push((dim, mask));
        }
        Ok(masks)
    }

    /// Number of cells `q` answers with (the cross product of the grouped
    /// dimensions, each narrowed by its filter). Validates `q`, except that
    /// a query over [`MAX_CELLS`] reports its size rather than failing.
    pub fn cell_count(&self, q: &CountQuery) -> Result<u64, EngineError> {
        match self.plan(q) {
            Ok(plan) => Ok(plan.cells as u64),
            Err(EngineError::TooManyCells { cells, .. }) => Ok(cells),
            Err(e) => Err(e),
        }
    }

    /// The key of each cell (one value per grouped dimension, in group-by
    /// order), in the order [`crate::Dataset::count`] returns counts.
    pub fn cells(&self, q: &CountQuery) -> Result<Vec<Vec<String>>, EngineError> {
        let plan = self.plan(q)?;
        let mut keys = Vec::with_capacity(plan.cells);
        let mut current = vec![String::new(); plan.width];
        self.push_cells(&plan.group, &mut current, &mut keys);
        Ok(keys)
    }

    /// Appends the keys of `group`'s cells, row-major, to `out`; `current`
    /// holds the values chosen so far at their group-by positions.
    fn push_cells(&self, group: &[Unit], current: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        let Some((unit, rest)) = group.split_first() else {
            out.push(current.clone());
            return;
        };
        let values = |dim: &Dim| &self.get(*dim).expect("planned dims are present").values;
        match unit {
            Unit::One { dim, pos, kept } => {
                for &c in kept {
                    current[*pos] = values(dim)[c as usize].clone();
                    self.push_cells(rest, current, out);
                }
            }
            Unit::Nested {
                parent,
                ppos,
                child,
                cpos,
                pairs,
            } => {
                for &(p, c) in pairs {
                    current[*ppos] = values(parent)[p as usize].clone();
                    current[*cpos] = values(child)[c as usize].clone();
                    self.push_cells(rest, current, out);
                }
            }
        }
    }

    /// The canonical form of `q`: filters in canonical dimension order, each
    /// filter's values deduplicated in domain order. `group_by` keeps its
    /// order (it fixes the order of the answer). Validates `q`.
    pub fn canonical(&self, q: &CountQuery) -> Result<CountQuery, EngineError> {
        self.plan(q)?;
        let mut filter: Vec<(Dim, Vec<String>)> = q
            .filter
            .iter()
            .map(|(dim, values)| {
                let domain = &self.get(*dim).expect("planned dims are present").values;
                let mut codes: Vec<u16> = values
                    .iter()
                    .map(|v| {
                        self.value_code(*dim, v)
                            .expect("planned values are in the domain")
                    })
                    .collect();
                codes.sort_unstable();
                codes.dedup();
                (
                    *dim,
                    codes
                        .into_iter()
                        .map(|c| domain[c as usize].clone())
                        .collect(),
                )
            })
            .collect();
        filter.sort_by_key(|(d, _)| *d);
        Ok(CountQuery {
            group_by: q.group_by.clone(),
            filter,
        })
    }

    /// A stable text key for `q` that is the same for identical queries:
    /// same group-by *set*, same filter *sets*. The release key adds the data
    /// version, [`Domains::digest`] and ε. Validates `q`.
    pub fn query_key(&self, q: &CountQuery) -> Result<String, EngineError> {
        let c = self.canonical(q)?;
        let mut group: Vec<Dim> = c.group_by.clone();
        group.sort();
        let group: Vec<&str> = group.iter().map(|d| self.name(*d)).collect();
        let filter: Vec<String> = c
            .filter
            .iter()
            .map(|(d, vs)| {
                format!(
                    "{}={}",
                    self.name(*d),
                    vs.iter().map(|v| escape(v)).collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        Ok(format!(
            "group={}|filter={}",
            group.join(","),
            filter.join(";")
        ))
    }

    /// A digest of everything these domains answer with: every dimension's
    /// values and labels in order, and the spec (age bands, reference year).
    /// Two specs that would label or bin any cell differently differ here,
    /// so a stored release is never served under other labels.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let put = |h: &mut Sha256, s: &str| {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        for d in &self.dims {
            put(&mut h, &d.name);
            for (v, l) in d.values.iter().zip(&d.labels) {
                put(&mut h, v);
                put(&mut h, l);
            }
        }
        // Which pairs a nested dimension has decides which cells exist.
        for (d, pairs) in self.dims.iter().zip(&self.nested) {
            if let Some(pairs) = pairs {
                put(&mut h, &format!("{}:{pairs:?}", d.name));
            }
        }
        put(&mut h, &format!("{:?}", self.spec));
        // Which birth years are `unknown` (the layout's plausible range) is
        // in the table, not in the labels.
        h.update(&self.age_table);
        h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Escapes the key separators in a domain value.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        if matches!(ch, '\\' | ',' | ';' | '|' | '=') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}
