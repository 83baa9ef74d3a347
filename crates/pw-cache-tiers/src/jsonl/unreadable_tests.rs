//! Unit tests of the rule for unreadable entries and lines (crate docs, "Unreadable entries"):
//! every operation but a put or delete of the same key, a clear and the operator's
//! `remove_unreadable` leaves them where they are, byte for byte; and of the identity check a
//! rewrite makes before its rename.

use std::path::Path;

use pw_cache_crypto::FernetKey;
use pw_cache_model::Secret;
use time::macros::datetime;

use super::shard::RenameHook;
use super::*;

/// The shard every test here damages.
const SHARD: usize = 6;

fn ring() -> Arc<KeyRing> {
    Arc::new(KeyRing::new(FernetKey::generate(), []))
}

/// Keys `tag-N` whose md5 shard is `shard`.
fn keys_in(shard: usize, tag: &str, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{tag}-{i}"))
        .filter(|k| shard_of(k) == shard)
        .take(n)
        .collect()
}

fn key_in(shard: usize, tag: &str) -> String {
    keys_in(shard, tag, 1).remove(0)
}

/// An entry fetched in 2100 (not expired), with credentials.
fn fresh(key: &str, n: u32) -> CacheEntry {
    CacheEntry::new_at(
        format!("http://10.1.{}.{}:8080", n / 256, n % 256),
        "fresh",
        3600,
        datetime!(2100-01-01 0:00 UTC),
    )
    .unwrap()
    .with_key(key)
    .with_credentials(
        Some(Secret::new(format!("user{n}"))),
        Some(Secret::new(format!("pw-{n}"))),
    )
}

/// An entry that expired in 2000.
fn expired(key: &str, n: u32) -> CacheEntry {
    CacheEntry::new_at(
        format!("http://10.2.{}.{}:8080", n / 256, n % 256),
        "stale",
        60,
        datetime!(2000-01-01 0:00 UTC),
    )
    .unwrap()
    .with_key(key)
}

/// A shard holding readable entries and unreadable lines of every kind.
struct Damaged {
    dir: tempfile::TempDir,
    ring: Arc<KeyRing>,
    /// Readable entries in the shard (one of them expired).
    good: Vec<CacheEntry>,
    expired_good: CacheEntry,
    /// Keys whose entry cannot be read: broken fields, a token under another key, a token that
    /// is not hex. All of them with an `expires_at` in the past.
    unreadable_keys: Vec<String>,
    /// Every unreadable line, as written (without its `\n`), in file order.
    unreadable_lines: Vec<Vec<u8>>,
}

impl Damaged {
    fn path(&self) -> PathBuf {
        self.dir.path().join(shard_file_name(SHARD))
    }

    fn open(&self) -> JsonlTier {
        JsonlTier::open(self.dir.path(), &CacheTierConfig::unbounded(), Arc::clone(&self.ring)).unwrap()
    }

    fn open_bounded(&self, max: u64) -> JsonlTier {
        JsonlTier::open(
            self.dir.path(),
            &CacheTierConfig::bounded(max).with_policy(EvictionPolicy::Lru),
            Arc::clone(&self.ring),
        )
        .unwrap()
    }

    /// Every unreadable line is in the file, byte for byte, each a whole line, in the order
    /// written; and the file ends with a terminator.
    fn assert_intact(&self, when: &str) {
        let bytes = fs::read(self.path()).unwrap();
        assert!(bytes.ends_with(b"\n"), "{when}: the file ends without a newline");
        let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        let mut last = None;
        for want in &self.unreadable_lines {
            let at = lines.iter().position(|l| *l == want.as_slice()).unwrap_or_else(|| {
                panic!(
                    "{when}: unreadable line missing or changed: {}\nfile:\n{}",
                    String::from_utf8_lossy(want),
                    String::from_utf8_lossy(&bytes)
                )
            });
            assert!(last < Some(at), "{when}: unreadable lines out of order");
            last = Some(at);
        }
    }

    fn assert_unreadable_keys_held(&self, tier: &JsonlTier, when: &str) {
        for key in &self.unreadable_keys {
            assert!(tier.contains(key).unwrap(), "{when}: {key} is gone");
            let err = tier.get(key).unwrap_err();
            assert!(err.is_corrupt_entry(), "{when}: {key}: {err}");
        }
    }
}

