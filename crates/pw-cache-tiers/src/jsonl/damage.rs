//! What the JSONL tier found damaged or out of place in its shard files ([`JsonlDamage`]).

/// Damage found in the shard files, as last read, plus what the tier cleaned up.
///
/// Counts describe the files as this tier last read them, except [`JsonlDamage::stray_temp_files`],
/// which counts removals since the tier opened. Damaged lines stay where they are (see the module
/// docs: rewrites carry them over), so their counts go down only when the damage itself goes: a put
/// or delete of a damaged entry's key, a clear, or
/// [`CacheTier::remove_unreadable`](crate::CacheTier::remove_unreadable). Blank lines, which hold
/// nothing, are dropped by rewrites.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonlDamage {
    /// Lines with nothing but whitespace (skipped, as the reference does; dropped by rewrites).
    pub blank_lines: u64,
    /// Lines that are not JSON: cut short, garbage, not UTF-8; and lines longer than
    /// [`pw_cache_model::limits::MAX_LINE_BYTES`], which are not parsed nor held in memory
    /// (skipped, kept in place).
    pub undecodable_lines: u64,
    /// Lines that are JSON but not an object with a string `key` (`42`, `null`, `"x"`):
    /// skipped and kept in place (proxywhirl's constructor crashes on `42` and `null`).
    pub non_entry_lines: u64,
    /// Keys whose live line is an object with that key but not a valid entry (a missing field,
    /// a bad timestamp): held, and reported as corrupt by a get.
    pub invalid_entries: u64,
    /// Keys found in a shard other than their md5 shard: served from there.
    pub misplaced_keys: u64,
    /// Keys whose credentials could not be read (no key of the ring opens the token, or it is
    /// not hex): reported as corrupt, until the key is written again or deleted, or its shard is
    /// read again from scratch. Counted once something tried the tokens (a get, eviction, expiry
    /// cleanup), not when the tier opens.
    pub corrupt_entries: u64,
    /// `shard_NN.jsonl.tmp` files left by an interrupted rewrite, removed when the tier opened.
    pub stray_temp_files: u64,
}

impl JsonlDamage {
    /// Lines skipped: blank, undecodable and non-entry.
    pub fn skipped_lines(&self) -> u64 {
        self.blank_lines + self.undecodable_lines + self.non_entry_lines
    }

    /// Whether nothing was found damaged or out of place.
    pub fn is_clean(&self) -> bool {
        *self == JsonlDamage::default()
    }
}
