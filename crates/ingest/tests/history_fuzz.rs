//! History fuzz: generated voting-history lines through the real ingest
//! (`ingest::ingest` with `IngestOptions::history_files`, the call behind
//! `rollcall ingest --history`): 10,000 lines in each separate-file format
//! (NC `ncvhis`: tab, double-quoted, with a header, split over two files;
//! FL: tab, no quoting, no header) and 10,000 OH voter lines whose in-file
//! election cells are fuzzed. Lines come from `testkit::Lcg` (seeded, so a
//! failure reproduces), and each is broken on purpose or not, so the test
//! knows what every line must become: broken quotes, wrong field counts,
//! blank ids, bad and out-of-range dates, huge fields (some larger than the
//! reader's 8 MiB chunks), non-UTF-8 and NUL bytes, CR/LF mixes, embedded
//! delimiters and newlines, unknown and oddly spelled methods, elections
//! the config does not list, ids of no voter, and duplicates.
//!
//! Checked: nothing panics and the ingest succeeds; `lines_read` is every
//! physical line, and equals accepted + rejected, where accepted = other
//! elections + unmatched + duplicates + the (voter, election) cells joined;
//! every `history_rejects.tsv` row is exactly file, line, key and reason
//! (no byte of the line), names a line within its file that the test
//! broke, for the reason it broke it; the manifest's counts and every
//! `vote_<id>` tally in the Parquet equal the test's own model; and the
//! vote columns hold only the layout's public category codes.
//!
//! `HISTORY_FUZZ_LINES` (default 10,000) and `HISTORY_FUZZ_SEED` change the
//! run: `HISTORY_FUZZ_LINES=100000 cargo nextest run -p ingest --test
//! history_fuzz`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use ingest::split::{self, split_line};
use ingest::{IngestOptions, Manifest};
use layout::{CATEGORIES, DID_NOT_VOTE, Election, History, HistorySource, Layout, Quoting};
use testkit::Lcg;

fn lines_wanted() -> usize {
    testkit::env_usize("HISTORY_FUZZ_LINES", 10_000)
}

fn seed() -> u64 {
    testkit::env_usize("HISTORY_FUZZ_SEED", 14) as u64
}

/// What one physical line of a history file must become.
#[derive(Debug, Clone)]
enum Expect {
    /// Accepted: a line of configured election `election` (`None`: of
    /// another) for id `id` (trimmed), whose method reads as `category`,
    /// `known` when the layout's table has it.
    Accept {
        id: Vec<u8>,
        election: Option<usize>,
        category: u8,
        known: bool,
    },
    /// Rejected for this reason.
    Reject(&'static str),
    /// Cut in two by a newline: each piece is rejected, or (one that still
    /// parses) an unmatched or other election's line, since its id is
    /// nobody's. Never a voter's cell.
    Either,
}

/// Spaces, tabs and CR, as a method is trimmed.
fn trim_method(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

/// The category a raw method value must give, by the layout's table, and
/// whether the table has it (blank counts as known).
fn expected_method(h: &History, raw: &[u8]) -> (u8, bool) {
    let t = trim_method(raw);
    if t.is_empty() {
        return (h.blank, true);
    }
    match std::str::from_utf8(t)
        .ok()
        .and_then(|k| h.methods.get(&k.to_ascii_uppercase()))
    {
        Some(&c) => (c, true),
        None => (h.fallback, false),
    }
}

/// `MM/DD/YYYY` of a `YYYYMMDD` key.
fn us_date(key: i32) -> String {
    format!(
        "{:02}/{:02}/{:04}",
        key / 100 % 100,
        key % 100,
        key / 10_000
    )
}

fn elections() -> Vec<Election> {
    synth::default_elections()
}

/// The columns of a separate history file and what the layout reads from
/// them.
struct Format {
    columns: usize,
    quoted: bool,
    header: Option<Vec<u8>>,
    id: usize,
    date: usize,
    kind: Option<usize>,
    method: usize,
    /// Columns no rule reads: filler, huge fields and odd bytes go there.
    ignored: Vec<usize>,
}

impl Format {
    fn of(layout: &Layout) -> Format {
        let Some(HistorySource::File(f)) = layout.history.as_ref().map(|h| &h.source) else {
            panic!("{}: not a separate history file", layout.name);
        };
        let pos = |c: &str| {
            f.columns
                .iter()
                .position(|n| n.eq_ignore_ascii_case(c))
                .unwrap_or_else(|| panic!("{c} not in history.columns"))
        };
        let (id, date, method) = (pos(&f.voter_id), pos(&f.date_column), pos(&f.method_column));
        let kind = f.type_column.as_deref().map(pos);
        let quoted = f.quoting == Quoting::Double;
        let header = f.header.then(|| {
            let names: Vec<String> = f.columns.iter().map(|c| format!("\"{c}\"")).collect();
            names.join("\t").into_bytes()
        });
        let read = [Some(id), Some(date), kind, Some(method)];
        Format {
            columns: f.columns.len(),
            quoted,
            header,
            id,
            date,
            kind,
            method,
            ignored: (0..f.columns.len())
                .filter(|c| !read.contains(&Some(*c)))
                .collect(),
        }
    }

    /// A line of `fields`, quoted when the format quotes, with field
    /// `open`'s closing quote left off.
    fn render(&self, fields: &[Vec<u8>], open: Option<usize>) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            if self.quoted {
                out.push(b'"');
            }
            out.extend_from_slice(f);
            if self.quoted && open != Some(i) {
                out.push(b'"');
            }
        }
        out
    }
}

