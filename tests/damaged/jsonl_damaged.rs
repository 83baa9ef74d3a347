//! A JSONL directory with every kind of damage opens, serves every intact entry and counts the
//! rest exactly; later writes keep the damage from spreading, rewrites keep the damaged lines
//! where they are (unreadable is not garbage), and only the operator's `remove_unreadable`
//! drops them.

use std::path::Path;
use std::sync::Arc;

use pw_cache::crypto::{FernetKey, KeyRing};
use pw_cache::tiers::jsonl::{JsonlDamage, JsonlTier, encode_line, shard_file_name, shard_of};
use pw_cache::tiers::{CacheTier, TierError};
use pw_cache::{CacheEntry, CacheTierConfig, OffsetDateTime, Secret};
use pw_cache_tests::fixture_keys;

fn ring() -> Arc<KeyRing> {
    let (current, previous) = fixture_keys();
    Arc::new(KeyRing::from_secrets(&Secret::new(current), &[Secret::new(previous)]).unwrap())
}

/// A key `tag-N` whose md5 shard is `shard`.
fn key_in(shard: usize, tag: &str) -> String {
    (0..)
        .map(|i| format!("{tag}-{i}"))
        .find(|k| shard_of(k) == shard)
        .unwrap()
}

fn entry(key: &str, n: u64) -> CacheEntry {
    let at = OffsetDateTime::from_unix_timestamp(4_102_444_800).unwrap(); // 2100-01-01
    let mut e = CacheEntry::new_at(format!("http://10.9.8.{n}:3128"), "damaged", 3600, at)
        .unwrap()
        .with_key(key)
        .with_credentials(
            Some(Secret::new(format!("user-{n}"))),
            Some(Secret::new(format!("pw-{n}"))),
        );
    e.access_count = n;
    e
}

fn line(e: &CacheEntry, ring: &KeyRing) -> String {
    encode_line(e, ring).unwrap()
}

fn open(dir: &Path) -> JsonlTier {
    JsonlTier::open(dir, &CacheTierConfig::unbounded(), ring()).unwrap()
}

struct Damaged {
    dir: tempfile::TempDir,
    /// Entries that must be served as they are.
    intact: Vec<CacheEntry>,
    /// Shard 2: blank, garbage, 42/null/"x", a duplicate key, a cut last line.
    messy: usize,
    duplicate: CacheEntry,
    cut_key: String,
    crlf: usize,
    misplaced: CacheEntry,
    unknown_key: String,
    invalid_key: String,
}

fn build() -> Damaged {
    let dir = tempfile::tempdir().unwrap();
    let ring = ring();
    let write = |shard: usize, text: String| std::fs::write(dir.path().join(shard_file_name(shard)), text).unwrap();
    let mut intact = Vec::new();

    // Shard 2: damage of every kind around good lines.
    let messy = 2;
    let good = entry(&key_in(messy, "good"), 1);
    let first = entry(&key_in(messy, "dup"), 2);
    let mut duplicate = first.clone();
    duplicate.failure_count = 9;
    duplicate.password = None;
    let cut = line(&entry(&key_in(messy, "cut"), 3), &ring);
    write(
        messy,
        format!(
            "{}\n   \n{{\"key\": \"garbage\", this is not json\n42\nnull\n\"x\"\n{}\n{}\n{}",
            line(&good, &ring),
            line(&first, &ring),
            line(&duplicate, &ring),
            &cut[..cut.len() / 2],
        ),
    );
    intact.extend([good, duplicate.clone()]);

    // Shard 5: CRLF line endings.
    let crlf = 5;
    let (a, b) = (entry(&key_in(crlf, "crlf"), 4), entry(&key_in(crlf, "crlf2"), 5));
    write(crlf, format!("{}\r\n{}\r\n", line(&a, &ring), line(&b, &ring)));
    intact.extend([a, b]);

    // Shard 7 holds a key whose md5 shard is 8, and an object with a key but broken fields.
    let misplaced = entry(&key_in(8, "misplaced"), 6);
    let invalid_key = key_in(7, "invalid");
    write(
        7,
        format!(
            "{}\n{{\"key\": \"{invalid_key}\", \"proxy_url\": \"http://x:1\", \"ttl_seconds\": \"soon\"}}\n",
            line(&misplaced, &ring)
        ),
    );
    intact.push(misplaced.clone());

    // Shard 9: a password encrypted under a key the ring does not hold.
    let stranger = KeyRing::new(FernetKey::generate(), []);
    let unknown_key = key_in(9, "unknown");
    write(9, format!("{}\n", line(&entry(&unknown_key, 7), &stranger)));

    // Shard 3, with the temporary file of an interrupted rewrite next to it; shard 4 with
    // proxywhirl's own temporary file (another name, not ours: left alone).
    let three = entry(&key_in(3, "three"), 8);
    write(3, format!("{}\n", line(&three, &ring)));
    std::fs::write(dir.path().join("shard_03.jsonl.tmp"), "{\"key\": \"half-writ").unwrap();
    std::fs::write(
        dir.path().join("shard_04.tmp"),
        format!("{}\n", line(&entry("py-tmp", 9), &ring)),
    )
    .unwrap();
    intact.push(three);

    Damaged {
        dir,
        intact,
        messy,
        duplicate,
        cut_key: key_in(messy, "cut"),
        crlf,
        misplaced,
        unknown_key,
        invalid_key,
    }
}

