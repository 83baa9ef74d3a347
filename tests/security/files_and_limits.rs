//! Files another local user can plant in a shared cache directory, and inputs too large to
//! hold (issue 24):
//!
//! - a shard `shard_NN.jsonl` that is a symbolic link to a file of ours is refused with a typed
//!   error ([`TierError::Io`] naming the path and the link), and the file it points to is left
//!   byte for byte as it was after a put;
//! - `l2_cache.db`, the L3 database and their `-wal` file as symbolic links to an existing
//!   SQLite database: refused, the database unchanged;
//! - `warm_from_file` on a link to `/dev/urandom` or on a FIFO: a typed error at once;
//! - `export_to_file` over a link, a FIFO or a directory: a typed error, nothing replaced;
//! - a 300 MB shard line, a 200 MB warm CSV field or JSONL line, a 400 MB warm file of 100,000
//!   rows: read with peak memory far below their size;
//! - a `.json` warm document over `MAX_WARM_JSON_BYTES`: refused by its size, nothing read.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, Instant};

use pw_cache::{
    CacheConfig, CacheEntry, CacheTier, CacheTierConfig, JsonlTier, L2BackendType, ManagerError, SqliteL2Tier,
    SqliteL3Tier, TierError, WarmFileError,
};
use pw_cache_tests::managers::{config, open, test_ring};

/// A file of someone else's (mode 0600) with some content; its bytes.
fn victim(path: &Path) -> Vec<u8> {
    let bytes = b"root:x:0:0:root:/root:/bin/bash\nsomeone else's file, not a cache\n".to_vec();
    fs::write(path, &bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    bytes
}

/// An existing SQLite database with a table and a row; its bytes.
fn victim_db(path: &Path) -> Vec<u8> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE secrets (v TEXT); INSERT INTO secrets VALUES ('theirs');")
        .unwrap();
    drop(conn);
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    fs::read(path).unwrap()
}

fn entry(url: &str) -> CacheEntry {
    CacheEntry::new(url, "planted", 3600).unwrap()
}

/// Asserts `e` is a `TierError::Io` on `path` saying the path is a symbolic link.
fn assert_refused_link(e: &TierError, path: &Path) {
    match e {
        TierError::Io { path: p, source, .. } => {
            assert_eq!(p, path, "{e}");
            assert!(source.to_string().contains("symbolic link"), "{e}");
        }
        other => panic!("expected TierError::Io, got {other:?}"),
    }
}