/// Draws history lines for one layout.
struct Gen<'a> {
    lcg: Lcg,
    fmt: &'a Format,
    history: &'a History,
    elections: &'a [Election],
    /// Raw election type per configured election (typed formats).
    types: Vec<String>,
    voters: &'a [Vec<u8>],
    known: Vec<String>,
    /// Configured-election lines of voters so far: what duplicates copy.
    earlier: Vec<(Vec<u8>, usize)>,
    /// The last physical line, to repeat verbatim.
    last: Option<(Vec<u8>, Expect)>,
}

/// Dates that are dates but of no configured election, some far out of
/// any plausible range (they are not rejects: only an election matters).
const OTHER_DATES: [&str; 7] = [
    "11/07/2017",
    "03/15/2016",
    "05/08/2018",
    "01/01/0000",
    "12/31/9999",
    "10/14/1066",
    "02/29/2000",
];

/// Values that are no date of the format: `bad_date`.
const BAD_DATES: [&[u8]; 16] = [
    b"13/05/2024",
    b"02/30/2024",
    b"02/29/2023",
    b"00/10/2020",
    b"11/32/2020",
    b"",
    b"  ",
    b"11-05-2024",
    b"XX/XX/XXXX",
    b"##/##/####",
    b"11/05/24",
    b"2024-11-05",
    b"11/05/20245",
    b"11/05/2024x",
    b"\xff1/05/2024",
    b"11/05/2024\r",
];

