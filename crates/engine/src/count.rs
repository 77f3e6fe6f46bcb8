//! Exact counts by groups with filters: one pass over the codes.
//!
//! Every dimension the query touches gets a lookup table from code to its
//! contribution to the cell index: `position × stride` for a grouped
//! dimension (mixed radix, row-major in group-by order), 0 for a filtered
//! dimension's kept codes, and [`EXCLUDED`] for a code the filter drops. A
//! row's cell is the sum of its contributions; any excluded code pushes the
//! sum past the last cell, and the row is dropped before counting. The loop
//! runs a block of rows one column at a time, in parallel chunks, each
//! summing into its own vector of counts.
//!
//! A dimension with at most 16 values (age band, party, status, gender, ...)
//! shares one table with another `u8` dimension: the pair's table is indexed
//! by `(a << 4) | b` and holds the sum of both contributions. A typical
//! county × age band query filtered by party and status then does two table
//! lookups a row instead of four.

use rayon::prelude::*;

use crate::dataset::{Codes, Segment, narrow};
use crate::domains::MAX_CELLS;
use crate::domains::Unit;
use crate::{CountQuery, Dataset, Dim, EngineError};

/// The contribution of a code a filter drops: larger than any real index,
/// and small enough that nine of them still fit in a `u32`.
const EXCLUDED: u32 = 1 << 27;
const _: () = assert!(MAX_CELLS <= EXCLUDED as u64 && 9 * (EXCLUDED as u64) < u32::MAX as u64);

/// Rows per parallel task.
const TASK_ROWS: usize = 1 << 16;
/// Rows per block in the inner loop (the index buffer lives on the stack).
const BLOCK: usize = 2048;
/// Interleaved copies of the counts for queries with few cells.
const LANES: usize = 4;
/// Above this many cells one copy is used: consecutive rows rarely share a
/// cell anyway.
const MAX_CELLS_FOR_LANES: usize = 64;

/// A dimension's lookup table, sized so that any stored code is in bounds.
enum Lut {
    U8(Box<[u32; 256]>),
    U16(Box<[u32; 65536]>),
}

/// Bits of a paired table's index that hold the small dimension's code.
const PAIR_SHIFT: u32 = 4;
/// Entries of a paired table: any `u8` code of the first dimension times
/// every code of a small one, so a masked index is always in bounds.
const PAIR_LEN: usize = 256 << PAIR_SHIFT;

/// What one pass over a block adds to each row's cell index.
enum Term {
    /// One dimension's table.
    One(Dim, Lut),
    /// Two `u8` dimensions' tables fused: entry `(a << 4) | b` is
    /// `lut_a[a] + lut_b[b]`; `b` has at most 16 values.
    Pair(Dim, Dim, Box<[u32; PAIR_LEN]>),
    /// The county and a dimension nested in it, grouped together: entry
    /// `county × child_len + child` is the pair's contribution, [`EXCLUDED`]
    /// for a pair that is not valid (or that a filter drops).
    Nested(Dim, Dim, usize, Vec<u32>),
}

/// Fuses the `u8` tables pairwise where one side has at most 16 values, so
/// each row does fewer lookups; the sums are the same.
fn fuse(domains: &crate::Domains, luts: Vec<(Dim, Lut)>) -> Vec<Term> {
    let mut small = Vec::new();
    let mut rest = Vec::new();
    for (dim, lut) in luts {
        match lut {
            Lut::U8(table) if domains.domain_len(dim) <= 1 << PAIR_SHIFT => {
                small.push((dim, table))
            }
            lut => rest.push((dim, lut)),
        }
    }
    let mut terms = Vec::new();
    let mut unpaired = Vec::new();
    for (dim, lut) in rest {
        match lut {
            Lut::U8(a) if !small.is_empty() => {
                let (b_dim, b) = small.pop().expect("not empty");
                terms.push(Term::Pair(dim, b_dim, pair_table(&a, &b)));
            }
            lut => unpaired.push(Term::One(dim, lut)),
        }
    }
    while let Some((a_dim, a)) = small.pop() {
        match small.pop() {
            Some((b_dim, b)) => terms.push(Term::Pair(a_dim, b_dim, pair_table(&a, &b))),
            None => unpaired.push(Term::One(a_dim, Lut::U8(a))),
        }
    }
    terms.extend(unpaired);
    terms
}

fn pair_table(a: &[u32; 256], b: &[u32; 256]) -> Box<[u32; PAIR_LEN]> {
    let mut t: Box<[u32; PAIR_LEN]> = vec![0u32; PAIR_LEN]
        .into_boxed_slice()
        .try_into()
        .expect("PAIR_LEN entries");
    for (hi, &x) in a.iter().enumerate() {
        for (lo, &y) in b[..1 << PAIR_SHIFT].iter().enumerate() {
            // Both may be EXCLUDED: the sum still exceeds every cell index.
            t[(hi << PAIR_SHIFT) | lo] = x + y;
        }
    }
    t
}

