//! Top-5 of a logits row: largest first, ties to the lowest id, NaN never enters.

use serde::{Deserialize, Serialize};

/// How many top entries are kept per row side.
pub const TOP_K: usize = 5;

/// One top entry: token id and its logit as stored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TopEntry {
    pub id: u32,
    pub logit: f32,
}

/// Up to [`TOP_K`] entries in rank order (fewer only when the row has fewer eligible values).
/// Fixed-size so a row comparison allocates nothing; serialised as a plain list.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(into = "Vec<TopEntry>", try_from = "Vec<TopEntry>")]
pub struct TopK {
    entries: [TopEntry; TOP_K],
    len: u8,
}

impl Default for TopK {
    fn default() -> Self {
        TopK {
            entries: [TopEntry { id: 0, logit: 0.0 }; TOP_K],
            len: 0,
        }
    }
}

impl TopK {
    pub fn as_slice(&self) -> &[TopEntry] {
        &self.entries[..self.len as usize]
    }

    /// The argmax id (None only for a row with no eligible value).
    pub fn argmax(&self) -> Option<u32> {
        self.as_slice().first().map(|e| e.id)
    }

    /// Number of ids present in both lists.
    pub fn common_ids(&self, other: &TopK) -> usize {
        self.as_slice()
            .iter()
            .filter(|a| other.as_slice().iter().any(|b| b.id == a.id))
            .count()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len as usize == TOP_K
    }

    /// A value must be strictly above this to enter a full list (equal values lose to the
    /// lower id already present because ids are offered in increasing order).
    #[inline(always)]
    pub(crate) fn threshold(&self) -> f32 {
        if self.is_full() {
            self.entries[TOP_K - 1].logit
        } else {
            f32::NEG_INFINITY
        }
    }

    /// Offers one value; ids must be offered in increasing order. NaN is never taken.
    #[inline]
    pub(crate) fn offer(&mut self, id: u32, logit: f32) {
        let len = self.len as usize;
        if logit.is_nan() || (len == TOP_K && logit <= self.entries[TOP_K - 1].logit) {
            return;
        }
        // First slot holding a strictly smaller value: equal values keep their (lower) ids first.
        let mut pos = len.min(TOP_K - 1);
        while pos > 0 && logit > self.entries[pos - 1].logit {
            pos -= 1;
        }
        let end = if len == TOP_K { TOP_K - 1 } else { len };
        self.entries.copy_within(pos..end, pos + 1);
        self.entries[pos] = TopEntry { id, logit };
        self.len = (len + 1).min(TOP_K) as u8;
    }

    /// Offers a run of values whose first id is `base`.
    pub(crate) fn offer_all(&mut self, values: &[f32], base: usize) {
        for (i, &v) in values.iter().enumerate() {
            self.offer((base + i) as u32, v);
        }
    }

    /// Offers only finite values (rows holding NaN/Inf).
    pub(crate) fn offer_finite(&mut self, values: &[f32]) {
        for (i, &v) in values.iter().enumerate() {
            if v.is_finite() {
                self.offer(i as u32, v);
            }
        }
    }
}

impl From<TopK> for Vec<TopEntry> {
    fn from(t: TopK) -> Self {
        t.as_slice().to_vec()
    }
}

impl TryFrom<Vec<TopEntry>> for TopK {
    type Error = String;

    fn try_from(v: Vec<TopEntry>) -> Result<Self, Self::Error> {
        if v.len() > TOP_K {
            return Err(format!("top list has {} entries, at most {TOP_K}", v.len()));
        }
        let mut t = TopK::default();
        t.entries[..v.len()].copy_from_slice(&v);
        t.len = v.len() as u8;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(values: &[f32]) -> Vec<(u32, f32)> {
        let mut t = TopK::default();
        t.offer_all(values, 0);
        t.as_slice().iter().map(|e| (e.id, e.logit)).collect()
    }

    #[test]
    fn ranks_and_ties_to_lowest_id() {
        assert_eq!(
            top(&[1.0, 3.0, 2.0, 3.0, 0.5, 3.0, -1.0, 2.0]),
            vec![(1, 3.0), (3, 3.0), (5, 3.0), (2, 2.0), (7, 2.0)]
        );
        // All equal: the five lowest ids.
        assert_eq!(
            top(&[7.0; 8]).iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        // +0 and -0 compare equal: lowest id first.
        assert_eq!(top(&[-0.0, 0.0])[0].0, 0);
    }

    #[test]
    fn nan_never_wins() {
        assert_eq!(
            top(&[f32::NAN, 1.0, f32::NAN, 0.5]),
            vec![(1, 1.0), (3, 0.5)]
        );
        assert!(top(&[f32::NAN; 3]).is_empty());
    }

    #[test]
    fn short_rows_and_serde() {
        let mut t = TopK::default();
        t.offer_all(&[0.25, 0.5], 10);
        assert_eq!(t.argmax(), Some(11));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"[{"id":11,"logit":0.5},{"id":10,"logit":0.25}]"#);
        assert_eq!(serde_json::from_str::<TopK>(&json).unwrap(), t);
    }

    #[test]
    fn common_ids_counts_set_intersection() {
        let mut a = TopK::default();
        a.offer_all(&[5.0, 4.0, 3.0, 2.0, 1.0, 0.0], 0);
        let mut b = TopK::default();
        b.offer_all(&[0.0, 4.0, 3.0, 2.0, 1.0, 5.0], 0);
        assert_eq!(a.common_ids(&b), 4); // {1,2,3,4}; 0 vs 5 differ
    }
}