impl Gen<'_> {
    fn below(&mut self, n: u64) -> u64 {
        self.lcg.next() % n
    }

    /// An id that is no voter's: most unique to the line, one shared by many.
    fn fresh_id(&mut self, n: usize) -> Vec<u8> {
        match self.below(5) {
            0 => format!("zq{n}").into_bytes(),
            1 => [b"ZQ\xff".as_slice(), n.to_string().as_bytes()].concat(),
            2 => format!("ZQ{}{n}", "Q".repeat(200)).into_bytes(),
            3 => b"ZQ-SHARED-ID".to_vec(),
            _ => format!("ZQ{n}").into_bytes(),
        }
    }

    fn known_method(&mut self) -> Vec<u8> {
        if self.below(20) == 0 {
            return Vec::new(); // blank: the layout's `blank`
        }
        let m = self.lcg.pick(&self.known).clone();
        m.into_bytes()
    }

    fn unknown_method(&mut self) -> Vec<u8> {
        let quoted = self.fmt.quoted;
        let all: [&[u8]; 9] = [
            b"MAGIC",
            b"Q",
            b"YY",
            b"0",
            b"\xff",
            b"\xffY",
            b"Y\0",
            b"ABSENTEE BY MAIL X",
            b"ABSENTEE\tBY MAIL",
        ];
        // A tab inside an unquoted field is a delimiter, not a method.
        let n = if quoted { all.len() } else { all.len() - 1 };
        match self.below(n as u64 + 1) as usize {
            i if i < n => all[i].to_vec(),
            _ => vec![b'M'; 60],
        }
    }

    /// Sets the date (and type) of configured election `e`.
    fn set_election(&self, fields: &mut [Vec<u8>], e: usize) {
        fields[self.fmt.date] = us_date(self.elections[e].date).into_bytes();
        if let Some(k) = self.fmt.kind {
            fields[k] = self.types[e].clone().into_bytes();
        }
    }

    /// The physical lines of data line `n`, each with its terminator.
    fn lines(&mut self, n: usize) -> Vec<(Vec<u8>, Expect)> {
        if let Some(last) = self.last.clone()
            && self.below(33) == 0
        {
            return vec![last]; // the same line again
        }
        let fmt = self.fmt;
        let mut fields: Vec<Vec<u8>> = (0..fmt.columns)
            .map(|c| format!("MK{n}Z{c}").into_bytes())
            .collect();
        let mut election = Some(self.below(self.elections.len() as u64) as usize);
        self.set_election(&mut fields, election.expect("set"));
        fields[fmt.id] = self.lcg.pick(self.voters).clone();
        fields[fmt.method] = self.known_method();
        let mut open = None;
        let mut ending: &[u8] = if self.below(5) == 0 { b"\r\n" } else { b"\n" };
        let mut expect = None;
        let mut cut = false;
        let ignored = *self.lcg.pick(&fmt.ignored);
        // A few huge lines, spread over the file, so that lines cross the
        // reader's 8 MiB chunks and its batches of chunks.
        let kind = if n % 997 == 500 {
            1000
        } else {
            self.below(100)
        };
        match kind {
            1000 => fields[ignored] = vec![b'H'; 3 << 20],
            0..=37 => {
                if self.below(10) == 0 {
                    // Padding around the id is trimmed.
                    fields[fmt.id] = [b"  ", fields[fmt.id].as_slice(), b" "].concat();
                }
            }
            38..=43 => {
                election = None;
                if let Some(k) = fmt.kind
                    && self.below(2) == 0
                {
                    // A configured date, but another type of election.
                    let wrong = ["RUN", "OTH", "PPP", "XYZ", "", "GENERAL"];
                    let configured = self.types.clone();
                    let pick = wrong
                        .iter()
                        .copied()
                        .filter(|w| !configured.contains(&(*w).to_owned()))
                        .nth(self.below(5) as usize)
                        .unwrap_or("XYZ");
                    fields[k] = pick.as_bytes().to_vec();
                } else {
                    fields[fmt.date] = self.lcg.pick(&OTHER_DATES).as_bytes().to_vec();
                }
            }
            44..=49 => fields[fmt.id] = self.fresh_id(n),
            50..=57 => {
                if !self.earlier.is_empty() {
                    let (id, e) = self.lcg.pick(&self.earlier).clone();
                    fields[fmt.id] = id;
                    election = Some(e);
                    self.set_election(&mut fields, e);
                    if self.below(4) == 0 {
                        fields[fmt.method] = self.unknown_method();
                    }
                }
            }
            58..=61 => fields[fmt.method] = self.unknown_method(),
            62..=63 => {
                // A known code in another case, padded.
                let m = self.lcg.pick(&self.known).to_ascii_lowercase();
                fields[fmt.method] = format!(" {m} ").into_bytes();
            }
            64..=65 => {
                let size = *self.lcg.pick(&[1_000usize, 10_000, 100_000, 400_000]);
                fields[ignored] = vec![b'H'; size];
            }
            66..=68 => {
                let odd: [&[u8]; 5] = [b"\xff\xfe\x80", b"\xc3(", b"A\0B", b"\xe2\x28\xa1", b"\0"];
                fields[ignored] = self.lcg.pick(&odd).to_vec();
            }
            69..=71 => {
                fields[ignored] = b"A\tB".to_vec();
                if !fmt.quoted {
                    expect = Some(Expect::Reject("field_count"));
                }
            }
            72..=74 => {
                if fmt.quoted {
                    match self.below(4) {
                        0 => {
                            open = Some(fmt.columns - 1);
                            expect = Some(Expect::Reject("broken_quoting"));
                        }
                        1 => {
                            // It runs on to the next field's closing quote:
                            // one field fewer.
                            open = Some(self.below(fmt.columns as u64 - 1) as usize);
                            expect = Some(Expect::Reject("field_count"));
                        }
                        2 => fields[ignored] = b"AB\"CD".to_vec(),
                        _ => fields[ignored] = b"SAID \"\"HI\"\"".to_vec(),
                    }
                } else {
                    // Quotes are ordinary bytes.
                    fields[ignored] = b"\"AB".to_vec();
                }
            }
            75..=78 => {
                if self.below(2) == 0 {
                    let at = self.below(fmt.columns as u64) as usize;
                    fields.remove(at);
                } else {
                    let at = self.below(fmt.columns as u64 + 1) as usize;
                    fields.insert(at, b"EXTRA".to_vec());
                }
                expect = Some(Expect::Reject("field_count"));
            }
            79..=81 => {
                fields[fmt.id] = if fmt.quoted && self.below(2) == 0 {
                    b" \t ".to_vec()
                } else {
                    self.lcg.pick(&[&b""[..], b"   "]).to_vec()
                };
                expect = Some(Expect::Reject("missing_voter_id"));
            }
            82..=85 => {
                fields[fmt.date] = self.lcg.pick(&BAD_DATES).to_vec();
                expect = Some(Expect::Reject("bad_date"));
            }
            86..=87 => {
                // A configured date with spaces around it: trimmed.
                let d = us_date(self.elections[election.expect("set")].date);
                fields[fmt.date] = format!(" {d} ").into_bytes();
            }
            88 => {
                fields = Vec::new();
                expect = Some(Expect::Reject("field_count"));
            }
            89..=90 => {
                if self.below(2) == 0 {
                    fields[ignored] = b"A\rB".to_vec();
                } else {
                    // CR CR LF: one CR is the line end's, the other stays.
                    ending = b"\r\r\n";
                    if fmt.quoted {
                        expect = Some(Expect::Reject("broken_quoting"));
                    } else if fmt.method == fmt.columns - 1 {
                        fields[fmt.method].push(b'\r'); // trimmed from a method
                    } else {
                        panic!("a format whose last column is not the method");
                    }
                }
            }
            91..=92 => {
                fields[fmt.id] = self.fresh_id(n);
                cut = true;
            }
            _ => {
                if let (Some(k), Some(e)) = (fmt.kind, election) {
                    let t = self.types[e].to_ascii_lowercase();
                    fields[k] = format!(" {t} ").into_bytes();
                }
            }
        }
        let mut bytes = if fields.is_empty() {
            Vec::new()
        } else {
            fmt.render(&fields, open)
        };
        if cut {
            let at = 1 + self.below(bytes.len() as u64 - 1) as usize;
            let mut second = bytes.split_off(at);
            bytes.push(b'\n');
            second.extend_from_slice(ending);
            return vec![(bytes, Expect::Either), (second, Expect::Either)];
        }
        let expect = expect.unwrap_or_else(|| {
            let id = split::trim(&fields[fmt.id]).to_vec();
            let (category, known) = expected_method(self.history, &fields[fmt.method]);
            if let Some(e) = election
                && self.voters.contains(&id)
            {
                self.earlier.push((id.clone(), e));
            }
            Expect::Accept {
                id,
                election,
                category,
                known,
            }
        });
        bytes.extend_from_slice(ending);
        self.last = Some((bytes.clone(), expect.clone()));
        vec![(bytes, expect)]
    }
}