fn build() -> Damaged {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let stranger = KeyRing::new(FernetKey::generate(), []);
    let line = |e: &CacheEntry, r: &KeyRing| encode_line(e, r).unwrap().into_bytes();
    let keys = keys_in(SHARD, "good", 3);
    let good: Vec<CacheEntry> = keys.iter().zip(1..).map(|(k, n)| fresh(k, n)).collect();
    let expired_good = expired(&key_in(SHARD, "old"), 9);

    let broken = key_in(SHARD, "broken");
    let foreign = key_in(SHARD, "foreign");
    let not_hex = key_in(SHARD, "nothex");
    let broken_line = format!(
        "{{\"key\": \"{broken}\", \"proxy_url\": \"http://10.3.0.1:1\", \"source\": \"s\", \"fetch_time\": \
         \"2000-01-01T00:00:00+00:00\", \"last_accessed\": \"2000-01-01T00:00:00+00:00\", \"ttl_seconds\": \
         \"soon\", \"expires_at\": \"2000-01-01T01:00:00+00:00\"}}"
    )
    .into_bytes();
    let foreign_line = line(
        &expired(&foreign, 10).with_credentials(None, Some(Secret::new("stranger's"))),
        &stranger,
    );
    let not_hex_line = String::from_utf8(line(&expired(&not_hex, 11), &ring))
        .unwrap()
        .replace('}', ", \"password_encrypted\": \"zz11\"}")
        .into_bytes();
    let cut_line = b"{\"key\": \"cut\", \"proxy_url\": \"http://10.".to_vec();
    let garbage_crlf = b"\xff\xfe not json, not UTF-8\r".to_vec();
    let number = b"42".to_vec();
    let keyless = b"{\"not_a_key\": 1}".to_vec();

    let mut file: Vec<Vec<u8>> = vec![
        line(&good[0], &ring),
        broken_line.clone(),
        cut_line.clone(),
        line(&good[1], &ring),
        foreign_line.clone(),
        number.clone(),
        line(&expired_good, &ring),
        garbage_crlf.clone(),
        not_hex_line.clone(),
        b"   ".to_vec(),
        keyless.clone(),
        line(&good[2], &ring),
    ];
    for l in &mut file {
        l.push(b'\n');
    }
    fs::write(dir.path().join(shard_file_name(SHARD)), file.concat()).unwrap();
    Damaged {
        dir,
        ring,
        good,
        expired_good,
        unreadable_keys: vec![broken, foreign, not_hex],
        unreadable_lines: vec![
            broken_line,
            cut_line,
            foreign_line,
            number,
            garbage_crlf,
            not_hex_line,
            keyless,
        ],
    }
}

const OPENED: JsonlDamage = JsonlDamage {
    blank_lines: 1,
    undecodable_lines: 2,
    non_entry_lines: 2,
    invalid_entries: 1,
    misplaced_keys: 0,
    corrupt_entries: 0,
    stray_temp_files: 0,
};

#[test]
fn a_get_of_an_unreadable_entry_changes_nothing() {
    let d = build();
    let before = fs::read(d.path()).unwrap();
    let tier = d.open();
    assert_eq!(tier.damage(), OPENED);
    let ((), warnings) = lax_tests::capture_warnings(|| {
        for _ in 0..3 {
            d.assert_unreadable_keys_held(&tier, "gets");
            assert_eq!(tier.get("cut").unwrap(), None, "a cut line is no entry");
            assert!(tier.peek(&d.unreadable_keys[1]).unwrap_err().is_corrupt_entry());
        }
    });
    // One warning per unreadable token line, not one per lookup (the caller counts those).
    let reported: Vec<_> = warnings.iter().filter(|w| w.contains("unreadable entry")).collect();
    assert_eq!(reported.len(), 2, "{warnings:?}");
    for e in &d.good {
        assert_eq!(tier.get(&e.key).unwrap().as_ref(), Some(e));
    }
    // Gets record nothing (`record_accesses` of an unreadable key changes nothing either).
    let record = pw_cache_model::AccessRecord {
        key: d.unreadable_keys[1].clone(),
        access_count: 5,
        last_accessed: datetime!(2101-01-01 0:00 UTC),
        evicted_from_l1: true,
    };
    assert_eq!(tier.record_accesses(&[record]).unwrap(), 0);
    assert_eq!(fs::read(d.path()).unwrap(), before, "the file is untouched");
    assert_eq!(
        tier.damage(),
        JsonlDamage {
            corrupt_entries: 2,
            ..OPENED
        }
    );
    assert_eq!(tier.health().consecutive_failures(), 0);
}