#[test]
fn shard_symlinked_to_another_file_is_refused_and_the_file_unchanged() {
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("root-only");
    let before = victim(&target);
    let dir = root.path().join("l2");
    fs::create_dir(&dir).unwrap();
    let cfg = CacheTierConfig::unbounded();
    let plant = || {
        for id in 0..16 {
            symlink(&target, dir.join(format!("shard_{id:02}.jsonl"))).unwrap();
        }
    };
    // Planted after the tier opened: the put's exclusive-lock open refuses the link.
    let tier = JsonlTier::open(&dir, &cfg, test_ring()).unwrap();
    plant();
    let a = entry("http://10.24.0.1:8080");
    let e = tier.put(&a).unwrap_err();
    let TierError::Io { path, .. } = &e else {
        panic!("expected TierError::Io, got {e:?}");
    };
    assert_refused_link(&e, path);
    assert!(
        path.starts_with(&dir) && path.to_string_lossy().ends_with(".jsonl"),
        "{e}"
    );
    assert!(tier.get(&a.key).is_err(), "a get refuses the link too");
    drop(tier);
    // Planted before: opening (which reads the shards) refuses it.
    let Err(e) = JsonlTier::open(&dir, &cfg, test_ring()) else {
        panic!("a tier over symlinked shards opened");
    };
    assert_refused_link(&e, &dir.join("shard_00.jsonl"));
    assert_eq!(fs::read(&target).unwrap(), before, "the linked file is unchanged");
    assert_eq!(fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn shard_that_is_a_fifo_is_refused_without_blocking() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("l2");
    fs::create_dir(&dir).unwrap();
    let started = Instant::now();
    let tier = JsonlTier::open(&dir, &CacheTierConfig::unbounded(), test_ring()).unwrap();
    for id in 0..16 {
        mkfifo(&dir.join(format!("shard_{id:02}.jsonl")));
    }
    let e = tier.put(&entry("http://10.24.0.2:8080")).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    drop(tier);
    let Err(e) = JsonlTier::open(&dir, &CacheTierConfig::unbounded(), test_ring()) else {
        panic!("a tier over FIFO shards opened");
    };
    assert!(e.to_string().contains("not a regular file"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn l2_database_symlinked_to_an_existing_database_is_refused_and_unchanged() {
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("root.db");
    let before = victim_db(&target);
    let dir = root.path().join("l2");
    fs::create_dir(&dir).unwrap();
    let db = dir.join("l2_cache.db");
    symlink(&target, &db).unwrap();
    let Err(e) = SqliteL2Tier::open(&dir, &CacheTierConfig::unbounded(), test_ring()) else {
        panic!("a symlinked l2_cache.db is refused");
    };
    assert_refused_link(&e, &db);
    assert_eq!(fs::read(&target).unwrap(), before, "the linked database is unchanged");
    assert!(!dir.join("l2_cache.db-wal").exists() && !root.path().join("root.db-wal").exists());
}

#[test]
fn l3_database_symlinked_to_an_existing_database_is_refused_and_unchanged() {
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("root.db");
    let before = victim_db(&target);
    let db = root.path().join("cache.db");
    symlink(&target, &db).unwrap();
    let Err(e) = SqliteL3Tier::open(&db, &CacheTierConfig::unbounded(), test_ring()) else {
        panic!("a symlinked L3 database is refused");
    };
    assert_refused_link(&e, &db);
    assert_eq!(fs::read(&target).unwrap(), before, "the linked database is unchanged");
}

#[test]
fn database_log_symlinked_elsewhere_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("root-only");
    let before = victim(&target);
    let dir = root.path().join("l2");
    fs::create_dir(&dir).unwrap();
    let wal = dir.join("l2_cache.db-wal");
    symlink(&target, &wal).unwrap();
    let Err(e) = SqliteL2Tier::open(&dir, &CacheTierConfig::unbounded(), test_ring()) else {
        panic!("a symlinked -wal is refused");
    };
    assert_refused_link(&e, &wal);
    let l3 = root.path().join("l3.db");
    let l3_shm = root.path().join("l3.db-shm");
    symlink(&target, &l3_shm).unwrap();
    let Err(e) = SqliteL3Tier::open(&l3, &CacheTierConfig::unbounded(), test_ring()) else {
        panic!("a symlinked -shm is refused");
    };
    assert_refused_link(&e, &l3_shm);
    assert_eq!(fs::read(&target).unwrap(), before);
}

fn manager(dir: &Path) -> pw_cache::CacheManager {
    let config: CacheConfig = config(dir, L2BackendType::Jsonl, 100).build().unwrap();
    open(config, &test_ring(), None)
}

#[test]
fn warm_from_a_link_to_dev_urandom_or_a_fifo_fails_at_once() {
    let root = tempfile::tempdir().unwrap();
    let cache = manager(&root.path().join("cache"));
    for name in ["x.jsonl", "x.csv", "x.json"] {
        let link = root.path().join(name);
        symlink("/dev/urandom", &link).unwrap();
        let started = Instant::now();
        let e = cache.warm_from_file(&link, None).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{name}: took {:?}",
            started.elapsed()
        );
        assert!(matches!(e, ManagerError::Warm(_)), "{e:?}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }
    let fifo = root.path().join("f.jsonl");
    mkfifo(&fifo);
    let started = Instant::now();
    let e = cache.warm_from_file(&fifo, None).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(e.to_string().contains("not a regular file"), "{e}");
    // A link to a regular file is refused too: warm files are named, not followed.
    let real = root.path().join("real.jsonl");
    fs::write(&real, "").unwrap();
    let link = root.path().join("link.jsonl");
    symlink(&real, &link).unwrap();
    assert!(cache.warm_from_file(&link, None).is_err());
    assert!(cache.warm_from_file(&real, None).is_ok());
}

#[test]
fn export_does_not_replace_a_link_a_fifo_or_a_directory() {
    let root = tempfile::tempdir().unwrap();
    let cache = manager(&root.path().join("cache"));
    cache.put(&entry("http://10.24.0.3:8080")).unwrap();
    let target = root.path().join("root-only");
    let before = victim(&target);
    let link = root.path().join("out.jsonl");
    symlink(&target, &link).unwrap();
    let e = cache.export_to_file(&link).unwrap_err();
    assert!(matches!(e, ManagerError::Export { .. }), "{e:?}");
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert!(
        fs::symlink_metadata(&link).unwrap().file_type().is_symlink(),
        "the link is not replaced"
    );
    assert_eq!(fs::read(&target).unwrap(), before);
    let fifo = root.path().join("fifo.jsonl");
    mkfifo(&fifo);
    let e = cache.export_to_file(&fifo).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    let sub = root.path().join("sub.jsonl");
    fs::create_dir(&sub).unwrap();
    let e = cache.export_to_file(&sub).unwrap_err();
    assert!(e.to_string().contains("directory"), "{e}");
    // A regular file is replaced as before.
    let out = root.path().join("plain.jsonl");
    fs::write(&out, "old\n").unwrap();
    assert_eq!(cache.export_to_file(&out).unwrap().exported, 1);
}

/// The high-water mark of this process's resident memory, in bytes (`VmHWM`).
fn peak_resident() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Peak memory allowed to a child that reads a file with one huge line.
const PEAK_LIMIT: u64 = 512 << 20;

/// The address space a child that reads a huge line runs in (`ulimit -v`): more than the peak
/// allowed (threads reserve address space they never touch), far less than reading the line
/// whole would take with its copies, so a child that reads it whole aborts instead of passing.
const ADDRESS_SPACE_LIMIT: u64 = 1 << 30;

/// Appends `len` bytes of `fill` and a `\n` to `path`, 8 MiB at a time.
fn append_long_line(path: &Path, prefix: &[u8], fill: u8, len: usize) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(prefix).unwrap();
    let block = vec![fill; 8 << 20];
    let mut left = len - prefix.len();
    while left > 0 {
        let n = left.min(block.len());
        f.write_all(&block[..n]).unwrap();
        left -= n;
    }
    f.write_all(b"\n").unwrap();
}

const BIG_LINE_CHILD: &str = "PW_CACHE_BIG_LINE_CHILD";
const BIG_LINE: usize = 300 << 20;

/// A 300 MB line in a shard (planted between two puts): a child process opens the tier, reads
/// an entry of that shard, sees the line counted as undecodable, compacts the shard (which
/// carries the line over byte for byte) and puts again, its peak memory staying under 512 MB.
#[test]
fn a_300_mb_shard_line_is_skipped_counted_and_kept_with_bounded_memory() {
    if let Ok(dir) = std::env::var(BIG_LINE_CHILD) {
        let dir = Path::new(&dir);
        let before = peak_resident();
        let tier = JsonlTier::open(dir, &CacheTierConfig::unbounded(), pw_cache_tests::fixture_ring()).unwrap();
        let a = entry("http://10.24.1.1:8080");
        assert_eq!(tier.get(&a.key).unwrap().unwrap().proxy_url, a.proxy_url);
        assert_eq!(tier.damage().undecodable_lines, 1);
        assert_eq!(tier.compact().unwrap(), 1, "the superseded line makes a rewrite");
        tier.put(&entry("http://10.24.1.2:8080")).unwrap();
        assert_eq!(tier.damage().undecodable_lines, 1);
        let after = peak_resident();
        fs::write(dir.join("peak"), format!("{before} {after}")).unwrap();
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("l2");
    let a = entry("http://10.24.1.1:8080");
    {
        let tier = JsonlTier::open(&dir, &CacheTierConfig::unbounded(), pw_cache_tests::fixture_ring()).unwrap();
        tier.put(&a).unwrap();
        tier.put(&a).unwrap();
    }
    let shard = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".jsonl"))
        .unwrap();
    append_long_line(&shard, br#"{"key": "big", "padding": ""#, b'a', BIG_LINE);
    let started = Instant::now();
    let status = pw_cache_tests::child_process::spawn_self_with_memory_limit(
        module_path!(),
        "a_300_mb_shard_line_is_skipped_counted_and_kept_with_bounded_memory",
        BIG_LINE_CHILD,
        dir.to_string_lossy().into_owned(),
        ADDRESS_SPACE_LIMIT,
    )
    .wait()
    .unwrap();
    assert!(status.success(), "the child failed");
    let peak = fs::read_to_string(dir.join("peak")).unwrap();
    let (before, after) = peak.split_once(' ').unwrap();
    let (before, after): (u64, u64) = (before.parse().unwrap(), after.parse().unwrap());
    eprintln!("child: VmHWM {before} -> {after} bytes, {:?}", started.elapsed());
    assert!(
        after < PEAK_LIMIT,
        "peak resident memory {after} bytes (before: {before})"
    );
    // The line is still there, byte for byte: its prefix, then 300 MB of `a` and a newline.
    assert!(count_byte(&shard, b'a') as usize >= BIG_LINE - 40);
    let len = fs::metadata(&shard).unwrap().len() as usize;
    assert!(len > BIG_LINE && len < BIG_LINE + 4096, "{len}");
}

/// How many bytes of the file at `path` are `byte` (read 8 MiB at a time).
fn count_byte(path: &Path, byte: u8) -> u64 {
    use std::io::Read;
    let mut f = fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 8 << 20];
    let mut count = 0;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return count;
        }
        count += buf[..n].iter().filter(|&&b| b == byte).count() as u64;
    }
}

