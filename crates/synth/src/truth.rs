//! The ground truth: what a correct ingest must produce, counted from what
//! the generator chose.

use super::*;

/// A fast hasher for the packed truth keys (hashbrown needs good high bits).
#[derive(Default)]
pub(crate) struct MixHasher(pub(crate) u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = fmix(self.0 ^ u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = fmix(self.0 ^ v);
    }
}

#[inline]
pub(crate) fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// A truth tuple packed in 40 bytes: county and birth year; registration
/// year; then one byte per coded dimension slot (code indices per
/// `layout.coded` position, four to a word); then the category of each
/// configured election, 3 bits each, ten to a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key(pub(crate) [u32; 10]);

impl std::hash::Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let [a, b, c, d, e, f, g, h, i, j] = self.0;
        let low = fmix(u64::from(a) | u64::from(b) << 32) ^ (u64::from(c) | u64::from(d) << 32);
        let mut k = fmix(low) ^ (u64::from(e) | u64::from(f) << 32);
        if g | h | i | j != 0 {
            k = fmix(k ^ (u64::from(g) | u64::from(h) << 32)) ^ (u64::from(i) | u64::from(j) << 32);
        }
        state.write_u64(k);
    }
}

impl Key {
    pub(crate) fn new(county: u16, birth: i16, reg: i16, codes: [u8; MAX_CODED]) -> Key {
        let mut words = [0u32; 10];
        words[0] = u32::from(county) | u32::from(birth as u16) << 16;
        words[1] = u32::from(reg as u16);
        for (d, &c) in codes.iter().enumerate() {
            words[2 + d / 4] |= u32::from(c) << (8 * (d % 4));
        }
        Key(words)
    }
    pub(crate) fn county(self) -> usize {
        (self.0[0] & 0xFFFF) as usize
    }
    pub(crate) fn birth(self) -> Option<i16> {
        let y = (self.0[0] >> 16) as u16 as i16;
        (y != NULL_YEAR).then_some(y)
    }
    pub(crate) fn reg(self) -> Option<i16> {
        let y = self.0[1] as u16 as i16;
        (y != NULL_YEAR).then_some(y)
    }
    pub(crate) fn code(self, d: usize) -> usize {
        ((self.0[2 + d / 4] >> (8 * (d % 4))) & 0xFF) as usize
    }
    /// Sets the category of election `e`.
    pub(crate) fn set_vote(&mut self, e: usize, cat: u8) {
        self.0[6 + e / 10] |= u32::from(cat & 7) << (3 * (e % 10));
    }
    pub(crate) fn vote(self, e: usize) -> u8 {
        ((self.0[6 + e / 10] >> (3 * (e % 10))) & 7) as u8
    }
}

pub(crate) type Counts = HashMap<Key, u32, BuildHasherDefault<MixHasher>>;