#[test]
fn puts_of_other_keys_and_compaction_keep_unreadable_lines() {
    let d = build();
    let tier = d.open();
    let others = keys_in(SHARD, "other", 4);
    for (k, n) in others.iter().zip(20..) {
        tier.put(&fresh(k, n)).unwrap();
    }
    d.assert_intact("puts of other keys");
    // Force compactions: many updates of one key in the shard.
    let mut hot = fresh(&others[0], 20);
    for n in 0..(3 * MIN_DEAD_LINES) {
        hot.access_count = n;
        tier.put(&hot).unwrap();
    }
    d.assert_intact("compaction after updates");
    let lines = fs::read(d.path()).unwrap().split(|&b| b == b'\n').count() as u64;
    assert!(lines < MIN_DEAD_LINES + 20, "compacted: {lines} lines");
    assert!(
        tier.unreadable_skipped() >= 2 * 4,
        "the compactions carried the 4 stray lines each time: {}",
        tier.unreadable_skipped()
    );
    // Unreadable lines are not dead: compaction leaves no dead line, and nothing to do after.
    tier.put(&hot).unwrap();
    assert_eq!(tier.compact().unwrap(), 1);
    d.assert_intact("compact");
    assert_eq!(
        tier.dead_lines(),
        4,
        "only the 4 stray lines are left that are no key's"
    );
    assert_eq!(
        tier.compact().unwrap(),
        0,
        "unreadable lines do not make a shard compact again"
    );
    assert_eq!(tier.get(&hot.key).unwrap().as_ref(), Some(&hot));
    d.assert_unreadable_keys_held(&tier, "compaction");
    for e in &d.good {
        assert_eq!(tier.get(&e.key).unwrap().as_ref(), Some(e));
    }
    let damage = tier.damage();
    assert_eq!(
        (damage.undecodable_lines, damage.non_entry_lines, damage.invalid_entries),
        (2, 2, 1)
    );
}

#[test]
fn a_health_mark_of_an_unreadable_entry_changes_nothing() {
    let d = build();
    let before = fs::read(d.path()).unwrap();
    let tier = d.open();
    for key in &d.unreadable_keys {
        for evict_at in [None, Some(1)] {
            let err = tier.mark_failure(key, evict_at).unwrap_err();
            assert!(err.is_corrupt_entry(), "{key}: {err}");
        }
    }
    assert_eq!(
        tier.mark_failure("cut", Some(1)).unwrap(),
        FailureMark::Absent,
        "a cut line is no entry"
    );
    assert_eq!(fs::read(d.path()).unwrap(), before, "the file is untouched");
    d.assert_unreadable_keys_held(&tier, "marks");
    // Readable entries beside them are marked, then evicted, and the damage stays.
    let good = &d.good[0];
    assert_eq!(
        tier.mark_failure(&good.key, Some(2)).unwrap(),
        FailureMark::Marked { failure_count: 1 }
    );
    assert_eq!(
        tier.mark_failure(&good.key, Some(2)).unwrap(),
        FailureMark::Evicted { failure_count: 2 }
    );
    assert!(!tier.contains(&good.key).unwrap());
    d.assert_intact("a mark's eviction");
    d.assert_unreadable_keys_held(&tier, "a mark's eviction");
    assert_eq!(tier.health().consecutive_failures(), 0);
}