/// The longest line this library writes, an entry with every text field at its limit and made
/// of the characters JSON escapes longest, is within `MAX_ENTRY_LINE_BYTES`, so within
/// `MAX_LINE_BYTES`: no line of ours is ever skipped as over-long.
#[test]
fn our_longest_shard_line_is_within_the_line_limit() {
    use pw_cache::model::Secret;
    use pw_cache::model::limits::{
        MAX_CREDENTIAL_BYTES, MAX_ENTRY_LINE_BYTES, MAX_KEY_BYTES, MAX_LAST_HEALTH_ERROR_BYTES, MAX_LINE_BYTES,
        MAX_PROXY_URL_BYTES, MAX_SOURCE_BYTES,
    };
    let root = tempfile::tempdir().unwrap();
    let tier = JsonlTier::open(root.path(), &CacheTierConfig::unbounded(), test_ring()).unwrap();
    let host = "h".repeat(MAX_PROXY_URL_BYTES - "http://:8080".len());
    // Control characters are written as `\u00XX` (6 bytes for 1).
    let worst = |n: usize| "\u{1}".repeat(n);
    let mut e = CacheEntry::new(format!("http://{host}:8080"), worst(MAX_SOURCE_BYTES), 3600)
        .unwrap()
        .with_key(worst(MAX_KEY_BYTES))
        .with_credentials(
            Some(Secret::new(worst(MAX_CREDENTIAL_BYTES))),
            Some(Secret::new(worst(MAX_CREDENTIAL_BYTES))),
        );
    e.last_health_error = Some(worst(MAX_LAST_HEALTH_ERROR_BYTES));
    assert_eq!(e.proxy_url.len(), MAX_PROXY_URL_BYTES);
    tier.put(&e).unwrap();
    let longest = fs::read_dir(root.path())
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".jsonl"))
        .flat_map(|p| {
            fs::read(p)
                .unwrap()
                .split(|&b| b == b'\n')
                .map(<[u8]>::len)
                .collect::<Vec<_>>()
        })
        .max()
        .unwrap();
    eprintln!("longest line {longest} bytes; bound {MAX_ENTRY_LINE_BYTES}; limit {MAX_LINE_BYTES}");
    assert!(
        longest > 6 * (MAX_KEY_BYTES + MAX_SOURCE_BYTES),
        "the worst characters were escaped: {longest}"
    );
    assert!(longest <= MAX_ENTRY_LINE_BYTES, "{longest}");
    assert_eq!(tier.get(&e.key).unwrap().unwrap().source, e.source);
}