/// The voter file `synth` writes for `layout` (no quirks: every line a
/// voter), and its distinct voter ids.
fn voter_file(
    layout: &Layout,
    elections: Vec<Election>,
    rows: u64,
    path: &Path,
) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut out = Vec::new();
    synth::generate(
        layout,
        &synth::SynthOptions {
            rows,
            seed: seed(),
            quirks: false,
            current_year: 2026,
            with_rows: false,
            elections,
        },
        &mut out,
    )
    .unwrap();
    std::fs::write(path, &out).unwrap();
    let mut lines = out.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let names: Vec<String> = if layout.format.header {
        fields(
            lines.next().unwrap(),
            layout.format.delimiter,
            layout.format.quoting,
        )
        .iter()
        .map(|f| String::from_utf8_lossy(f).trim().to_owned())
        .collect()
    } else {
        layout.format.columns.clone()
    };
    let at = names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(&layout.voter_id))
        .unwrap();
    let ids: BTreeSet<Vec<u8>> = lines
        .map(|l| {
            let f = fields(l, layout.format.delimiter, layout.format.quoting);
            split::trim(&f[at]).to_vec()
        })
        .collect();
    (out, ids.into_iter().collect())
}

/// A line's fields, unquoted (a clean line: synth's).
fn fields(line: &[u8], delimiter: u8, quoting: Quoting) -> Vec<Vec<u8>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    split_line(line, delimiter, quoting, |_, span| {
        out.push(split::field(line, span, &mut scratch).to_vec());
    })
    .expect("a clean line");
    out
}

fn run_ingest(layout: &Layout, dir: &Path, voters: &Path, history: &[PathBuf]) -> Manifest {
    ingest::ingest(
        layout,
        &IngestOptions {
            dataset: "fuzz".into(),
            data_dir: dir.join("data"),
            files: vec![voters.to_path_buf()],
            current_year: Some(2026),
            threads: Some(2),
            // Broken lines are the point: neither refusal may stop the run.
            allow_unknown: true,
            allow_rejects: true,
            history_files: history.to_vec(),
        },
        &(),
    )
    .unwrap_or_else(|e| panic!("ingest of {} failed: {e}", layout.name))
}

/// Per election, how many stored cells hold each category name.
fn vote_tallies(layout: &Layout, dir: &Path) -> Vec<BTreeMap<String, u64>> {
    let (columns, rows) = testkit::read_dataset(&dir.join("data/fuzz"));
    let public: BTreeSet<&str> = layout
        .history
        .as_ref()
        .unwrap()
        .categories()
        .iter()
        .map(|&c| CATEGORIES[usize::from(c)].0)
        .collect();
    layout
        .elections
        .iter()
        .map(|e| {
            let at = columns
                .iter()
                .position(|c| *c == e.dimension)
                .unwrap_or_else(|| panic!("no column {}", e.dimension));
            let mut tally = BTreeMap::new();
            for row in &rows {
                let v = row[at].clone().expect("a vote cell is never null");
                assert!(
                    public.contains(v.as_str()),
                    "{}: {v:?} is not one of the layout's categories {public:?}",
                    e.dimension
                );
                *tally.entry(v).or_default() += 1;
            }
            tally
        })
        .collect()
}

/// A (voter id, configured election) pair: one stored cell.
type Cell = (Vec<u8>, usize);

/// The keys `history_rejects.tsv` may name for each reason.
fn reject_key(reason: &str) -> &'static str {
    match reason {
        "field_count" | "broken_quoting" => "history.columns",
        "missing_voter_id" => "history.voter_id",
        "bad_date" => "history.date_column",
        other => panic!("unknown history reject reason {other:?}"),
    }
}