#[test]
fn a_delete_of_another_key_keeps_every_unreadable_line() {
    let d = build();
    let tier = d.open();
    let skipped = tier.unreadable_skipped();
    assert!(tier.delete(&d.good[1].key).unwrap());
    d.assert_intact("delete");
    assert_eq!(
        tier.unreadable_skipped(),
        skipped + 4,
        "the rewrite carried 4 stray lines"
    );
    assert!(!fs::read_to_string(d.path()).is_ok_and(|t| t.contains(&d.good[1].key)));
    assert!(tier.delete(&d.good[0].key).unwrap());
    d.assert_intact("second delete");
    d.assert_unreadable_keys_held(&tier, "deletes");
    assert_eq!(tier.get(&d.good[2].key).unwrap().as_ref(), Some(&d.good[2]));
    // A fresh reader sees the same damage (the blank line went with the first rewrite).
    assert_eq!(
        d.open().damage(),
        JsonlDamage {
            blank_lines: 0,
            ..OPENED
        }
    );
}

#[test]
fn cleanup_leaves_unreadable_entries_whose_expiry_is_past() {
    let d = build();
    let tier = d.open();
    let now = datetime!(2050-01-01 0:00 UTC);
    // Only the readable expired entry goes; the three unreadable ones (expires_at in 2000) stay.
    assert_eq!(tier.cleanup_expired(now).unwrap(), 1);
    assert!(!tier.contains(&d.expired_good.key).unwrap());
    d.assert_intact("cleanup");
    d.assert_unreadable_keys_held(&tier, "cleanup");
    // Counted: the broken entry (expiry readable alone), the two whose tokens failed, and the
    // four stray lines the rewrite carried.
    assert_eq!(tier.unreadable_skipped(), 7);
    // Nothing readable is expired now: nothing is rewritten, the unreadable ones are counted.
    let bytes = fs::read(d.path()).unwrap();
    assert_eq!(tier.cleanup_expired(now).unwrap(), 0);
    assert_eq!(fs::read(d.path()).unwrap(), bytes);
    assert_eq!(tier.unreadable_skipped(), 10);
    assert_eq!(tier.damage().corrupt_entries, 2, "the tokens tried are marked");
}

#[test]
fn eviction_never_takes_an_unreadable_entry() {
    let d = build();
    // 7 entries held: 3 + 1 readable, 3 unreadable.
    let tier = d.open_bounded(7);
    assert_eq!(tier.size().unwrap(), 7);
    let others = keys_in(SHARD, "evicting", 6);
    for (k, n) in others.iter().zip(30..) {
        tier.put(&fresh(k, n)).unwrap();
        d.assert_intact("a put that evicts");
        assert!(tier.size().unwrap() <= 7);
    }
    d.assert_unreadable_keys_held(&tier, "evictions");
    assert!(tier.evictions() >= 6);
    assert!(tier.unreadable_skipped() > 0);
    // With a bound below the unreadable entries, everything readable goes and the tier stays
    // above its bound rather than evict what it cannot read.
    let small = d.open_bounded(2);
    small.put(&fresh(&key_in(SHARD, "last"), 40)).unwrap();
    d.assert_intact("evicting everything readable");
    d.assert_unreadable_keys_held(&small, "evicting everything readable");
    let mut keys = small.keys().unwrap();
    keys.sort();
    let mut want = d.unreadable_keys.clone();
    want.push(key_in(SHARD, "last"));
    want.sort();
    assert_eq!(keys, want);
    // And again: no readable victim, nothing changes, the put is stored above the bound.
    let before = small.evictions();
    small.put(&fresh(&key_in(SHARD, "later"), 41)).unwrap();
    assert_eq!(small.evictions(), before + 1, "only the readable `last` could go");
    assert_eq!(small.size().unwrap(), 4);
}

#[test]
fn close_and_reopen_keep_unreadable_lines() {
    let d = build();
    let tier = d.open();
    tier.put(&fresh(&key_in(SHARD, "other"), 50)).unwrap();
    tier.close().unwrap();
    drop(tier);
    d.assert_intact("close");
    let again = d.open();
    assert_eq!(again.damage(), OPENED);
    d.assert_unreadable_keys_held(&again, "reopen");
}