const BIG_FIELD_CHILD: &str = "PW_CACHE_BIG_FIELD_CHILD";
const BIG_FIELD: usize = 200 << 20;

/// A warm file with a 200 MB CSV field (a password) between two good rows: a child process
/// warms from it; the row is skipped and counted as failed, the others loaded, quickly and
/// with peak memory under 512 MB. The same for a 200 MB JSONL line.
#[test]
fn a_200_mb_csv_field_or_jsonl_line_is_skipped_and_counted_with_bounded_memory() {
    if let Ok(spec) = std::env::var(BIG_FIELD_CHILD) {
        let (dir, file) = spec.split_once('|').unwrap();
        let dir = Path::new(dir);
        let before = peak_resident();
        let started = Instant::now();
        let report = manager(&dir.join("cache")).warm_from_file(file, None).unwrap();
        let took = started.elapsed();
        assert_eq!((report.loaded, report.failed), (2, 1), "{report:?}");
        let reason = &report.issues[0].reason;
        assert!(reason.contains("bytes long, more than the limit"), "{reason}");
        assert!(!reason.contains("pppp"), "{reason}");
        let after = peak_resident();
        fs::write(dir.join("peak"), format!("{before} {after} {}", took.as_millis())).unwrap();
        return;
    }
    for ext in ["csv", "jsonl"] {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join(format!("warm.{ext}"));
        let (head, prefix, tail) = if ext == "csv" {
            (
                "proxy_url,username,password\nhttp://10.24.2.1:8080,u,p\n",
                "http://10.24.2.2:8080,u,",
                "http://10.24.2.3:8080,u,p\n",
            )
        } else {
            (
                "{\"proxy_url\": \"http://10.24.2.1:8080\"}\n",
                "{\"proxy_url\": \"http://10.24.2.2:8080\", \"password\": \"",
                "{\"proxy_url\": \"http://10.24.2.3:8080\"}\n",
            )
        };
        fs::write(&file, head).unwrap();
        let closing: &[u8] = if ext == "csv" { b"" } else { b"\"}" };
        append_long_line(&file, prefix.as_bytes(), b'p', BIG_FIELD - closing.len());
        // (append_long_line ends the line; put the JSON closing before it by rewriting the end.)
        if !closing.is_empty() {
            let f = fs::OpenOptions::new().write(true).open(&file).unwrap();
            let len = f.metadata().unwrap().len();
            std::os::unix::fs::FileExt::write_at(&f, b"\"}\n", len - 1).unwrap();
        }
        fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, tail.as_bytes()))
            .unwrap();
        let status = pw_cache_tests::child_process::spawn_self_with_memory_limit(
            module_path!(),
            "a_200_mb_csv_field_or_jsonl_line_is_skipped_and_counted_with_bounded_memory",
            BIG_FIELD_CHILD,
            format!("{}|{}", root.path().display(), file.display()),
            ADDRESS_SPACE_LIMIT,
        )
        .wait()
        .unwrap();
        assert!(status.success(), "{ext}: the child failed");
        let peak = fs::read_to_string(root.path().join("peak")).unwrap();
        let v: Vec<u64> = peak.split(' ').map(|s| s.parse().unwrap()).collect();
        eprintln!("{ext}: child VmHWM {} -> {} bytes, warm took {} ms", v[0], v[1], v[2]);
        assert!(v[1] < PEAK_LIMIT, "{ext}: peak resident memory {} bytes", v[1]);
        assert!(v[2] < 20_000, "{ext}: took {} ms", v[2]);
    }
}