/// Generates `lines` history lines for `layout` (into `files` files), ingests
/// them with a synthetic voter file and checks everything against the model.
fn fuzz_history_files(name: &str, files: usize) {
    let lines = lines_wanted();
    let layout = Layout::resolve(name)
        .unwrap()
        .with_elections(elections())
        .unwrap();
    let history = layout.history.clone().unwrap();
    let fmt = Format::of(&layout);
    let tmp = tempfile::tempdir().unwrap();
    let voters_path = tmp.path().join(format!("{name}_voters.txt"));
    // No elections for the voter file: its history is the fuzzed one.
    let (_, voters) = voter_file(&layout, Vec::new(), 2_000, &voters_path);
    let types: Vec<String> = layout
        .elections
        .iter()
        .map(|e| {
            history
                .types
                .iter()
                .find(|(_, k)| **k == e.kind)
                .map(|(raw, _)| raw.clone())
                .unwrap_or_default()
        })
        .collect();
    let mut known: Vec<String> = history.methods.keys().cloned().collect();
    known.sort();
    let mut g = Gen {
        lcg: Lcg(seed() * 7919 + name.len() as u64),
        fmt: &fmt,
        history: &history,
        elections: &layout.elections,
        types,
        voters: &voters,
        known,
        earlier: Vec::new(),
        last: None,
    };

    // Physical lines per file, each with what it must become.
    let mut per_file: Vec<Vec<(Vec<u8>, Expect)>> = vec![Vec::new(); files];
    for n in 0..lines {
        let f = n * files / lines;
        per_file[f].extend(g.lines(n));
    }
    let mut paths = Vec::new();
    for (f, physical) in per_file.iter_mut().enumerate() {
        // Some files end without a final newline.
        if g.below(2) == 0
            && let Some((last, _)) = physical.last_mut()
            && last.len() > 1
            && last.ends_with(b"\n")
        {
            last.pop();
        }
        let mut bytes = fmt.header.clone().map_or_else(Vec::new, |mut h| {
            h.extend_from_slice(if f == 0 { b"\n" } else { b"\r\n" });
            h
        });
        for (l, _) in physical.iter() {
            bytes.extend_from_slice(l);
        }
        let path = tmp.path().join(format!("{name}_history_{f}.txt"));
        std::fs::write(&path, &bytes).unwrap();
        paths.push(path);
    }

    let manifest = run_ingest(&layout, tmp.path(), &voters_path, &paths);
    assert_eq!(manifest.rows_rejected, 0, "the voter file is clean");
    assert_eq!(manifest.rows_written, voters.len() as u64, "one row per id");
    let h = manifest.history.clone().expect("a history section");
    assert_eq!(h.source, "file");
    assert_eq!(h.elections.len(), layout.elections.len());

    // The model: what the lines must add up to.
    let voter_set: HashSet<&[u8]> = voters.iter().map(Vec::as_slice).collect();
    let mut must_reject: BTreeMap<(usize, u64), &'static str> = BTreeMap::new();
    let mut either: BTreeSet<(usize, u64)> = BTreeSet::new();
    let (mut other, mut unmatched) = (0u64, 0u64);
    // (voter id, election) → (category, known) of each of its lines, in order.
    let mut groups: HashMap<Cell, Vec<(u8, bool)>> = HashMap::new();
    let mut group_order: Vec<Cell> = Vec::new();
    let first_line = if fmt.header.is_some() { 2 } else { 1 };
    for (f, physical) in per_file.iter().enumerate() {
        for (i, (_, expect)) in physical.iter().enumerate() {
            let at = (f, first_line + i as u64);
            match expect {
                Expect::Reject(why) => {
                    must_reject.insert(at, why);
                }
                Expect::Either => {
                    either.insert(at);
                }
                Expect::Accept { election: None, .. } => other += 1,
                Expect::Accept {
                    id,
                    election: Some(e),
                    category,
                    known,
                } => {
                    if !voter_set.contains(id.as_slice()) {
                        unmatched += 1;
                        continue;
                    }
                    let key = (id.clone(), *e);
                    let group = groups.entry(key.clone()).or_default();
                    if group.is_empty() {
                        group_order.push(key);
                    }
                    group.push((*category, *known));
                }
            }
        }
    }
    let mut duplicates = 0u64;
    let mut unknown_methods = 0u64;
    let mut ballots: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); layout.elections.len()];
    for key in &group_order {
        let group = &groups[key];
        duplicates += group.len() as u64 - 1;
        // The first line that records a ballot decides; if none does, the first.
        let &(category, known) = group
            .iter()
            .find(|(c, _)| *c != DID_NOT_VOTE)
            .unwrap_or(&group[0]);
        unknown_methods += u64::from(!known);
        if category != DID_NOT_VOTE {
            *ballots[key.1]
                .entry(CATEGORIES[usize::from(category)].0.to_owned())
                .or_default() += 1;
        }
    }
    let cells = group_order.len() as u64;

    // Every physical line is read, and is accepted or rejected.
    let physical: u64 = per_file.iter().map(|p| p.len() as u64).sum();
    assert_eq!(h.lines_read, physical, "every physical line is read");
    for (f, source) in h.sources.iter().enumerate() {
        assert_eq!(
            source.rows_read,
            per_file[f].len() as u64,
            "{}",
            source.file
        );
    }
    let rejected: u64 = h.rejects_by_reason.values().sum();
    assert_eq!(
        h.lines_read,
        rejected + h.other_elections + h.unmatched + h.duplicates + cells,
        "lines_read = rejected + accepted (other + unmatched + duplicates + joined cells)"
    );
    assert_eq!(h.duplicates, duplicates, "duplicates");
    assert_eq!(h.unknown_methods, unknown_methods, "unknown methods");
    // The pieces of cut lines are rejected, other or unmatched: nothing else.
    let extra_rejects = rejected
        .checked_sub(must_reject.len() as u64)
        .expect("every line broken on purpose is rejected");
    let extra_other = h.other_elections.checked_sub(other).expect("other");
    let extra_unmatched = h.unmatched.checked_sub(unmatched).expect("unmatched");
    assert_eq!(
        extra_rejects + extra_other + extra_unmatched,
        either.len() as u64,
        "the cut lines"
    );

    // history_rejects.tsv: file, line, key, reason and nothing else.
    let text = std::fs::read(tmp.path().join("data/fuzz/history_rejects.tsv")).unwrap();
    let text = String::from_utf8(text).expect("the rejects file is ASCII");
    for marker in ["MK", "ZQ", "HHHH", "EXTRA"] {
        assert!(!text.contains(marker), "line content ({marker}) in rejects");
    }
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut seen = BTreeSet::new();
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for row in text.lines().filter(|r| !r.starts_with("file\t")) {
        let cols: Vec<&str> = row.split('\t').collect();
        assert_eq!(cols.len(), 4, "rejects row {row:?}");
        let f = names
            .iter()
            .position(|n| n == cols[0])
            .unwrap_or_else(|| panic!("rejects row names no history file: {row:?}"));
        let line: u64 = cols[1].parse().expect("a line number");
        let last = first_line + per_file[f].len() as u64;
        assert!(
            (first_line..last).contains(&line),
            "reject line {line} outside {first_line}..{last}"
        );
        assert!(seen.insert((f, line)), "{row:?} listed twice");
        let reason = cols[3];
        assert_eq!(cols[2], reject_key(reason), "{row:?}");
        match must_reject.get(&(f, line)) {
            Some(want) => assert_eq!(reason, *want, "{}: line {line}", names[f]),
            None => assert!(
                either.contains(&(f, line)),
                "{}: line {line} rejected as {reason}, but the test did not break it",
                names[f]
            ),
        }
        *by_reason.entry(reason.to_owned()).or_default() += 1;
    }
    for at in must_reject.keys() {
        assert!(
            seen.contains(at),
            "{}: line {} not rejected",
            names[at.0],
            at.1
        );
    }
    assert_eq!(by_reason, h.rejects_by_reason, "rejects_by_reason");

    // The stored votes: public codes only, and every ballot as the model has it.
    let tallies = vote_tallies(&layout, tmp.path());
    for (e, tally) in tallies.iter().enumerate() {
        let id = &layout.elections[e].dimension;
        let mut got = tally.clone();
        let no_ballot =
            got.remove("did_not_vote").unwrap_or(0) + got.remove("not_registered").unwrap_or(0);
        assert_eq!(got, ballots[e], "{id}: ballots by method");
        assert_eq!(
            no_ballot + got.values().sum::<u64>(),
            manifest.rows_written,
            "{id}: one cell per voter"
        );
    }
    eprintln!(
        "history fuzz {name}: {physical} lines in {files} file(s): {rejected} rejected {:?}, \
         {} other elections, {} unmatched, {} duplicates, {cells} cells joined, {} unknown methods",
        h.rejects_by_reason, h.other_elections, h.unmatched, h.duplicates, h.unknown_methods
    );
    // The generator must reach every outcome, or the fuzz tests little.
    for reason in [
        "field_count",
        "broken_quoting",
        "missing_voter_id",
        "bad_date",
    ] {
        if reason == "broken_quoting" && !fmt.quoted {
            continue;
        }
        assert!(
            h.rejects_by_reason.contains_key(reason),
            "no {reason} reject"
        );
    }
    assert!(h.other_elections > 0 && h.unmatched > 0 && h.duplicates > 0 && unknown_methods > 0);
}