const OPENED: JsonlDamage = JsonlDamage {
    blank_lines: 1,
    undecodable_lines: 2,
    non_entry_lines: 3,
    invalid_entries: 1,
    misplaced_keys: 1,
    corrupt_entries: 0,
    stray_temp_files: 1,
};

#[test]
fn opens_serves_every_intact_entry_and_counts_the_rest() {
    let d = build();
    let tier = open(d.dir.path());
    assert_eq!(tier.damage(), OPENED);
    assert_eq!(tier.damage().skipped_lines(), 6);
    // blank + undecodable + non-entry + the duplicate's first line.
    assert_eq!(tier.dead_lines(), 7);
    assert!(
        !d.dir.path().join("shard_03.jsonl.tmp").exists(),
        "stray temp file removed"
    );
    assert!(
        d.dir.path().join("shard_04.tmp").exists(),
        "proxywhirl's temp file left alone"
    );

    for e in &d.intact {
        assert_eq!(tier.get(&e.key).unwrap().as_ref(), Some(e), "{}", e.key);
    }
    assert_eq!(
        tier.get(&d.duplicate.key).unwrap().unwrap().failure_count,
        9,
        "last line wins"
    );
    assert_eq!(tier.get(&d.cut_key).unwrap(), None, "a cut line is no entry");
    assert_eq!(tier.get("py-tmp").unwrap(), None, "temporary files are not read");
    assert_eq!(tier.get("garbage").unwrap(), None);

    // Unreadable entries are errors that say "corrupt entry", not misses, not tier failures.
    for key in [&d.unknown_key, &d.invalid_key] {
        for _ in 0..2 {
            let err = tier.get(key).unwrap_err();
            assert!(err.is_corrupt_entry() && !err.is_tier_failure(), "{key}: {err}");
        }
    }
    assert!(matches!(tier.get(&d.unknown_key), Err(TierError::Crypto { .. })));
    assert_eq!(tier.health().consecutive_failures(), 0);
    assert_eq!(
        tier.damage(),
        JsonlDamage {
            corrupt_entries: 1,
            ..OPENED
        }
    );
    // Held entries: the intact ones and the two unreadable ones.
    assert_eq!(tier.size().unwrap(), d.intact.len() + 2);
    let mut keys = tier.keys().unwrap();
    keys.sort();
    let mut want: Vec<String> = d.intact.iter().map(|e| e.key.clone()).collect();
    want.extend([d.unknown_key.clone(), d.invalid_key.clone()]);
    want.sort();
    assert_eq!(keys, want);
}