/// A field over its model limit (a 5,000-byte password, a 600-byte key) skips its row, named
/// without its value; the others load.
#[test]
fn warm_fields_over_the_model_limits_fail_their_row() {
    let root = tempfile::tempdir().unwrap();
    let cache = manager(&root.path().join("cache"));
    let file = root.path().join("w.csv");
    let long_password = "s".repeat(5000);
    let long_key = "k".repeat(600);
    fs::write(
        &file,
        format!(
            "proxy_url,password,key\nhttp://10.24.3.1:8080,{long_password},\nhttp://10.24.3.2:8080,,{long_key}\nhttp://10.24.3.3:8080,ok,\n"
        ),
    )
    .unwrap();
    let report = cache.warm_from_file(&file, None).unwrap();
    assert_eq!((report.loaded, report.skipped), (1, 2), "{report:?}");
    assert!(
        report.issues[0].reason.contains("field `password` is 5000 bytes long"),
        "{report:?}"
    );
    assert!(
        report.issues[1].reason.contains("field `key` is 600 bytes long"),
        "{report:?}"
    );
    assert!(!format!("{report:?}").contains("sssss"));
}

const MANY_ROWS_CHILD: &str = "PW_CACHE_MANY_ROWS_CHILD";
/// Rows of the big warm file, each with [`ROW_PADDING`] bytes of an ignored field: 400 MB made
/// cheaply (each row stored costs more time than 4 KB of reading, in a debug build).
const MANY_ROWS: u64 = 100_000;
const ROW_PADDING: usize = 4000;
/// Peak memory allowed to a child warming from the (400 MB) file.
const MANY_ROWS_PEAK_LIMIT: u64 = 256 << 20;

