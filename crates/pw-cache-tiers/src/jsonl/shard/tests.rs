//! Unit tests of one shard: blank lines, ranks, unreadable entries, reading in chunks.

use super::*;

#[test]
fn blank_is_what_python_strips() {
    for blank in [&b""[..], b"  ", b"\t\x0b\x0c", b"\x1c\x1f", "\u{a0}\u{3000}".as_bytes()] {
        assert!(is_blank(blank), "{blank:?}");
    }
    for not_blank in [&b"{}"[..], b" x", b"\xff"] {
        assert!(!is_blank(not_blank), "{not_blank:?}");
    }
}

#[test]
fn rank_keeps_first_insertion_and_latest_use() {
    let old = Rank {
        used: 5,
        hits: 9,
        born: 1,
    };
    let new = Rank {
        used: 7,
        hits: 2,
        born: 6,
    };
    assert_eq!(
        new.after(Some(old)),
        Rank {
            used: 7,
            hits: 9,
            born: 1
        }
    );
    assert_eq!(new.after(None), new);
}

#[test]
fn reading_an_unreadable_entry_takes_back_its_use() {
    let dir = tempfile::tempdir().unwrap();
    let key = (0..).map(|i| format!("k{i}")).find(|k| shard_of(k) == 3).unwrap();
    let line = format!(
        "{{\"key\": \"{key}\", \"proxy_url\": \"http://h:1\", \"source\": \"s\", \"fetch_time\": \
         \"2000-01-01T00:00:00+00:00\", \"last_accessed\": \"2000-01-01T00:00:00+00:00\", \"access_count\": 4, \
         \"ttl_seconds\": 1, \"expires_at\": \"2000-01-01T00:00:01+00:00\", \"password_encrypted\": \"zz\"}}\n"
    );
    fs::write(dir.path().join(super::super::shard_file_name(3)), line).unwrap();
    let mut shard = Shard::new(dir.path(), 3);
    shard.sync().unwrap();
    let rank = |sh: &Shard| sh.index[&key].rank().unwrap();
    let stored = rank(&shard);
    let Some(Found::Line { offset, prior, .. }) = shard.find(&key, Some(i64::MAX - 1)) else {
        panic!("the line is indexed");
    };
    assert_eq!(prior, Some(stored));
    assert_ne!(rank(&shard), stored, "a lookup records a use");
    // The lookup found the token unreadable: its use is taken back.
    assert!(shard.mark_corrupt(&key, offset, prior), "newly known");
    assert_eq!(rank(&shard), stored);
    // Once known, a lookup records nothing.
    let Some(Found::Line { prior, .. }) = shard.find(&key, Some(i64::MAX)) else {
        panic!("the line is indexed");
    };
    assert_eq!((prior, rank(&shard)), (None, stored));
    assert!(!shard.mark_corrupt(&key, offset, prior), "known already");
    let mut damage = JsonlDamage::default();
    shard.add_damage(&mut damage);
    assert_eq!(damage.corrupt_entries, 1);
}

#[test]
fn micros_rounds_down() {
    let t = OffsetDateTime::from_unix_timestamp_nanos(-1).unwrap();
    assert_eq!(micros(t), -1);
    let t = OffsetDateTime::from_unix_timestamp_nanos(1_999).unwrap();
    assert_eq!(micros(t), 1);
}

/// Every line of `bytes` as `(offset, content length, terminator length)`, split in memory
/// (the reader's rule: `\n`, `\r\n`, `\r`).
fn split(bytes: &[u8]) -> Vec<(u64, usize, u8)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let (len, term) = match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(i) if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') => (i, 2),
            Some(i) => (i, 1),
            None => (rest.len(), 0),
        };
        out.push((pos as u64, len, term as u8));
        pos += len + term;
    }
    out
}

/// Lines across read chunks (a `\r\n` split by a chunk's end, a `\r` last in a chunk,
/// lines over the limit, one that runs to the end) are found where an in-memory split finds
/// them; over-long ones are undecodable strays like the rest.
#[test]
fn chunked_reading_finds_the_lines_an_in_memory_split_finds() {
    let x = |n: usize| vec![b'x'; n];
    let cases: Vec<Vec<u8>> = vec![
        // `\r\n` straddling the first chunk's end.
        [x(READ_CHUNK - 1), b"\r\nab\n".to_vec()].concat(),
        // A lone `\r` last in the chunk, then a line.
        [x(READ_CHUNK - 1), b"\rcd\r\n".to_vec()].concat(),
        // An over-long line ending in `\r\n` split by a chunk's end, then more.
        [x(2 * READ_CHUNK - 1), b"\r\n".to_vec(), x(10), b"\r".to_vec()].concat(),
        // Short lines, then an over-long line that runs to the end unterminated.
        [b"a\nb\r\n".to_vec(), x(MAX_LINE_BYTES + READ_CHUNK + 7)].concat(),
        // Exactly at the limit, and one over it.
        [
            x(MAX_LINE_BYTES),
            b"\n".to_vec(),
            x(MAX_LINE_BYTES + 1),
            b"\n".to_vec(),
            x(3),
        ]
        .concat(),
        // An over-long line whose `\r` is the file's last byte.
        [x(MAX_LINE_BYTES + 1), b"\r".to_vec()].concat(),
    ];
    for (n, bytes) in cases.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let mut shard = Shard::new(dir.path(), 0);
        fs::write(&shard.path, bytes).unwrap();
        shard.sync().unwrap();
        let got: Vec<(u64, usize, u8)> = shard.stray.iter().map(|l| (l.offset, l.len, l.term)).collect();
        assert_eq!(got, split(bytes), "case {n}");
        assert_eq!(shard.counts.undecodable, got.len() as u64, "case {n}");
        assert_eq!(
            shard.unterminated,
            bytes.last().is_some_and(|&b| b != b'\n' && b != b'\r'),
            "case {n}"
        );
        // A rewrite carries every line over byte for byte (a missing last terminator added).
        let guard = shard.lock_exclusive().unwrap();
        shard.counts.blank = 1; // force the rewrite
        let (done, _guard) = shard.rewrite(guard, false, |_, _, _| Verdict::Keep).unwrap();
        assert_eq!(done.carried_stray, got.len() as u64);
        let mut want = bytes.clone();
        if shard_unterminated_tail(bytes) {
            want.push(b'\n');
        }
        assert_eq!(fs::read(&shard.path).unwrap(), want, "case {n}");
    }
}

fn shard_unterminated_tail(bytes: &[u8]) -> bool {
    bytes.last().is_some_and(|&b| b != b'\n' && b != b'\r')
}