#[test]
fn writes_do_not_spread_the_damage_and_rewrites_keep_it() {
    let d = build();
    let tier = open(d.dir.path());
    let messy_path = d.dir.path().join(shard_file_name(d.messy));

    // An append after the cut line ends it first: the cut line stays one damaged line.
    let new = entry(&key_in(d.messy, "new"), 10);
    tier.put(&new).unwrap();
    assert!(std::fs::read_to_string(&messy_path).unwrap().ends_with("}\n"));
    let fresh = open(d.dir.path());
    assert_eq!(fresh.get(&new.key).unwrap().as_ref(), Some(&new));
    assert_eq!(
        fresh.damage(),
        JsonlDamage {
            stray_temp_files: 0,
            ..OPENED
        }
    );
    assert_eq!(tier.damage(), OPENED);

    // An append to the CRLF shard is read back, with the CRLF lines.
    let crlf_new = entry(&key_in(d.crlf, "crlf-new"), 11);
    tier.put(&crlf_new).unwrap();
    assert_eq!(open(d.dir.path()).get(&crlf_new.key).unwrap().as_ref(), Some(&crlf_new));

    // A delete rewrites shard 2 without the key: the damaged lines stay, byte for byte and in
    // their order; only the blank line and the duplicate's superseded line go.
    let damaged_lines = |bytes: &[u8]| -> Vec<Vec<u8>> {
        bytes
            .split(|&b| b == b'\n')
            .filter(|l| {
                !l.starts_with(b"{\"key\": \"good")
                    && !l.starts_with(b"{\"key\": \"dup")
                    && !l.starts_with(b"{\"key\": \"new")
            })
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .map(<[u8]>::to_vec)
            .collect()
    };
    let before = damaged_lines(&std::fs::read(&messy_path).unwrap());
    assert_eq!(before.len(), 5, "garbage, 42, null, \"x\", the cut line");
    assert!(tier.delete(&d.duplicate.key).unwrap());
    let text = std::fs::read_to_string(&messy_path).unwrap();
    assert_eq!(text.lines().count(), 7, "{text}");
    assert_eq!(damaged_lines(text.as_bytes()), before);
    let after_rewrite = JsonlDamage {
        blank_lines: 0,
        ..OPENED
    };
    assert_eq!(tier.damage(), after_rewrite);
    assert_eq!(
        open(d.dir.path()).damage(),
        JsonlDamage {
            stray_temp_files: 0,
            ..after_rewrite
        }
    );

    // Writing a misplaced key puts it home and removes the stray copy.
    tier.put(&d.misplaced).unwrap();
    assert_eq!(tier.damage().misplaced_keys, 0);
    let stray_shard = std::fs::read_to_string(d.dir.path().join(shard_file_name(7))).unwrap();
    assert!(!stray_shard.contains(&d.misplaced.key), "{stray_shard}");

    // Writing an unreadable key again makes it readable; deleting an invalid one removes it.
    tier.get(&d.unknown_key).unwrap_err();
    assert_eq!(tier.damage().corrupt_entries, 1);
    let readable = entry(&d.unknown_key, 12);
    tier.put(&readable).unwrap();
    assert_eq!(tier.damage().corrupt_entries, 0);
    assert_eq!(tier.get(&d.unknown_key).unwrap().as_ref(), Some(&readable));
    assert!(tier.delete(&d.invalid_key).unwrap());
    let stray_lines = JsonlDamage {
        undecodable_lines: 2,
        non_entry_lines: 3,
        ..JsonlDamage::default()
    };
    assert_eq!(
        tier.damage(),
        JsonlDamage {
            stray_temp_files: 1,
            ..stray_lines
        }
    );
    assert_eq!(open(d.dir.path()).damage(), stray_lines);

    // The operator's removal drops the lines nothing can read.
    assert_eq!(tier.remove_unreadable().unwrap(), 5);
    assert_eq!(std::fs::read_to_string(&messy_path).unwrap().lines().count(), 2);
    assert!(open(d.dir.path()).damage().is_clean());
}