#[test]
fn remove_unreadable_removes_them_and_reports_the_count() {
    let d = build();
    let tier = d.open();
    let skipped = tier.unreadable_skipped();
    // Three entries (broken fields, token under another key, token not hex) and four stray
    // lines (two not JSON, one of them cut short; two JSON values that are no entry).
    assert_eq!(tier.remove_unreadable().unwrap(), 7);
    assert_eq!(tier.unreadable_skipped(), skipped);
    let text = String::from_utf8(fs::read(d.path()).unwrap()).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    for key in &d.unreadable_keys {
        assert!(!tier.contains(key).unwrap());
    }
    for e in &d.good {
        assert_eq!(tier.get(&e.key).unwrap().as_ref(), Some(e));
    }
    assert!(tier.contains(&d.expired_good.key).unwrap(), "expired is not unreadable");
    assert!(tier.damage().is_clean(), "{:?}", tier.damage());
    assert!(d.open().damage().is_clean());
    assert_eq!(tier.remove_unreadable().unwrap(), 0);
    // Only existing shards were looked at: no file was created.
    assert_eq!(fs::read_dir(d.dir.path()).unwrap().count(), 1);
}

#[test]
fn a_torn_last_line_is_kept_and_never_glued_to() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let path = dir.path().join(shard_file_name(SHARD));
    let keys = keys_in(SHARD, "torn", 3);
    let [a, b, c] = [0u32, 1, 2].map(|n| fresh(&keys[n as usize], n));
    let torn = b"{\"key\": \"torn\", \"proxy_url\": \"http://10.9".to_vec();
    fs::write(
        &path,
        [
            encode_line(&a, &ring).unwrap().into_bytes(),
            b"\n".to_vec(),
            torn.clone(),
        ]
        .concat(),
    )
    .unwrap();
    let tier = JsonlTier::open(dir.path(), &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
    tier.put(&b).unwrap();
    let bytes = fs::read(&path).unwrap();
    let lines: Vec<&[u8]> = bytes.split(|&x| x == b'\n').collect();
    assert_eq!(lines[1], torn.as_slice(), "our line starts on a new line");
    let b_line = lines[2].to_vec();
    assert_eq!(tier.get(&b.key).unwrap().as_ref(), Some(&b));
    // A rewrite for another key keeps the torn line, terminated, bytes unchanged.
    assert!(tier.delete(&a.key).unwrap());
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes, [torn.as_slice(), b"\n", &b_line, b"\n"].concat());
    tier.put(&c).unwrap();
    assert_eq!(tier.get(&c.key).unwrap().as_ref(), Some(&c));
    assert_eq!(tier.damage().undecodable_lines, 1);
}

#[test]
fn credential_sample_returns_stored_tokens_spread_over_the_shards() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let tier = JsonlTier::open(dir.path(), &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
    assert!(tier.credential_sample(10).unwrap().is_empty(), "empty tier");
    let mut shard_of_user = HashMap::new();
    for n in 0..64u32 {
        let key = format!("sample-{n}");
        let mut e = fresh(&key, n);
        if n % 2 == 0 {
            e = e.with_credentials(None, None);
        } else {
            shard_of_user.insert(format!("user{n}"), shard_of(&key));
            shard_of_user.insert(format!("pw-{n}"), shard_of(&key));
        }
        tier.put(&e).unwrap();
    }
    let sample = tier.credential_sample(10).unwrap();
    assert_eq!(sample.len(), 10);
    let mut shards = HashSet::new();
    for token in &sample {
        let plain = ring.decrypt_bytes(token).unwrap();
        shards.insert(shard_of_user[plain.expose_secret()]);
    }
    assert!(shards.len() >= 5, "spread over the shards: {shards:?}");
    assert_eq!(tier.credential_sample(0).unwrap().len(), 0);
    assert_eq!(
        tier.credential_sample(1000).unwrap().len(),
        64,
        "all 32 entries' two tokens"
    );
    // Another key's ring cannot open them: what a caller checks a ring with.
    let stranger = KeyRing::new(FernetKey::generate(), []);
    assert!(sample.iter().all(|t| stranger.decrypt_bytes(t).is_err()));
}