/// Writes the big warm file: `MANY_ROWS` distinct proxies, each row padded by an ignored field
/// (a `padding` column, a `padding` member) to about 4 KB; its size.
fn write_many_rows(path: &Path, ext: &str) -> u64 {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(path).unwrap());
    let padding = "p".repeat(ROW_PADDING);
    if ext == "csv" {
        writeln!(out, "proxy_url,source,padding").unwrap();
    }
    for i in 0..MANY_ROWS {
        let url = format!("http://10.{}.{}.{}:8080", i >> 16, (i >> 8) & 255, i & 255);
        if ext == "csv" {
            writeln!(out, "{url},many,{padding}").unwrap();
        } else {
            writeln!(
                out,
                r#"{{"proxy_url": "{url}", "source": "many", "padding": "{padding}"}}"#
            )
            .unwrap();
        }
    }
    out.flush().unwrap();
    drop(out);
    fs::metadata(path).unwrap().len()
}

/// A 400 MB warm file of 100,000 rows (about 4 KB each, most of it an ignored field), as CSV
/// and as JSONL: a child process warms from it into an L1-only cache; every row is loaded,
/// progress ends at the file's size, and the child's peak memory stays under 256 MB (the file
/// was read whole before: its size and more).
#[test]
fn a_400_mb_warm_file_of_many_rows_is_read_with_bounded_memory() {
    if let Ok(spec) = std::env::var(MANY_ROWS_CHILD) {
        let (dir, file) = spec.split_once('|').unwrap();
        let config = config(&Path::new(dir).join("cache"), L2BackendType::Jsonl, 1000)
            .l2_config(CacheTierConfig::disabled())
            .l3_config(CacheTierConfig::disabled())
            .build()
            .unwrap();
        let cache = open(config, &test_ring(), None);
        let before = peak_resident();
        let started = Instant::now();
        let last = std::sync::Mutex::new((0, 0, 0u64));
        let report = cache
            .warm_from_file_with_progress(file, None, &|read, size| {
                let mut last = last.lock().unwrap();
                assert!(read >= last.0 && read <= size, "{read} after {}, of {size}", last.0);
                *last = (read, size, last.2 + 1);
            })
            .unwrap();
        let took = started.elapsed();
        assert_eq!(
            (report.loaded, report.skipped, report.failed, report.replaced),
            (MANY_ROWS, 0, 0, 0),
            "{:?}",
            report.issues.first()
        );
        let (read, size, calls) = *last.lock().unwrap();
        assert_eq!((read, size), (fs::metadata(file).unwrap().len(), read));
        let after = peak_resident();
        fs::write(
            Path::new(dir).join("peak"),
            format!("{before} {after} {} {calls}", took.as_millis()),
        )
        .unwrap();
        return;
    }
    for ext in ["csv", "jsonl"] {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join(format!("many.{ext}"));
        let size = write_many_rows(&file, ext);
        assert!(size > 400_000_000, "{ext}: {size} bytes");
        let status = pw_cache_tests::child_process::spawn_self_with_memory_limit(
            module_path!(),
            "a_400_mb_warm_file_of_many_rows_is_read_with_bounded_memory",
            MANY_ROWS_CHILD,
            format!("{}|{}", root.path().display(), file.display()),
            ADDRESS_SPACE_LIMIT,
        )
        .wait()
        .unwrap();
        assert!(status.success(), "{ext}: the child failed");
        let peak = fs::read_to_string(root.path().join("peak")).unwrap();
        let v: Vec<u64> = peak.split(' ').map(|s| s.parse().unwrap()).collect();
        eprintln!(
            "{ext}: {size} bytes, child VmHWM {} -> {} bytes, warm took {} ms, {} progress calls",
            v[0], v[1], v[2], v[3]
        );
        assert!(
            v[1] < MANY_ROWS_PEAK_LIMIT,
            "{ext}: peak resident memory {} bytes for a {size}-byte file",
            v[1]
        );
    }
}