impl Dataset {
    /// Exact counts for every cell of the cross product of `group_by`'s
    /// value lists (each narrowed by the filter on the same dimension, in
    /// domain order), row-major in `group_by` order; an empty `group_by`
    /// gives one cell. The keys are [`crate::Domains::cells`] of the same
    /// query.
    ///
    /// These are exact counts, wrapped so that only the privacy crate can
    /// read them (to add noise).
    pub fn count(&self, query: &CountQuery) -> Result<privacy::ExactCounts, EngineError> {
        self.count_cells(query).map(privacy::ExactCounts::new)
    }

    /// [`Dataset::count`], unwrapped: for this crate's own tests.
    pub(crate) fn count_cells(&self, query: &CountQuery) -> Result<Vec<u64>, EngineError> {
        let plan = self.domains.plan(query)?;
        let cells = plan.cells;
        let may_exclude = !plan.filters.is_empty()
            || plan.group.iter().any(|u| match u {
                Unit::One { dim, kept, .. } => kept.len() < self.domains.domain_len(*dim),
                Unit::Nested { .. } => true,
            });
        let mut luts: Vec<(Dim, Lut)> = Vec::new();
        let mut nested = Vec::new();
        let mut stride = 1u32;
        for unit in plan.group.iter().rev() {
            match unit {
                Unit::One { dim, kept, .. } => {
                    let mut table = vec![EXCLUDED; self.domains.domain_len(*dim)];
                    for (position, &code) in kept.iter().enumerate() {
                        table[code as usize] = position as u32 * stride;
                    }
                    luts.push((*dim, self.lut(*dim, &table)));
                }
                Unit::Nested {
                    parent,
                    child,
                    pairs,
                    ..
                } => {
                    let width = self.domains.domain_len(*child);
                    let mut table = vec![EXCLUDED; self.domains.domain_len(*parent) * width];
                    for (position, &(p, c)) in pairs.iter().enumerate() {
                        table[p as usize * width + c as usize] = position as u32 * stride;
                    }
                    nested.push(Term::Nested(*parent, *child, width, table));
                }
            }
            stride *= unit.len() as u32;
        }
        for (dim, mask) in &plan.filters {
            let table: Vec<u32> = mask
                .iter()
                .map(|&keep| if keep { 0 } else { EXCLUDED })
                .collect();
            luts.push((*dim, self.lut(*dim, &table)));
        }
        if luts.is_empty() && nested.is_empty() {
            return Ok(vec![self.rows() as u64]);
        }
        let needed = plan.needed();
        let mut luts = fuse(&self.domains, luts);
        luts.extend(nested);

        // With few cells, counts go to LANES interleaved copies (row j into
        // copy j % LANES) so that consecutive rows rarely increment the same
        // counter and the increments do not wait on each other.
        let lanes = if cells <= MAX_CELLS_FOR_LANES {
            LANES
        } else {
            1
        };
        // The smallest pre-aggregated level that keeps every dimension the
        // query touches, else every row (weight 1).
        let level = self.level_for(needed).map(|(_, l)| l);
        let sources: Vec<(&Segment, Option<&[u32]>)> = match level {
            Some(l) => vec![(&l.segment, Some(&l.weights[..]))],
            None => self.segments.iter().map(|s| (s, None)).collect(),
        };
        let tasks: Vec<(&Segment, Option<&[u32]>, usize)> = sources
            .into_iter()
            .flat_map(|(s, w)| {
                (0..s.rows)
                    .step_by(TASK_ROWS)
                    .map(move |start| (s, w, start))
            })
            .collect();
        let acc = tasks
            .par_iter()
            .fold(
                || vec![0u64; lanes * cells],
                |mut acc, &(segment, weights, start)| {
                    let end = (start + TASK_ROWS).min(segment.rows);
                    let rows = Rows {
                        segment,
                        weights,
                        start,
                        end,
                    };
                    count_rows(rows, &luts, cells, lanes, may_exclude, &mut acc);
                    acc
                },
            )
            .reduce_with(|mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            })
            .unwrap_or_else(|| vec![0u64; lanes * cells]);
        let mut counts = vec![0u64; cells];
        for lane in acc.chunks_exact(cells) {
            counts.iter_mut().zip(lane).for_each(|(c, x)| *c += x);
        }
        Ok(counts)
    }

    fn lut(&self, dim: Dim, table: &[u32]) -> Lut {
        // Codes never exceed the domain, so the padding is never read.
        if narrow(&self.domains, dim) {
            let mut lut = Box::new([EXCLUDED; 256]);
            lut[..table.len()].copy_from_slice(table);
            Lut::U8(lut)
        } else {
            let mut lut: Box<[u32; 65536]> = vec![EXCLUDED; 65536]
                .into_boxed_slice()
                .try_into()
                .expect("65536 entries");
            lut[..table.len()].copy_from_slice(table);
            Lut::U16(lut)
        }
    }
}