impl Gen<'_> {
    /// How ingestion ranks a registration date among duplicates: the date as
    /// it reads it, or oldest when the date is not usable.
    pub(crate) fn rank(&self, reg: DateVal) -> i32 {
        match (&self.reg, reg) {
            (Some(r), DateVal::Date(y, m, d))
                if (r.min_year..=self.opts.current_year).contains(&y) =>
            {
                let (m, d) = r.effective(m, d);
                i32::from(y) * 10_000 + i32::from(m) * 100 + i32::from(d)
            }
            _ => i32::MIN,
        }
    }

    /// Counts the unknown election cells of an accepted line that is not
    /// booked (a duplicate that loses), for in-file history only.
    pub(crate) fn count_dropped_cells(&mut self, v: &Voter) {
        if let Some(h) = self.hist.as_mut().filter(|h| h.file.is_none()) {
            let unknown = (0..h.elections.len())
                .filter(|&e| v.hist[e] != NO_LINE && h.spell[usize::from(v.hist[e])].unknown)
                .count();
            h.unknown_methods += unknown as u64;
        }
    }

    /// Adds (`add`) or removes a written voter to or from the truth.
    pub(crate) fn book(&mut self, v: &Voter, add: bool) {
        let cy = self.opts.current_year;
        let birth = self
            .birth
            .as_ref()
            .and_then(|b| b.year(v.birth, cy))
            .unwrap_or(NULL_YEAR);
        let reg = self
            .reg
            .as_ref()
            .and_then(|r| r.year(v.reg, cy))
            .unwrap_or(NULL_YEAR);
        let mut codes = [0u8; MAX_CODED];
        for (d, slot) in codes.iter_mut().enumerate().take(self.dim_codes.len()) {
            let cand = usize::from(v.cands[self.dim_source[d]]);
            let (code, unknown) = self.dim_codes[d][cand];
            *slot = code;
            if unknown {
                let n = &mut self.unknown[d][cand];
                *n = if add { *n + 1 } else { *n - 1 };
            }
        }
        let mut key = Key::new(v.county, birth, reg, codes);
        if let Some(h) = &mut self.hist {
            let rank = match (&self.reg, v.reg) {
                (Some(r), DateVal::Date(y, m, d)) if (r.min_year..=cy).contains(&y) => {
                    let (m, d) = r.effective(m, d);
                    i32::from(y) * 10_000 + i32::from(m) * 100 + i32::from(d)
                }
                _ => i32::MIN,
            };
            for e in 0..h.elections.len() {
                key.set_vote(e, h.category(v.hist[e], e, rank));
                let s = v.hist[e];
                // In-file history counts every accepted line's unknown cells,
                // kept or dropped as a duplicate (as ingest does, before
                // de-duplication); a history file, the kept voters' only.
                if s != NO_LINE && h.spell[usize::from(s)].unknown {
                    if add {
                        h.unknown_methods += 1;
                    } else if h.file.is_some() {
                        h.unknown_methods -= 1;
                    }
                }
            }
        }
        let n = self.counts.entry(key).or_default();
        *n = if add { *n + 1 } else { *n - 1 };
    }

    pub(crate) fn count_date(&mut self, birth: bool, v: DateVal, cy: i16) {
        if !self.opts.quirks {
            return;
        }
        let q = match (birth, v) {
            (_, DateVal::Date(..)) => return,
            (true, DateVal::Blank) => Q::BirthBlank,
            (true, DateVal::Null(_)) => Q::BirthNull,
            (true, DateVal::Garbage) => Q::BirthGarbage,
            (true, DateVal::OutOfRange(_)) => Q::BirthOutOfRange,
            (false, DateVal::Blank) => Q::RegBlank,
            (false, DateVal::Null(_)) => Q::RegNull,
            (false, DateVal::Garbage) => Q::RegGarbage,
            (false, DateVal::OutOfRange(y)) => {
                debug_assert!(y > cy);
                Q::RegOutOfRange
            }
        };
        self.stats.add(q);
    }

    pub(crate) fn truth(
        &mut self,
        rejected_lines: Vec<u64>,
        missing_id_lines: Vec<u64>,
        duplicates_dropped: u64,
    ) -> GroundTruth {
        let layout = self.layout;
        // Sort packed keys by numbers that order as `TruthRow` does (county
        // name, birth year, gender, race, ethnicity, party, status,
        // registration year, district; `None` first), then build the rows in
        // that order: no string comparisons, no moving of built rows.
        let rank_of = |names: Vec<&str>| -> Vec<u128> {
            let mut order: Vec<usize> = (0..names.len()).collect();
            order.sort_by_key(|&i| names[i]);
            let mut rank = vec![0; names.len()];
            for (r, i) in order.into_iter().enumerate() {
                rank[i] = r as u128;
            }
            rank
        };
        let county_rank = rank_of(
            layout
                .county
                .counties
                .iter()
                .map(|c| c.name.as_str())
                .collect(),
        );
        let code_rank: Vec<Vec<u128>> = layout
            .coded
            .iter()
            .map(|c| rank_of(c.code_strs().collect()))
            .collect();
        // Position of each standard dimension in the sort key, after county
        // (16 bits) and birth year (16 bits): 8 bits per code, 16 for the
        // year. A layout's own dimensions sort after them, in a second key.
        let shift = |name: &str| -> Option<u32> {
            Some(match name {
                "gender" => 80,
                "race" => 72,
                "ethnicity" => 64,
                "party" => 56,
                "status" => 48,
                "congressional_district" => 24,
                _ => return None,
            })
        };
        let own: Vec<usize> = (0..layout.coded.len())
            .filter(|&d| shift(&layout.coded[d].name).is_none())
            .collect();
        // `None` (NULL_YEAR, i16::MIN) becomes 0, below every year.
        let year_bits = |y: Option<i16>| u128::from((y.unwrap_or(NULL_YEAR) as u16) ^ 0x8000);
        let n_elections = self.hist.as_ref().map_or(0, |h| h.elections.len());
        let history = self.hist.as_ref().map(|h| h.truth(&self.counts, layout));
        let mut keys: Vec<((u128, u128, u128), Key, u32)> = self
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(&k, &n)| {
                let mut sort = county_rank[k.county()] << 112 | year_bits(k.birth()) << 96;
                sort |= year_bits(k.reg()) << 32;
                let mut own_sort = 0u128;
                for (d, c) in layout.coded.iter().enumerate() {
                    match shift(&c.name) {
                        Some(at) => sort |= code_rank[d][k.code(d)] << at,
                        None => own_sort = own_sort << 8 | code_rank[d][k.code(d)],
                    }
                }
                let votes = (0..n_elections).fold(0u128, |acc, e| acc << 3 | u128::from(k.vote(e)));
                ((sort, own_sort, votes), k, n)
            })
            .collect();
        self.counts = Counts::default();
        keys.sort_unstable_by_key(|(sort, ..)| *sort);
        let pos = |name: &str| layout.coded.iter().position(|c| c.name == name);
        let code = |d: Option<usize>, key: Key| -> Option<String> {
            d.map(|d| layout.coded[d].codes[key.code(d)].code.clone())
        };
        let dims = layout::STANDARD_CODED.map(pos);
        let rows_written = keys.iter().map(|(.., n)| u64::from(*n)).sum();
        if !self.opts.with_rows {
            keys = Vec::new();
        }
        let rows: Vec<TruthRow> = keys
            .into_iter()
            .map(|(_, k, n)| TruthRow {
                county: layout.county.counties[k.county()].name.clone(),
                birth_year: k.birth(),
                gender: code(dims[0], k),
                race: code(dims[1], k),
                ethnicity: code(dims[2], k),
                party: code(dims[3], k),
                status: code(dims[4], k),
                registration_year: k.reg(),
                congressional_district: code(dims[5], k),
                own: own
                    .iter()
                    .map(|&d| (layout.coded[d].name.clone(), code(Some(d), k)))
                    .collect(),
                votes: (0..n_elections).map(|e| k.vote(e)).collect(),
                count: u64::from(n),
            })
            .collect();
        let mut unknown_codes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (d, per_cand) in self.unknown.iter().enumerate() {
            let source = &self.sources[self.dim_source[d]];
            for (cand, &n) in per_cand.iter().enumerate() {
                if n > 0 {
                    unknown_codes
                        .entry(layout.coded[d].name.clone())
                        .or_default()
                        .insert(
                            String::from_utf8_lossy(&source.values[cand]).into_owned(),
                            n,
                        );
                }
            }
        }
        GroundTruth {
            layout: layout.name.clone(),
            rows_read: self.opts.rows,
            rows_rejected: rejected_lines.len() as u64,
            rejected_lines,
            missing_id_lines,
            duplicates_dropped,
            rows_written,
            unknown_codes,
            rows,
            identifiers: std::mem::take(&mut self.identifiers),
            history,
        }
    }
}