#[test]
fn fuzzed_nc_history_lines() {
    fuzz_history_files("nc", 2);
}

#[test]
fn fuzzed_fl_history_lines() {
    fuzz_history_files("fl", 1);
}

/// One fuzzed OH election cell: its bytes as written, and what it must read
/// as (`None`: blank, so `did_not_vote` or `not_registered`; else the
/// category and whether the table knows it).
fn oh_cell(lcg: &mut Lcg) -> (Vec<u8>, Option<(u8, bool)>) {
    const VOTED: u8 = 7; // voted_method_unknown, OH's every code
    let known: [&[u8]; 15] = [
        b"X", b"x", b" X ", b"D", b"R", b"L", b"G", b"C", b"E", b"N", b"S", b"\"X\"", b"\"r\"",
        b"X\r", b"\"X \"",
    ];
    // A lone CR is blank too (`History::is_blank`), for not_registered.
    let blank: [&[u8]; 6] = [b"", b"  ", b"\t", b"\"\"", b"\" \"", b"\r"];
    let unknown: [&[u8]; 10] = [
        b"Q",
        b"VOTED",
        b"XX",
        b"1",
        b"\xff",
        b"X\xff",
        b"A\0",
        b"\"X,Y\"",
        b"\"\"\"\"",
        b"ZZZZ",
    ];
    assert_eq!(CATEGORIES[usize::from(VOTED)].0, "voted_method_unknown");
    match lcg.next() % 100 {
        0..=44 => (lcg.pick(&blank).to_vec(), None),
        45..=79 => (lcg.pick(&known).to_vec(), Some((VOTED, true))),
        80 if lcg.next().is_multiple_of(10) => (vec![b'V'; 70_000], Some((VOTED, false))),
        _ => (lcg.pick(&unknown).to_vec(), Some((VOTED, false))),
    }
}