/// Installs `hook` on shard `SHARD` of `tier`, run once before the next rewrite's rename.
fn before_next_rename(tier: &JsonlTier, hook: impl FnOnce(&Path) + Send + 'static) {
    let mut hook = Some(hook);
    tier.shards[SHARD].lock().unwrap().before_rename = Some(RenameHook(Box::new(move |path| {
        if let Some(hook) = hook.take() {
            hook(path);
        }
    })));
}

#[test]
fn a_rewrite_does_not_rename_over_a_file_another_writer_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let keys = keys_in(SHARD, "raced", 4);
    let entries: Vec<CacheEntry> = keys.iter().zip(0..).map(|(k, n)| fresh(k, n)).collect();
    let tier = JsonlTier::open(dir.path(), &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
    for e in &entries[..3] {
        tier.put(e).unwrap();
    }
    // Between our read and our rename, a writer that does not take the lock (proxywhirl's
    // `_write_shard`) renames its own rewrite over the shard: the three lines and a fourth.
    let theirs: String = entries
        .iter()
        .map(|e| format!("{}\n", encode_line(e, &ring).unwrap()))
        .collect();
    let tmp = dir.path().join("shard_06.tmp");
    before_next_rename(&tier, move |path| {
        fs::write(&tmp, theirs).unwrap();
        fs::rename(&tmp, path).unwrap();
    });
    assert!(tier.delete(&keys[0]).unwrap());
    let text = fs::read_to_string(tier.shard_path(SHARD)).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(!text.contains(&keys[0]) && text.contains(&keys[3]), "{text}");
    assert_eq!(tier.get(&keys[3]).unwrap().as_ref(), Some(&entries[3]));
    let fresh_reader = JsonlTier::open(dir.path(), &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
    assert_eq!(fresh_reader.get(&keys[0]).unwrap(), None);
    assert_eq!(fresh_reader.get(&keys[3]).unwrap().as_ref(), Some(&entries[3]));
}

#[test]
fn a_rewrite_does_not_rename_over_lines_appended_without_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let keys = keys_in(SHARD, "appended", 3);
    let entries: Vec<CacheEntry> = keys.iter().zip(0..).map(|(k, n)| fresh(k, n)).collect();
    let tier = JsonlTier::open(dir.path(), &CacheTierConfig::unbounded(), Arc::clone(&ring)).unwrap();
    tier.put(&entries[0]).unwrap();
    tier.put(&entries[1]).unwrap();
    let late = format!("{}\n", encode_line(&entries[2], &ring).unwrap());
    before_next_rename(&tier, move |path| {
        use std::io::Write;
        let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(late.as_bytes()).unwrap();
    });
    assert!(tier.delete(&keys[0]).unwrap());
    let text = fs::read_to_string(tier.shard_path(SHARD)).unwrap();
    assert!(
        !text.contains(&keys[0]) && text.contains(&keys[1]) && text.contains(&keys[2]),
        "{text}"
    );
    assert_eq!(tier.get(&keys[2]).unwrap().as_ref(), Some(&entries[2]));
    assert!(!dir.path().join("shard_06.jsonl.tmp").exists());
}

#[test]
fn a_tier_held_above_its_bound_by_unreadable_entries_warns_once() {
    let d = build();
    let tier = d.open_bounded(2);
    let keys = keys_in(SHARD, "over", 4);
    let ((), warnings) = lax_tests::capture_warnings(|| {
        for (k, n) in keys.iter().zip(60..) {
            tier.put(&fresh(k, n)).unwrap();
        }
    });
    let over: Vec<_> = warnings.iter().filter(|w| w.contains("above max_entries")).collect();
    assert_eq!(over.len(), 1, "{warnings:?}");
    assert_eq!(tier.size().unwrap(), 4, "three unreadable entries and the last put");
    d.assert_intact("puts above the bound");
    // Back within the bound (the operator removed them): a later overflow warns again.
    assert_eq!(tier.remove_unreadable().unwrap(), 7);
    let ((), warnings) = lax_tests::capture_warnings(|| {
        tier.put(&fresh(&key_in(SHARD, "again"), 70)).unwrap();
    });
    assert!(
        warnings.iter().all(|w| !w.contains("above max_entries")),
        "{warnings:?}"
    );
    assert_eq!(tier.size().unwrap(), 2);
}
