//! Exact counts by groups with filters: one pass over the codes.
//!
//! Every dimension the query touches gets a lookup table from code to its
//! contribution to the cell index: `position × stride` for a grouped
//! dimension (mixed radix, row-major in group-by order), 0 for a filtered
//! dimension's kept codes, and [`EXCLUDED`] for a code the filter drops. A
//! row's cell is the sum of its contributions; any excluded code pushes the
//! sum past the last cell, into a discarded slot. The loop runs a block of
//! rows one column at a time, in parallel chunks, each summing into its own
//! vector of counts.

use rayon::prelude::*;

use crate::dataset::{Codes, Segment, narrow};
use crate::domains::MAX_CELLS;
use crate::{CountQuery, Dataset, Dim, EngineError};

/// The contribution of a code a filter drops: larger than any real index,
/// and small enough that nine of them still fit in a `u32`.
const EXCLUDED: u32 = 1 << 27;
const _: () = assert!(MAX_CELLS <= EXCLUDED as u64 && 9 * (EXCLUDED as u64) < u32::MAX as u64);

/// Rows per parallel task.
const TASK_ROWS: usize = 1 << 16;
/// Rows per block in the inner loop (the index buffer lives on the stack).
const BLOCK: usize = 2048;

/// A dimension's lookup table, sized so that any stored code is in bounds.
enum Lut {
    U8(Box<[u32; 256]>),
    U16(Box<[u32; 65536]>),
}

impl Dataset {
    /// Exact counts for every cell of the cross product of `group_by`'s
    /// value lists (each narrowed by the filter on the same dimension, in
    /// domain order), row-major in `group_by` order; an empty `group_by`
    /// gives one cell. The keys are [`crate::Domains::cells`] of the same
    /// query.
    ///
    /// These are exact counts: they must go to the privacy crate and nowhere
    /// else.
    pub fn count(&self, query: &CountQuery) -> Result<Vec<u64>, EngineError> {
        let plan = self.domains.plan(query)?;
        let cells = plan.cells;
        let mut luts: Vec<(Dim, Lut)> = Vec::new();
        let mut stride = 1u32;
        for (dim, kept) in plan.group.iter().rev() {
            let mut table = vec![EXCLUDED; self.domains.domain_len(*dim)];
            for (position, &code) in kept.iter().enumerate() {
                table[code as usize] = position as u32 * stride;
            }
            stride *= kept.len() as u32;
            luts.push((*dim, self.lut(*dim, &table)));
        }
        for (dim, mask) in &plan.filters {
            let table: Vec<u32> = mask
                .iter()
                .map(|&keep| if keep { 0 } else { EXCLUDED })
                .collect();
            luts.push((*dim, self.lut(*dim, &table)));
        }
        if luts.is_empty() {
            return Ok(vec![self.rows() as u64]);
        }

        let tasks: Vec<(&Segment, usize)> = self
            .segments
            .iter()
            .flat_map(|s| (0..s.rows).step_by(TASK_ROWS).map(move |start| (s, start)))
            .collect();
        let mut counts = tasks
            .par_iter()
            .fold(
                || vec![0u64; cells + 1],
                |mut acc, &(segment, start)| {
                    let end = (start + TASK_ROWS).min(segment.rows);
                    count_rows(segment, start, end, &luts, &mut acc);
                    acc
                },
            )
            .reduce_with(|mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            })
            .unwrap_or_else(|| vec![0u64; cells + 1]);
        counts.truncate(cells);
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

/// Counts rows `start..end` of `segment` into `acc` (`cells + 1` slots, the
/// last one for excluded rows).
fn count_rows(segment: &Segment, start: usize, end: usize, luts: &[(Dim, Lut)], acc: &mut [u64]) {
    let last = acc.len() - 1;
    let mut index = [0u32; BLOCK];
    let mut at = start;
    while at < end {
        let n = (end - at).min(BLOCK);
        let index = &mut index[..n];
        index.fill(0);
        for (dim, lut) in luts {
            let codes = segment.cols[dim.index()]
                .as_ref()
                .expect("planned dimensions are loaded");
            match (codes, lut) {
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
            }
        }
        for &i in index.iter() {
            acc[(i as usize).min(last)] += 1;
        }
        at += n;
    }
}
