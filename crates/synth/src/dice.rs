//! Seeded randomness with cheap draws, weighted tables and number printing.

use super::*;

/// Seeded randomness with cheap bounded draws.
pub(crate) struct Dice(pub(crate) ChaCha8Rng);

impl Dice {
    #[inline]
    pub(crate) fn u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    /// Uniform in `0..n` (multiply-shift; the bias is irrelevant here).
    #[inline]
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        ((u64::from(self.0.next_u32()) * u64::from(n)) >> 32) as u32
    }
    #[inline]
    pub(crate) fn index(&mut self, n: usize) -> usize {
        self.below(n as u32) as usize
    }
    /// True with probability `per_million` / 1 000 000.
    #[inline]
    pub(crate) fn chance(&mut self, per_million: u32) -> bool {
        self.below(1_000_000) < per_million
    }
    /// Uniform in `lo..=hi`.
    #[inline]
    pub(crate) fn between(&mut self, lo: i16, hi: i16) -> i16 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo) as u32 + 1) as i16
    }
}

/// A weighted choice as a lookup table: one draw, one index.
pub(crate) struct Table {
    pub(crate) slots: Vec<u16>,
    pub(crate) shift: u32,
}

impl Table {
    /// Every positive weight gets at least one slot.
    pub(crate) fn new(weights: &[f64]) -> Table {
        assert!(weights.len() <= usize::from(u16::MAX) + 1);
        let mut weights = weights.to_vec();
        if !weights.iter().any(|w| *w > 0.0) {
            weights.iter_mut().for_each(|w| *w = 1.0);
        }
        let positive = weights.iter().filter(|w| **w > 0.0).count();
        let mut bits = 14u32;
        while (1usize << bits) < positive * 64 && bits < 24 {
            bits += 1;
        }
        let size = 1usize << bits;
        let total: f64 = weights.iter().filter(|w| **w > 0.0).sum();
        let mut counts: Vec<usize> = weights
            .iter()
            .map(|&w| {
                if w > 0.0 {
                    ((w / total * size as f64) as usize).max(1)
                } else {
                    0
                }
            })
            .collect();
        let sum: usize = counts.iter().sum();
        let biggest = (0..counts.len())
            .max_by_key(|&i| counts[i])
            .expect("non-empty");
        counts[biggest] = (counts[biggest] + size)
            .checked_sub(sum)
            .filter(|c| *c > 0)
            .expect("table has room for every weight");
        let mut slots = Vec::with_capacity(size);
        for (i, c) in counts.iter().enumerate() {
            slots.extend(std::iter::repeat_n(i as u16, *c));
        }
        Table {
            slots,
            shift: 32 - bits,
        }
    }

    #[inline]
    pub(crate) fn pick(&self, dice: &mut Dice) -> usize {
        usize::from(self.slots[(dice.u32() >> self.shift) as usize])
    }
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
#[inline]
pub(crate) fn push_num(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    while tmp.len() - i < width && i > 0 {
        i -= 1;
        tmp[i] = b'0';
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends `value` as one field's content, doubling quotes when quoted.
pub(crate) fn push_escaped(buf: &mut Vec<u8>, value: &[u8], quoted: bool) {
    if quoted {
        for &b in value {
            if b == b'"' {
                buf.push(b'"');
            }
            buf.push(b);
        }
    } else {
        buf.extend_from_slice(value);
    }
}