/// A `.json` warm document one byte over `MAX_WARM_JSON_BYTES` (a sparse file: no disk) is
/// refused by its size before anything is read, naming the path, its size and the limit and
/// pointing to JSONL; `check_warm_file` refuses it alike, and nothing is stored. At the limit it
/// is read (and, being NUL bytes, is invalid JSON).
#[test]
fn a_json_warm_document_over_the_limit_is_refused_by_its_size() {
    use pw_cache::model::limits::MAX_WARM_JSON_BYTES;
    use pw_cache::warm_file::check_warm_file;
    let root = tempfile::tempdir().unwrap();
    let cache = manager(&root.path().join("cache"));
    let file = root.path().join("huge.json");
    fs::File::create(&file)
        .unwrap()
        .set_len(MAX_WARM_JSON_BYTES + 1)
        .unwrap();
    let started = Instant::now();
    let e = cache.warm_from_file(&file, None).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    match &e {
        ManagerError::Warm(WarmFileError::TooLarge { path, len, limit }) => {
            assert_eq!(
                (path, *len, *limit),
                (&file, MAX_WARM_JSON_BYTES + 1, MAX_WARM_JSON_BYTES)
            );
        }
        other => panic!("expected WarmFileError::TooLarge, got {other:?}"),
    }
    let message = e.to_string();
    for part in [
        &file.display().to_string(),
        "67108865 bytes",
        "limit of 67108864 bytes",
        "JSONL",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    let checked = check_warm_file(&file).unwrap_err();
    assert_eq!(checked.to_string(), message);
    let out = root.path().join("out.jsonl");
    assert_eq!(cache.export_to_file(&out).unwrap().exported, 0, "nothing stored");

    fs::File::create(&file).unwrap().set_len(MAX_WARM_JSON_BYTES).unwrap();
    let e = cache.warm_from_file(&file, None).unwrap_err();
    assert!(matches!(e, ManagerError::Warm(WarmFileError::Json { .. })), "{e:?}");
}

/// A warm file of junk lines keeps the first `MAX_WARM_ISSUES_KEPT` issues and counts the
/// rest: the report does not grow with the file.
#[test]
fn a_warm_report_keeps_a_bounded_number_of_issues_and_counts_the_rest() {
    use pw_cache::MAX_WARM_ISSUES_KEPT;
    let root = tempfile::tempdir().unwrap();
    let cache = manager(&root.path().join("cache"));
    let file = root.path().join("junk.jsonl");
    let junk = MAX_WARM_ISSUES_KEPT + 50;
    let mut text = String::from("{\"proxy_url\": \"http://10.24.4.1:8080\"}\n");
    text.push_str(&"not json\n".repeat(junk));
    text.push_str("{\"proxy_url\": \"http://10.24.4.2:8080\"}\n");
    fs::write(&file, text).unwrap();
    let report = cache.warm_from_file(&file, None).unwrap();
    assert_eq!((report.loaded, report.failed), (2, junk as u64));
    assert_eq!(report.issues.len(), MAX_WARM_ISSUES_KEPT);
    assert_eq!(report.issues_omitted, 50);
    assert_eq!(report.issues[0].location.to_string(), "line 2");
}