/// What one physical OH line must become.
enum OhLine {
    /// Written, with (category, known) per configured election.
    Kept(Vec<(u8, bool)>),
    /// Rejected, for this reason when only one is possible.
    Rejected(Option<&'static str>),
}

/// A value as a comma CSV writes it (synth's fields, re-rendered).
fn csv_field(v: &[u8]) -> Vec<u8> {
    if v.contains(&b',') || v.first() == Some(&b'"') {
        let mut out = vec![b'"'];
        for &b in v {
            out.push(b);
            if b == b'"' {
                out.push(b'"');
            }
        }
        out.push(b'"');
        out
    } else {
        v.to_vec()
    }
}

/// OH keeps history in the voter file: one column per election. 10,000
/// voter lines with every configured election's cell fuzzed, a few lines
/// broken by a cell; each voter with an id of its own and a registration
/// date before or after some elections.
#[test]
fn fuzzed_oh_election_cells() {
    let lines = lines_wanted();
    let layout = Layout::resolve("oh")
        .unwrap()
        .with_elections(elections())
        .unwrap();
    let history = layout.history.clone().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let synth_path = tmp.path().join("oh_synth.txt");
    let (text, _) = voter_file(&layout, elections(), lines as u64, &synth_path);
    let mut rows = text.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let header_line = rows.next().unwrap();
    let header: Vec<String> = fields(header_line, b',', Quoting::Double)
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (id_col, reg_col) = (col("SOS_VOTERID"), col("REGISTRATION_DATE"));
    let vote_cols: Vec<usize> = layout
        .elections
        .iter()
        .map(|e| {
            header
                .iter()
                .position(|n| history.column_election(n) == Some((e.kind, e.date)))
                .unwrap_or_else(|| panic!("synth wrote no column for {}", e.id))
        })
        .collect();
    const LATE: i32 = 20230101;

    let mut lcg = Lcg(seed() * 104_729 + 3);
    let mut file = header_line.to_vec();
    file.push(b'\n');
    let mut physical: Vec<OhLine> = Vec::new();
    for (n, row) in rows.enumerate() {
        let mut f = fields(row, b',', Quoting::Double);
        assert_eq!(f.len(), header.len(), "synth's line {n}");
        f[id_col] = format!("OH{n:010}").into_bytes();
        let late = lcg.next().is_multiple_of(4);
        f[reg_col] = if late {
            b"2023-01-01".to_vec()
        } else {
            b"1990-05-05".to_vec()
        };
        let mut out: Vec<Vec<u8>> = f.iter().map(|v| csv_field(v)).collect();
        let mut cells = Vec::new();
        for (e, &c) in vote_cols.iter().enumerate() {
            let (raw, want) = oh_cell(&mut lcg);
            out[c] = raw;
            let election = layout.elections[e].date;
            cells.push(match want {
                None if late && LATE > election => (layout::NOT_REGISTERED, true),
                None => (history.blank, true),
                Some(w) => w,
            });
        }
        // One line in 30 is broken by one of its cells.
        let broken = lcg.next().is_multiple_of(30).then(|| lcg.next() % 3);
        let c = *lcg.pick(&vote_cols);
        match broken {
            Some(0) => out[c] = b"X,Y".to_vec(),
            Some(1) => out[c] = b"\"X".to_vec(),
            // Not in the last column, where the first piece would be a
            // whole line: both pieces lack fields.
            Some(_) => out[vote_cols[0].min(header.len() - 2)] = b"X\nY".to_vec(),
            None => {}
        }
        let mut line = out.join(&b","[..]);
        line.extend_from_slice(if lcg.next().is_multiple_of(4) {
            b"\r\n"
        } else {
            b"\n"
        });
        file.extend_from_slice(&line);
        match broken {
            Some(0) => physical.push(OhLine::Rejected(Some("field_count"))),
            // broken_quoting, or field_count when a later field closes it
            Some(1) => physical.push(OhLine::Rejected(None)),
            Some(_) => physical.extend([OhLine::Rejected(None), OhLine::Rejected(None)]),
            None => physical.push(OhLine::Kept(cells)),
        }
    }
    if file.ends_with(b"\n") && lcg.next().is_multiple_of(2) {
        file.pop();
    }
    let voters_path = tmp.path().join("oh_fuzz.txt");
    std::fs::write(&voters_path, &file).unwrap();

    let manifest = run_ingest(&layout, tmp.path(), &voters_path, &[]);
    let h = manifest.history.clone().expect("a history section");
    assert_eq!(h.source, "columns");
    assert_eq!(
        manifest.rows_read,
        physical.len() as u64,
        "every line is read"
    );
    assert_eq!(manifest.duplicates_dropped, 0, "every id is its own");
    let rejected: Vec<u64> = physical
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p, OhLine::Rejected(_)))
        .map(|(i, _)| i as u64 + 2)
        .collect();
    assert_eq!(
        manifest.rows_rejected,
        rejected.len() as u64,
        "rows_rejected"
    );
    assert_eq!(
        manifest.rows_read,
        manifest.rows_written + manifest.rows_rejected,
        "rows_read = written + rejected"
    );
    let text = std::fs::read_to_string(tmp.path().join("data/fuzz/rejects.tsv")).unwrap();
    let mut listed = Vec::new();
    for row in text.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        assert_eq!(cols.len(), 4, "rejects row {row:?}");
        assert_eq!(cols[0], "oh_fuzz.txt");
        assert!(
            !row.contains("OH0") && !row.contains("X,Y"),
            "content in {row:?}"
        );
        let line: u64 = cols[1].parse().unwrap();
        listed.push(line);
    }
    let certain = physical
        .iter()
        .filter(|p| matches!(p, OhLine::Rejected(Some("field_count"))))
        .count() as u64;
    assert!(
        manifest
            .rejects_by_reason
            .get("field_count")
            .copied()
            .unwrap_or(0)
            >= certain
    );
    listed.sort_unstable();
    assert_eq!(listed, rejected, "exactly the broken lines are rejected");

    let mut want: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); layout.elections.len()];
    let mut unknown = 0u64;
    for cells in physical.iter().filter_map(|p| match p {
        OhLine::Kept(cells) => Some(cells),
        OhLine::Rejected(_) => None,
    }) {
        for (e, &(category, known)) in cells.iter().enumerate() {
            *want[e]
                .entry(CATEGORIES[usize::from(category)].0.to_owned())
                .or_default() += 1;
            unknown += u64::from(!known);
        }
    }
    assert_eq!(
        h.unknown_methods, unknown,
        "unknown cells over accepted lines"
    );
    let tallies = vote_tallies(&layout, tmp.path());
    for (e, tally) in tallies.iter().enumerate() {
        assert_eq!(tally, &want[e], "{}", layout.elections[e].dimension);
    }
    eprintln!(
        "history fuzz oh: {} lines, {} rejected, {} written, {unknown} unknown cells",
        manifest.rows_read, manifest.rows_rejected, manifest.rows_written
    );
}

