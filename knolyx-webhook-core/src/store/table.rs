//! The memory store's table of completed ids: open addressing with linear probing and
//! backward-shift deletion.
//!
//! A general-purpose hash map leaves a tombstone where an entry is removed; under the store's
//! steady churn at capacity (evict the oldest, insert the newest) tombstones pile up until
//! the map grows, and its memory per id jumps once it does. Backward-shift deletion leaves no
//! tombstones: the table holds exactly its live entries, and its size only depends on how
//! many there are. Entries are 16 bytes (a 64-bit key and 8 bytes of value) with no control
//! bytes; the load stays at most 3/4.

/// The value kept per key.
pub(super) type Value = (u32, u32);

#[derive(Clone, Copy, Default)]
struct Slot {
    /// The key; 0 marks an empty slot (a key of 0 is stored as 1).
    key: u64,
    value: Value,
}

#[derive(Default)]
pub(super) struct Table {
    slots: Vec<Slot>,
    len: usize,
}

fn stored(key: u64) -> u64 {
    key.max(1)
}

impl Table {
    /// A table sized for `n` entries without growing.
    pub(super) fn with_capacity(n: usize) -> Self {
        let mut table = Self::default();
        if n > 0 {
            table.resize(slots_for(n));
        }
        table
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn home(&self, key: u64) -> usize {
        (key as usize) & self.mask()
    }

    fn find(&self, key: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mut i = self.home(key);
        loop {
            match self.slots[i].key {
                0 => return None,
                k if k == key => return Some(i),
                _ => i = (i + 1) & self.mask(),
            }
        }
    }

    pub(super) fn get(&self, key: u64) -> Option<Value> {
        self.find(stored(key)).map(|i| self.slots[i].value)
    }

    /// Inserts or replaces.
    pub(super) fn insert(&mut self, key: u64, value: Value) {
        let key = stored(key);
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.resize(slots_for(self.len + 1).max(self.slots.len() * 2));
        }
        let mut i = self.home(key);
        loop {
            let slot = &mut self.slots[i];
            if slot.key == 0 {
                *slot = Slot { key, value };
                self.len += 1;
                return;
            }
            if slot.key == key {
                slot.value = value;
                return;
            }
            i = (i + 1) & self.mask();
        }
    }

    /// Removes `key`, shifting back the entries that probed past it.
    pub(super) fn remove(&mut self, key: u64) -> bool {
        let Some(mut hole) = self.find(stored(key)) else {
            return false;
        };
        let mask = self.mask();
        let mut j = (hole + 1) & mask;
        while self.slots[j].key != 0 {
            let home = self.home(self.slots[j].key);
            // The entry at `j` may fill the hole if the hole lies between its home and `j`
            // (cyclically): it would have been probed there.
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.slots[hole] = Slot::default();
        self.len -= 1;
        true
    }

    fn resize(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); slots]);
        self.len = 0;
        for slot in old.into_iter().filter(|s| s.key != 0) {
            self.insert(slot.key, slot.value);
        }
    }
}

/// The number of slots (a power of two, at least 8) for `n` entries at a load of 3/4 or less.
fn slots_for(n: usize) -> usize {
    (n.saturating_mul(4).div_ceil(3)).next_power_of_two().max(8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Random operations, checked against a `HashMap`, with keys crowded into few homes
    /// so that probing, wrap-around and backward shifts all happen.
    #[test]
    fn behaves_like_a_map() {
        let mut table = Table::default();
        let mut reference: HashMap<u64, Value> = HashMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct keys, many of them sharing low bits (and 0, stored as 1).
            let key = (x >> 20) % 300 * 64 + (x % 3);
            let key = if key == 1 { 0 } else { key };
            match x % 3 {
                0 | 1 => {
                    table.insert(key, (step, step));
                    reference.insert(key, (step, step));
                }
                _ => assert_eq!(table.remove(key), reference.remove(&key).is_some()),
            }
            if step % 1000 == 0 {
                assert_eq!(table.len(), reference.len());
                for (k, v) in &reference {
                    assert_eq!(table.get(*k), Some(*v), "key {k}");
                }
            }
        }
        assert!(table.slots.len() <= slots_for(300 * 3).max(8) * 2);
    }

    #[test]
    fn churn_at_a_fixed_size_never_grows_the_table() {
        let mut table = Table::with_capacity(1000);
        let slots = table.slots.len();
        for i in 0..1000u64 {
            table.insert(i.wrapping_mul(0x9e37_79b9_7f4a_7c15), (0, 0));
        }
        for i in 1000..200_000u64 {
            assert!(table.remove((i - 1000).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
            table.insert(i.wrapping_mul(0x9e37_79b9_7f4a_7c15), (0, 0));
        }
        assert_eq!(table.len(), 1000);
        assert_eq!(table.slots.len(), slots);
    }
}