/// A range of rows of one segment.
#[derive(Clone, Copy)]
struct Rows<'a> {
    segment: &'a Segment,
    /// Voters per row for a pre-aggregated level; `None`: one each.
    weights: Option<&'a [u32]>,
    start: usize,
    end: usize,
}

/// Counts `rows` into `acc`: `lanes` copies of `cells` counters. Rows whose
/// index is `cells` or more (a filter dropped them) are not counted.
fn count_rows(
    rows: Rows<'_>,
    luts: &[Term],
    cells: usize,
    lanes: usize,
    may_exclude: bool,
    acc: &mut [u64],
) {
    let mut index = [0u32; BLOCK];
    let mut kept = [0u32; BLOCK];
    let mut at = rows.start;
    while at < rows.end {
        let n = (rows.end - at).min(BLOCK);
        let index = &mut index[..n];
        index.fill(0);
        let col = |dim: &Dim| {
            rows.segment.cols[dim.index()]
                .as_ref()
                .expect("planned dimensions are loaded")
        };
        for term in luts {
            match term {
                Term::One(dim, lut) => match (col(dim), lut) {
                    (Codes::U8(codes), Lut::U8(lut)) => {
                        for (i, &c) in index.iter_mut().zip(&codes[at..at + n]) {
                            *i += lut[c as usize];
                        }
                    }
                    (Codes::U16(codes), Lut::U16(lut)) => {
                        for (i, &c) in index.iter_mut().zip(&codes[at..at + n]) {
                            *i += lut[c as usize];
                        }
                    }
                    _ => unreachable!("code width and table width both follow the domain size"),
                },
                Term::Pair(a, b, lut) => match (col(a), col(b)) {
                    (Codes::U8(a), Codes::U8(b)) => {
                        let mask = (1usize << PAIR_SHIFT) - 1;
                        for ((i, &x), &y) in
                            index.iter_mut().zip(&a[at..at + n]).zip(&b[at..at + n])
                        {
                            *i += lut[((x as usize) << PAIR_SHIFT) | (y as usize & mask)];
                        }
                    }
                    _ => unreachable!("only u8 dimensions are paired"),
                },
                Term::Nested(p, c, width, table) => {
                    add_nested(index, col(p), col(c), at, *width, table);
                }
            }
        }
        if let Some(weights) = rows.weights {
            // A level has few rows: a plain loop is enough.
            for (&i, &w) in index.iter().zip(&weights[at..at + n]) {
                if (i as usize) < cells {
                    acc[i as usize] += u64::from(w);
                }
            }
            at += n;
            continue;
        }
        at += n;
        if cells == 1 {
            // A single cell: count the rows that pass, without a memory chain.
            acc[0] += index.iter().filter(|&&i| i == 0).count() as u64;
            continue;
        }
        // Keep only rows that pass the filters (branch-free compaction).
        let passing: &[u32] = if may_exclude {
            let mut k = 0;
            for &i in index.iter() {
                kept[k] = i;
                k += usize::from((i as usize) < cells);
            }
            &kept[..k]
        } else {
            index
        };
        if lanes == 1 {
            for &i in passing {
                acc[i as usize] += 1;
            }
        } else {
            let (a0, rest) = acc.split_at_mut(cells);
            let (a1, rest) = rest.split_at_mut(cells);
            let (a2, a3) = rest.split_at_mut(cells);
            let mut quads = passing.chunks_exact(4);
            for q in &mut quads {
                a0[q[0] as usize] += 1;
                a1[q[1] as usize] += 1;
                a2[q[2] as usize] += 1;
                a3[q[3] as usize] += 1;
            }
            for &i in quads.remainder() {
                a0[i as usize] += 1;
            }
        }
    }
}

/// Adds the nested pair table's entry of each row's (county, child) codes
/// to its index: `index[i] += table[county[i] × width + child[i]]`.
fn add_nested(
    index: &mut [u32],
    county: &Codes,
    child: &Codes,
    at: usize,
    width: usize,
    table: &[u32],
) {
    fn add<A: Copy + Into<usize>, B: Copy + Into<usize>>(
        index: &mut [u32],
        a: &[A],
        b: &[B],
        width: usize,
        table: &[u32],
    ) {
        for ((i, &x), &y) in index.iter_mut().zip(a).zip(b) {
            *i += table[x.into() * width + y.into()];
        }
    }
    let n = index.len();
    match (county, child) {
        (Codes::U8(a), Codes::U8(b)) => add(index, &a[at..at + n], &b[at..at + n], width, table),
        (Codes::U16(a), Codes::U8(b)) => add(index, &a[at..at + n], &b[at..at + n], width, table),
        (Codes::U8(a), Codes::U16(b)) => add(index, &a[at..at + n], &b[at..at + n], width, table),
        (Codes::U16(a), Codes::U16(b)) => add(index, &a[at..at + n], &b[at..at + n], width, table),
    }
}