/// A history file saved with a UTF-8 byte-order mark (as Excel writes) and
/// its columns in another order, the voter id first: the mark is skipped,
/// as before a voter file's header, and columns are found by name.
#[test]
fn a_byte_order_mark_before_the_history_header_is_skipped() {
    let layout = Layout::resolve("nc")
        .unwrap()
        .with_elections(elections())
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let voters_path = tmp.path().join("nc_voters.txt");
    let (_, voters) = voter_file(&layout, Vec::new(), 50, &voters_path);
    let e = &layout.elections[0];
    let mut text =
        b"\xEF\xBB\xBF\"ncid\"\t\"election_lbl\"\t\"voting_method\"\t\"county_id\"\n".to_vec();
    for id in &voters[..10] {
        let line = format!(
            "\"{}\"\t\"{}\"\t\"ABSENTEE BY MAIL\"\t\"92\"\n",
            String::from_utf8_lossy(id),
            us_date(e.date)
        );
        text.extend_from_slice(line.as_bytes());
    }
    let history = tmp.path().join("ncvhis.txt");
    std::fs::write(&history, text).unwrap();
    let manifest = run_ingest(&layout, tmp.path(), &voters_path, &[history]);
    let h = manifest.history.unwrap();
    assert_eq!((h.lines_read, h.unmatched), (10, 0));
    let tallies = vote_tallies(&layout, tmp.path());
    assert_eq!(tallies[0].get("mail"), Some(&10), "{}", e.dimension);
}
