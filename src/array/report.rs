//! Memory accounting for one array: [`MemoryReport`] and how an array
//! fills it in from the cache and the store.

use std::fmt;

use crate::cache::entry_overhead;
use crate::units::format_bytes;

use super::ArrayHandle;

/// Memory accounting for one array, the question "how much memory does this
/// array really use?" answered in five numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryReport {
    /// Elements times element size (NumPy's `nbytes`).
    pub logical_bytes: u64,
    /// Bytes of this array's chunks held in the cache.
    pub resident_bytes: u64,
    /// Of those, bytes not yet written to the store.
    pub dirty_bytes: u64,
    /// Estimated bookkeeping for the cached chunks.
    pub overhead_bytes: u64,
    /// Bytes the store occupies on disk (`None` if it could not be told).
    pub stored_bytes: Option<u64>,
    /// The shared cache's budget.
    pub cache_budget_bytes: u64,
    /// Bytes held by the shared cache for all arrays.
    pub cache_resident_bytes: u64,
}

impl fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "logical size (nbytes): {}",
            format_bytes(self.logical_bytes)
        )?;
        writeln!(
            f,
            "resident in cache:     {} ({} dirty)",
            format_bytes(self.resident_bytes),
            format_bytes(self.dirty_bytes)
        )?;
        writeln!(
            f,
            "bookkeeping overhead:  {}",
            format_bytes(self.overhead_bytes)
        )?;
        match self.stored_bytes {
            Some(b) => writeln!(f, "stored on disk:        {}", format_bytes(b))?,
            None => writeln!(f, "stored on disk:        unknown")?,
        }
        write!(
            f,
            "shared cache:          {} of {} budget",
            format_bytes(self.cache_resident_bytes),
            format_bytes(self.cache_budget_bytes)
        )
    }
}

impl ArrayHandle {
    /// How much memory the array costs: logical size vs cached vs on disk.
    pub fn memory_report(&self) -> MemoryReport {
        let (resident, dirty, entries) = self.inner.cache.usage_of(&self.inner.owner);
        let stats = self.inner.cache.stats();
        MemoryReport {
            logical_bytes: self.nbytes(),
            resident_bytes: resident as u64,
            dirty_bytes: dirty as u64,
            overhead_bytes: (entries * entry_overhead(self.ndim())) as u64,
            stored_bytes: self.store().stored_bytes().ok(),
            cache_budget_bytes: stats.budget_bytes as u64,
            cache_resident_bytes: stats.resident_bytes as u64,
        }
    }
}
