use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/proxywhirl-0.3.3");

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join("warm").join(name)
}

fn read(name: &str) -> WarmFile {
    read_warm_file(&fixture(name)).unwrap()
}

fn parse(format: WarmFormat, text: &str) -> WarmFile {
    parse_warm_bytes(format, text.as_bytes(), Path::new("test")).unwrap()
}

/// The plaintext of a credential, or `token:<text>` for a token.
fn cred(c: &Option<WarmCredential>) -> Option<String> {
    c.as_ref().map(|c| match c {
        WarmCredential::Plain(s) => s.expose_secret().to_owned(),
        WarmCredential::Token(t) => format!("token:{t}"),
    })
}

/// (location, url, username, password, source, key) of every row.
type Summary = (
    RowLocation,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn summary(file: &WarmFile) -> Vec<Summary> {
    file.rows
        .iter()
        .map(|r| {
            (
                r.location,
                r.proxy_url.clone(),
                cred(&r.username),
                cred(&r.password),
                r.source.clone(),
                r.key.clone(),
            )
        })
        .collect()
}

fn s(text: &str) -> Option<String> {
    Some(text.to_owned())
}

fn row(location: RowLocation, url: &str) -> Summary {
    (location, url.to_owned(), None, None, None, None)
}

fn issues(file: &WarmFile) -> Vec<(RowLocation, IssueKind, &str)> {
    file.issues
        .iter()
        .map(|i| (i.location, i.kind, i.reason.as_str()))
        .collect()
}

/// The row or the skip reason of a single-row JSONL file.
fn one(line: &str) -> Result<WarmRow, String> {
    let file = parse(WarmFormat::Jsonl, line);
    match (file.rows.as_slice(), file.issues.as_slice()) {
        ([row], []) => Ok(row.clone()),
        ([], [issue]) => {
            assert_eq!(issue.kind, IssueKind::Skipped, "{issue}");
            Err(issue.reason.clone())
        }
        _ => panic!("expected one row or one issue: {file:?}"),
    }
}

fn url_of(proxy_url: &str) -> Result<String, String> {
    let line = serde_json::json!({ "proxy_url": proxy_url }).to_string();
    one(&line).map(|r| r.proxy_url)
}

/// Asserts that no secret appears in the file's Debug output nor in any reason.
fn assert_hidden(file: &WarmFile, secrets: &[&str]) {
    let debug = format!("{file:?}");
    let reasons: Vec<String> = file.issues.iter().map(ToString::to_string).collect();
    for secret in secrets {
        assert!(!debug.contains(secret), "{secret:?} in {debug}");
        for reason in &reasons {
            assert!(!reason.contains(secret), "{secret:?} in {reason}");
        }
    }
}

// --- fixtures written for proxywhirl 0.3.3 -----------------------------------------------

#[test]
fn fixture_warm_input_json() {
    let file = read("warm_input.json");
    assert_eq!(file.format, WarmFormat::Json);
    use RowLocation::Item;
    assert_eq!(
        summary(&file),
        vec![
            row(Item(1), "http://1.2.3.4:8080"),
            (
                Item(2),
                "http://5.6.7.8:3128".into(),
                s("alice"),
                s("s3cr3t"),
                s("json-src"),
                None
            ),
            (
                Item(3),
                "socks5://[2001:db8::1]:1080".into(),
                None,
                None,
                s("ipv6"),
                s("custom-key-1")
            ),
            (Item(9), "http://1.2.3.4:8080".into(), None, None, s("dup"), None),
            (Item(10), "http://9.9.9.9:9".into(), s("42"), None, s("7"), None),
            (
                Item(12),
                "http://пример.рф:8080".into(),
                s("пользователь"),
                s("пароль🔑"),
                None,
                None
            ),
            row(Item(13), "http://k.example:1"),
            (Item(14), "http://k2.example:1".into(), None, None, None, s("0")),
            (Item(15), "http://k3.example:1".into(), None, None, None, s("123")),
            row(Item(17), "http://extra.example:1"),
            (
                Item(18),
                "http://embedded.example:8080".into(),
                s("user"),
                s("pw"),
                None,
                None
            ),
            row(Item(20), "http://src-null.example:1"),
            row(Item(22), "http://spaces.example:1"),
        ]
    );
    let skipped = IssueKind::Skipped;
    assert_eq!(
        issues(&file),
        vec![
            (Item(4), skipped, "missing `proxy_url`"),
            (Item(5), skipped, "missing `proxy_url`"),
            (
                Item(6),
                skipped,
                "`proxy_url` is not a valid proxy URL: relative URL without a base"
            ),
            (Item(7), skipped, "missing `proxy_url`"),
            (Item(8), skipped, "not a JSON object (found string)"),
            (
                Item(11),
                skipped,
                "`proxy_url` is not a valid proxy URL: relative URL without a base"
            ),
            (Item(16), skipped, "not a JSON object (found array)"),
            (
                Item(19),
                skipped,
                "field `username` is a boolean; expected a string or a number"
            ),
            (
                Item(21),
                skipped,
                "field `username` is an object; expected a string or a number"
            ),
        ]
    );
    assert_eq!((file.rows.len(), file.skipped(), file.failed()), (13, 9, 0));
    assert_hidden(&file, &["alice", "s3cr3t", "пользователь", "пароль🔑", "user:pw"]);
}

#[test]
fn fixture_warm_input_jsonl() {
    let file = read("warm_input.jsonl");
    assert_eq!(file.format, WarmFormat::Jsonl);
    use RowLocation::Line;
    assert_eq!(
        summary(&file),
        vec![
            (
                Line(1),
                "http://10.0.0.1:8080".into(),
                s("jl-user"),
                s("jl-pass"),
                s("jsonl-src"),
                None
            ),
            row(Line(4), "http://10.0.0.2:8080"),
            (
                Line(9),
                "http://10.0.0.3:8080".into(),
                None,
                s("only-pass"),
                None,
                s("jl-custom")
            ),
            (
                Line(10),
                "http://10.0.0.1:8080".into(),
                None,
                None,
                s("jsonl-dup"),
                None
            ),
            (Line(11), "http://юникод.example:1".into(), s("ü"), None, None, None),
            row(Line(12), "http://trailing.example:1"),
        ]
    );
    let (skipped, failed) = (IssueKind::Skipped, IssueKind::Failed);
    assert_eq!(
        issues(&file),
        vec![
            (Line(5), failed, "invalid JSON: key must be a string at column 2"),
            (Line(6), skipped, "missing `proxy_url`"),
            (Line(7), skipped, "not a JSON object (found array)"),
            (Line(8), skipped, "not a JSON object (found string)"),
            (
                Line(13),
                failed,
                "invalid JSON: EOF while parsing a string at column 27"
            ),
        ]
    );
    assert_eq!((file.rows.len(), file.skipped(), file.failed()), (6, 3, 2));
    assert_hidden(&file, &["jl-user", "jl-pass", "only-pass"]);
}

#[test]
fn fixture_warm_input_csv() {
    let file = read("warm_input.csv");
    assert_eq!(file.format, WarmFormat::Csv);
    let at = |record, line| RowLocation::Row { record, line };
    assert_eq!(
        summary(&file),
        vec![
            (at(1, 2), "http://30.0.0.1:8080".into(), None, None, s("csv-src"), None),
            (
                at(2, 3),
                "http://30.0.0.2:8080".into(),
                s("csvuser"),
                s("csv,pass\"with\nnewline"),
                s("csv-src"),
                None
            ),
            row(at(4, 6), "http://30.0.0.3:8080"),
            (
                at(5, 7),
                "http://30.0.0.4:8080".into(),
                s("u4"),
                s("p4"),
                s("csv-src"),
                s("csv-custom-key")
            ),
            (
                at(6, 8),
                "socks5://30.0.0.5:1080".into(),
                s("ünï"),
                s("пароль"),
                None,
                None
            ),
            (
                at(7, 9),
                "http://30.0.0.1:8080".into(),
                s("dupuser"),
                s("duppass"),
                s("csv-dup"),
                None
            ),
            (
                at(9, 11),
                "http://30.0.0.6:8080".into(),
                s("spaced"),
                s("spaced"),
                s("src"),
                None
            ),
        ]
    );
    let skipped = IssueKind::Skipped;
    assert_eq!(
        issues(&file),
        vec![
            (at(3, 5), skipped, "missing `proxy_url`"),
            (
                at(8, 10),
                skipped,
                "`proxy_url` is not a valid proxy URL: relative URL without a base"
            ),
        ]
    );
    assert_hidden(&file, &["csv,pass", "duppass", "пароль", "csvuser"]);
}

#[test]
fn fixture_warm_bom_csv_reads_its_row() {
    let file = read("warm_bom.csv");
    assert_eq!(
        summary(&file),
        vec![(
            RowLocation::Row { record: 1, line: 2 },
            "http://32.0.0.1:80".into(),
            s("a"),
            None,
            None,
            None
        )]
    );
    assert!(file.issues.is_empty());
}

#[test]
fn fixture_warm_abort_json_skips_the_null_item_and_goes_on() {
    let file = read("warm_abort.json");
    assert_eq!(
        summary(&file),
        vec![
            row(RowLocation::Item(1), "http://21.0.0.1:80"),
            row(RowLocation::Item(3), "http://21.0.0.2:80"),
        ]
    );
    assert_eq!(
        issues(&file),
        vec![(
            RowLocation::Item(2),
            IssueKind::Skipped,
            "not a JSON object (found null)"
        )]
    );
}

#[test]
fn fixture_warm_abort_jsonl_skips_the_number_line_and_goes_on() {
    let file = read("warm_abort.jsonl");
    assert_eq!(
        summary(&file),
        vec![
            row(RowLocation::Line(1), "http://20.0.0.1:80"),
            row(RowLocation::Line(3), "http://20.0.0.2:80"),
        ]
    );
    assert_eq!(
        issues(&file),
        vec![(
            RowLocation::Line(2),
            IssueKind::Skipped,
            "not a JSON object (found number)"
        )]
    );
}

#[test]
fn fixture_whole_file_errors() {
    let err = read_warm_file(&fixture("warm_invalid.json")).unwrap_err();
    match &err {
        WarmFileError::Json {
            path,
            line,
            column,
            message,
        } => {
            assert!(path.ends_with("warm_invalid.json"));
            assert_eq!((*line, *column), (1, 37));
            assert_eq!(message, "EOF while parsing a value");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("warm_invalid.json: invalid JSON at line 1 column 37"),
        "{err}"
    );

    let err = read_warm_file(&fixture("warm_not_array.json")).unwrap_err();
    assert!(
        matches!(&err, WarmFileError::NotArray { found: "object", path } if path.ends_with("warm_not_array.json")),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("must be an array of objects, found object"),
        "{err}"
    );

    let err = read_warm_file(&fixture("warm_no_url_column.csv")).unwrap_err();
    match &err {
        WarmFileError::CsvHeader { path, reason } => {
            assert!(path.ends_with("warm_no_url_column.csv"));
            assert_eq!(
                reason,
                "no `proxy_url` column (columns found: `url`, `username`, `password`)"
            );
        }
        other => panic!("{other:?}"),
    }

    let err = read_warm_file(&fixture("warm_unsupported.txt")).unwrap_err();
    assert!(
        matches!(&err, WarmFileError::Unsupported { extension, .. } if extension == "txt"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .ends_with("warm_unsupported.txt: unsupported warm file extension `.txt`, expected .json, .jsonl or .csv"),
        "{err}"
    );

    let err = read_warm_file(&fixture("does_not_exist.jsonl")).unwrap_err();
    match &err {
        WarmFileError::Io { path, source } => {
            assert!(path.ends_with("does_not_exist.jsonl"));
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("does_not_exist.jsonl: cannot read"), "{err}");
}

#[test]
fn export_lines_drop_the_mask_and_move_embedded_credentials() {
    let path = Path::new(FIXTURES).join("export/export.jsonl");
    let file = read_warm_file(&path).unwrap();
    assert_eq!((file.rows.len(), file.issues.len()), (160, 0), "{:?}", file.issues);
    let with_credentials: Vec<_> = summary(&file)
        .into_iter()
        .filter(|r| r.2.is_some() || r.3.is_some())
        .map(|(loc, url, user, pass, _, _)| (loc, url, user, pass))
        .collect();
    assert_eq!(
        with_credentials,
        vec![
            (
                RowLocation::Line(3),
                "socks5://206.118.211.176:443".into(),
                s("embed"),
                s("pw")
            ),
            (
                RowLocation::Line(31),
                "http://69.28.168.141:80".into(),
                s("embed"),
                s("pw")
            ),
            (
                RowLocation::Line(158),
                "https://209.215.12.228:1080".into(),
                s("embed"),
                s("pw")
            ),
        ]
    );
    assert!(file.rows.iter().all(|r| !r.proxy_url.contains('@')));
    assert!(file.rows.iter().all(|r| r.key.is_some()));
    // 14 export lines have `"source": ""`: absent.
    assert_eq!(file.rows.iter().filter(|r| r.source.is_none()).count(), 14);
}

#[test]
fn shard_lines_give_tokens_and_refuse_double_credentials() {
    let path = Path::new(FIXTURES).join("jsonl_l2/shard_13.jsonl");
    let file = read_warm_file(&path).unwrap();
    // Line 1 and 7 have "embed:pw@" in the URL and encrypted fields: contradictory.
    let conflict = "credentials given both in `proxy_url` and in `username`/`password`";
    assert_eq!(
        issues(&file),
        vec![
            (RowLocation::Line(1), IssueKind::Skipped, conflict),
            (RowLocation::Line(7), IssueKind::Skipped, conflict),
        ]
    );
    assert_eq!(file.rows.len(), 12);
    let tokens: Vec<&str> = file
        .rows
        .iter()
        .flat_map(|r| [&r.username, &r.password])
        .filter_map(|c| match c {
            Some(WarmCredential::Token(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert!(!tokens.is_empty());
    // A Fernet token: version byte 0x80, so urlsafe base64 starting "gAAAAA".
    assert!(tokens.iter().all(|t| t.starts_with("gAAAAA")), "{tokens:?}");
    let debug = format!("{file:?}");
    assert!(tokens.iter().all(|t| !debug.contains(t)));
    assert!(debug.contains("Token(<"), "{debug}");
}

// --- formats -----------------------------------------------------------------------------

#[test]
fn format_from_path_is_case_insensitive() {
    assert_eq!(WarmFormat::from_path(Path::new("a/b.JSON")).unwrap(), WarmFormat::Json);
    assert_eq!(WarmFormat::from_path(Path::new("b.JsonL")).unwrap(), WarmFormat::Jsonl);
    assert_eq!(WarmFormat::from_path(Path::new("b.Csv")).unwrap(), WarmFormat::Csv);
    let err = WarmFormat::from_path(Path::new("noext")).unwrap_err();
    assert!(matches!(&err, WarmFileError::Unsupported { extension, .. } if extension.is_empty()));
    assert!(err.to_string().contains("extension (none)"), "{err}");
    assert!(WarmFormat::from_path(Path::new("x.json.gz")).is_err());
    assert_eq!(WarmFormat::Jsonl.to_string(), "JSONL");
    assert_eq!(WarmFormat::Csv.extension(), "csv");
}

#[test]
fn locations_display() {
    assert_eq!(RowLocation::Line(3).to_string(), "line 3");
    assert_eq!(RowLocation::Item(4).to_string(), "item 4");
    assert_eq!(RowLocation::Row { record: 2, line: 3 }.to_string(), "row 2 (line 3)");
    let issue = WarmIssue {
        location: RowLocation::Line(5),
        kind: IssueKind::Failed,
        reason: "invalid JSON: x".into(),
    };
    assert_eq!(issue.to_string(), "line 5: failed: invalid JSON: x");
}

#[test]
fn jsonl_crlf_bom_and_blank_lines() {
    let text = "\u{feff}{\"proxy_url\": \"http://a.example:1\"}\r\n\r\n  \t\r\n{\"proxy_url\": \"http://b.example:2\", \"password\": \"p\"}\r\n";
    let file = parse(WarmFormat::Jsonl, text);
    assert_eq!(
        summary(&file),
        vec![
            row(RowLocation::Line(1), "http://a.example:1"),
            (
                RowLocation::Line(4),
                "http://b.example:2".into(),
                None,
                s("p"),
                None,
                None
            ),
        ]
    );
    assert!(file.issues.is_empty());
    assert!(parse(WarmFormat::Jsonl, "").rows.is_empty());
}

#[test]
fn jsonl_invalid_utf8_line_fails_and_the_next_is_read() {
    let mut bytes = b"{\"proxy_url\": \"http://a.example:1\", \"source\": \"\xff\"}\n".to_vec();
    bytes.extend_from_slice(b"{\"proxy_url\": \"http://b.example:1\"}");
    let file = parse_warm_bytes(WarmFormat::Jsonl, &bytes, Path::new("t.jsonl")).unwrap();
    assert_eq!(summary(&file), vec![row(RowLocation::Line(2), "http://b.example:1")]);
    assert_eq!(
        issues(&file),
        vec![(
            RowLocation::Line(1),
            IssueKind::Failed,
            "line is not valid UTF-8 (invalid byte at column 48)"
        )]
    );
}

#[test]
fn json_bom_not_utf8_and_empty_array() {
    let file = parse(WarmFormat::Json, "\u{feff}[{\"proxy_url\": \"http://a.example:1\"}]");
    assert_eq!(summary(&file), vec![row(RowLocation::Item(1), "http://a.example:1")]);
    assert_eq!(parse(WarmFormat::Json, "[]").rows, vec![]);

    let err = parse_warm_bytes(WarmFormat::Json, b"[\n{\"proxy_url\": \"\xfe\"}]", Path::new("x.json")).unwrap_err();
    assert!(
        matches!(
            err,
            WarmFileError::NotUtf8 {
                offset: 17,
                line: 2,
                ..
            }
        ),
        "{err:?}"
    );
    for (text, found) in [
        ("\"s\"", "string"),
        ("1", "number"),
        ("true", "boolean"),
        ("null", "null"),
    ] {
        let err = parse_warm_bytes(WarmFormat::Json, text.as_bytes(), Path::new("x.json")).unwrap_err();
        assert!(
            matches!(err, WarmFileError::NotArray { found: f, .. } if f == found),
            "{err:?}"
        );
    }
    let err = parse_warm_bytes(WarmFormat::Json, b"", Path::new("x.json")).unwrap_err();
    assert!(matches!(err, WarmFileError::Json { .. }), "{err:?}");
}

/// A directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("pw-cache-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The variant of a whole-file error, `ok` for none.
fn verdict<T>(result: &Result<T, WarmFileError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(WarmFileError::Unsupported { .. }) => "Unsupported",
        Err(WarmFileError::Io { .. }) => "Io",
        Err(WarmFileError::NotUtf8 { .. }) => "NotUtf8",
        Err(WarmFileError::Json { .. }) => "Json",
        Err(WarmFileError::NotArray { .. }) => "NotArray",
        Err(WarmFileError::CsvHeader { .. }) => "CsvHeader",
        Err(WarmFileError::TooLarge { .. }) => "TooLarge",
    }
}

#[test]
fn check_warm_file_fails_exactly_when_reading_does() {
    let dir = TempDir::new("check-warm-file");
    let bom = "\u{feff}";
    let files: [(&str, Vec<u8>, &str); 20] = [
        ("ok.csv", b"proxy_url\nhttp://a.example:1\n".to_vec(), "ok"),
        ("bom.csv", format!("{bom}proxy_url,x\n").into_bytes(), "ok"),
        // A quoted header name spanning lines, and rows that fail: the header is all that counts.
        ("quoted.csv", b"\"a\nb\",proxy_url\n\xff,\xfe\n".to_vec(), "ok"),
        ("bom_only.csv", bom.as_bytes().to_vec(), "CsvHeader"),
        ("empty.csv", Vec::new(), "CsvHeader"),
        ("short.csv", b"a".to_vec(), "CsvHeader"),
        ("no_url.csv", b"url,user\nhttp://a.example:1,x\n".to_vec(), "CsvHeader"),
        ("data.csv", b"http://u:p@a.example:1,u,p\n".to_vec(), "CsvHeader"),
        ("ok.json", b"[{\"proxy_url\": 1}, null]".to_vec(), "ok"),
        ("bom.json", format!("{bom}[]").into_bytes(), "ok"),
        (
            "object.json",
            b"{\"proxy_url\": \"http://a.example:1\"}".to_vec(),
            "NotArray",
        ),
        ("truncated.json", b"[{\"proxy_url\": ".to_vec(), "Json"),
        ("empty.json", Vec::new(), "Json"),
        ("latin1.json", b"[\"\xe9\"]".to_vec(), "NotUtf8"),
        ("garbage.jsonl", b"not json\n\xff\n[1]\n".to_vec(), "ok"),
        ("empty.jsonl", Vec::new(), "ok"),
        ("UPPER.CSV", b"proxy_url\n".to_vec(), "ok"),
        ("proxies.txt", b"proxy_url\n".to_vec(), "Unsupported"),
        ("no_extension", b"[]".to_vec(), "Unsupported"),
        ("ok.jsonl", b"{}\n".to_vec(), "ok"),
    ];
    let mut cases = Vec::new();
    for (name, bytes, want) in files {
        std::fs::write(dir.0.join(name), bytes).unwrap();
        cases.push((name.to_owned(), want));
    }
    // Not there, or a directory (which opens, then fails to read).
    for name in ["missing.csv", "missing.json", "missing.jsonl"] {
        cases.push((name.to_owned(), "Io"));
    }
    for name in ["dir.csv", "dir.json", "dir.jsonl"] {
        std::fs::create_dir(dir.0.join(name)).unwrap();
        cases.push((name.to_owned(), "Io"));
    }
    // Sparse files (no disk): a `.json` document over the limit is refused by its size; one at
    // the limit is read (NUL bytes: invalid JSON); a `.jsonl` file has no size limit.
    for (name, len, want) in [
        ("huge.json", MAX_WARM_JSON_BYTES + 1, "TooLarge"),
        ("at_limit.json", MAX_WARM_JSON_BYTES, "Json"),
        ("huge.jsonl", MAX_WARM_JSON_BYTES + 1, "ok"),
    ] {
        File::create(dir.0.join(name)).unwrap().set_len(len).unwrap();
        cases.push((name.to_owned(), want));
    }
    // A header row longer than the line limit is not held.
    let long_header = format!("proxy_url,{}\n", "x".repeat(MAX_LINE_BYTES));
    std::fs::write(dir.0.join("long_header.csv"), long_header).unwrap();
    cases.push(("long_header.csv".to_owned(), "CsvHeader"));
    for (name, want) in cases {
        let path = dir.0.join(&name);
        let checked = check_warm_file(&path);
        let read = read_warm_file(&path).map(|file| file.format);
        assert_eq!(verdict(&checked), want, "{name}: {checked:?}");
        assert_eq!(
            checked.map_err(|e| e.to_string()),
            read.map_err(|e| e.to_string()),
            "{name}: the check and the read disagree"
        );
    }
}

#[test]
fn csv_header_rules() {
    let file = parse(
        WarmFormat::Csv,
        " key , proxy_url ,Username\nk1,http://a.example:1,ignored\n\n\"k2\",\"http://b.example:2\"\n",
    );
    assert_eq!(
        summary(&file),
        vec![
            (
                RowLocation::Row { record: 1, line: 2 },
                "http://a.example:1".into(),
                None,
                None,
                None,
                s("k1")
            ),
            (
                RowLocation::Row { record: 2, line: 4 },
                "http://b.example:2".into(),
                None,
                None,
                None,
                s("k2")
            ),
        ]
    );

    let header_err = |text: &str| match parse_warm_bytes(WarmFormat::Csv, text.as_bytes(), Path::new("h.csv")) {
        Err(WarmFileError::CsvHeader { reason, .. }) => reason,
        other => panic!("{other:?}"),
    };
    assert!(header_err("").starts_with("no header row"));
    assert!(header_err("\u{feff}").starts_with("no header row"));
    assert_eq!(
        header_err("Proxy_URL,x\n"),
        "no `proxy_url` column (columns found: `Proxy_URL`, `x`)"
    );
    // A headerless file: its first line is data and may hold credentials; never shown.
    let reason = header_err("http://u:HuNtEr2@a.example:1,alice,HuNtEr2\n");
    assert!(reason.contains("looks like data"), "{reason}");
    assert!(!reason.contains("HuNtEr2") && !reason.contains("alice"), "{reason}");
    let reason = header_err("url,p@ss:w0rd!,\n");
    assert_eq!(
        reason,
        "no `proxy_url` column (columns found: `url`, (column 2: name not shown), (column 3 has no name))"
    );
}

#[test]
fn csv_invalid_utf8_record_fails_and_the_next_is_read() {
    let bytes =
        b"proxy_url,password,other\nhttp://a.example:1,\xff\xfe,x\nhttp://b.example:1,,\xff\nhttp://c.example:1\n";
    let file = parse_warm_bytes(WarmFormat::Csv, bytes, Path::new("u.csv")).unwrap();
    assert_eq!(
        summary(&file),
        vec![row(RowLocation::Row { record: 3, line: 4 }, "http://c.example:1")]
    );
    assert_eq!(
        issues(&file),
        vec![
            (
                RowLocation::Row { record: 1, line: 2 },
                IssueKind::Failed,
                "field `password` is not valid UTF-8"
            ),
            (
                RowLocation::Row { record: 2, line: 3 },
                IssueKind::Failed,
                "column 3 is not valid UTF-8"
            ),
        ]
    );
}

#[test]
fn csv_crlf_and_mask() {
    let file = parse(
        WarmFormat::Csv,
        "proxy_url,username,password\r\nhttp://a.example:1,***,***\r\nhttp://b.example:1,bob,\" *** \"\r\n",
    );
    assert_eq!(
        summary(&file),
        vec![
            row(RowLocation::Row { record: 1, line: 2 }, "http://a.example:1"),
            (
                RowLocation::Row { record: 2, line: 3 },
                "http://b.example:1".into(),
                s("bob"),
                None,
                None,
                None
            ),
        ]
    );
}

#[test]
fn csv_line_numbers_follow_physical_lines() {
    // Blank lines, CRLF and a quoted field spanning lines: each record's line is where its
    // first field starts.
    let text = "proxy_url,password\r\n\r\nhttp://a.example:1,\"x\r\ny\"\r\n\n\r\nhttp://b.example:1\nnope\r\n";
    let file = parse(WarmFormat::Csv, text);
    assert_eq!(
        summary(&file),
        vec![
            (
                RowLocation::Row { record: 1, line: 3 },
                "http://a.example:1".into(),
                None,
                s("x\r\ny"),
                None,
                None
            ),
            row(RowLocation::Row { record: 2, line: 7 }, "http://b.example:1"),
        ]
    );
    assert_eq!(
        issues(&file),
        vec![(
            RowLocation::Row { record: 3, line: 8 },
            IssueKind::Skipped,
            "`proxy_url` is not a valid proxy URL: relative URL without a base"
        )]
    );
}

// --- row rules ---------------------------------------------------------------------------

#[test]
fn value_types() {
    let r = one(r#"{"proxy_url": "http://a.example:1", "username": 1.5, "password": -3, "source": "  ", "key": 7}"#)
        .unwrap();
    assert_eq!(
        (cred(&r.username), cred(&r.password), r.source, r.key),
        (s("1.5"), s("-3"), None, s("7"))
    );
    for (field, value, found) in [
        ("password", "false", "a boolean"),
        ("source", "[]", "an array"),
        ("key", "{}", "an object"),
        ("password_encrypted", "true", "a boolean"),
        ("proxy_url", "true", "a boolean"),
    ] {
        let mut line = format!(r#"{{"{field}": {value}"#);
        if field != "proxy_url" {
            line.push_str(r#", "proxy_url": "http://a.example:1""#);
        }
        line.push('}');
        assert_eq!(
            one(&line).unwrap_err(),
            format!("field `{field}` is {found}; expected a string or a number")
        );
    }
    // Other fields are not read, so their types do not matter.
    assert!(one(r#"{"proxy_url": "http://a.example:1", "ttl_seconds": true, "x": {}}"#).is_ok());
}

#[test]
fn masked_credentials_are_absent() {
    let r = one(r#"{"proxy_url": "http://a.example:1", "username": "***", "password": " *** "}"#).unwrap();
    assert_eq!((r.username, r.password), (None, None));
    let r = one(r#"{"proxy_url": "http://***:***@a.example:1"}"#).unwrap();
    assert_eq!(
        (r.proxy_url.as_str(), r.username, r.password),
        ("http://a.example:1", None, None)
    );
    // "***" is no credential, so it does not conflict with the URL's.
    let r = one(r#"{"proxy_url": "http://u:p@a.example:1", "password": "***"}"#).unwrap();
    assert_eq!((cred(&r.username), cred(&r.password)), (s("u"), s("p")));
}

#[test]
fn encrypted_fields_decode_and_win() {
    let token = "gAAAAABk-_x=";
    let hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
    let line = format!(
        r#"{{"proxy_url": "http://a.example:1", "username": "plain", "username_encrypted": "{hex}", "password_encrypted": "{}"}}"#,
        hex.to_uppercase()
    );
    let r = one(&line).unwrap();
    assert_eq!(r.username, Some(WarmCredential::Token(token.to_owned())));
    assert_eq!(r.password, Some(WarmCredential::Token(token.to_owned())));
    assert_eq!(format!("{:?}", r.username), "Some(Token(<12 bytes>))");

    for (hex, reason) in [
        ("abc", "field `password_encrypted` is not valid hex"),
        ("zz", "field `password_encrypted` is not valid hex"),
        ("***", "field `password_encrypted` is not valid hex"),
        (
            "0a41",
            "field `password_encrypted` does not decode to a Fernet token (printable ASCII text)",
        ),
        (
            "c3bc",
            "field `password_encrypted` does not decode to a Fernet token (printable ASCII text)",
        ),
    ] {
        let line = format!(r#"{{"proxy_url": "http://a.example:1", "password_encrypted": "{hex}"}}"#);
        assert_eq!(one(&line).unwrap_err(), reason, "{hex}");
    }
    let r = one(r#"{"proxy_url": "http://a.example:1", "password_encrypted": " ", "password": "x"}"#).unwrap();
    assert_eq!(cred(&r.password), s("x"));
}

#[test]
fn proxy_url_accepted_forms() {
    for (input, stored) in [
        ("http://a.example:8080", "http://a.example:8080"),
        ("http://a.example", "http://a.example"),
        ("https://a.example/", "https://a.example/"),
        ("HTTP://A.example:1", "HTTP://A.example:1"),
        ("socks4://1.2.3.4:1080", "socks4://1.2.3.4:1080"),
        ("socks4a://a.example:1080", "socks4a://a.example:1080"),
        ("socks5h://a.example:1080/", "socks5h://a.example:1080/"),
        ("socks5://[::1]:1080", "socks5://[::1]:1080"),
        ("http://пример.рф:8080", "http://пример.рф:8080"),
        ("\u{3000} http://a.example:1 \n", "http://a.example:1"),
        ("http://@a.example:1", "http://a.example:1"),
    ] {
        assert_eq!(url_of(input).as_deref(), Ok(stored), "{input:?}");
    }
}

#[test]
fn proxy_url_refused_forms() {
    let invalid = "`proxy_url` is not a valid proxy URL";
    for (input, reason) in [
        (
            "ftp://a.example:21",
            "`proxy_url` scheme `ftp` is not a proxy scheme".to_owned(),
        ),
        (
            "a.example:8080",
            "`proxy_url` scheme `a.example` is not a proxy scheme".to_owned(),
        ),
        ("1.2.3.4:8080", format!("{invalid}: relative URL without a base")),
        (
            "socks5://a.example",
            "`proxy_url` has no port (scheme `socks5` has no default port)".to_owned(),
        ),
        ("socks5:///", "`proxy_url` has no host".to_owned()),
        ("socks5://:1080", format!("{invalid}: empty host")),
        ("http://:80", format!("{invalid}: empty host")),
        ("http://a.example:99999", format!("{invalid}: invalid port number")),
        ("http://a.example:1/x", "`proxy_url` has a path".to_owned()),
        ("http://a.example:1/?", "`proxy_url` has a query".to_owned()),
        ("http://a.example:1#f", "`proxy_url` has a fragment".to_owned()),
        ("http:a.example:1", "`proxy_url` must start with `http://`".to_owned()),
        ("http:/a.example:1", "`proxy_url` must start with `http://`".to_owned()),
        ("http://a.ex\tample:1", "`proxy_url` contains whitespace".to_owned()),
        ("http://a.example:1\\", "`proxy_url` contains whitespace".to_owned()),
    ] {
        let err = url_of(input).unwrap_err();
        assert!(err.starts_with(&reason), "{input:?}: {err}");
    }
}

#[test]
fn userinfo_is_moved_out_of_the_url() {
    let r = one(r#"{"proxy_url": "socks5://us%65r%40x:p%C3%A4ss%3A@[::1]:1080/", "source": "s"}"#).unwrap();
    assert_eq!(r.proxy_url, "socks5://[::1]:1080/");
    assert_eq!((cred(&r.username), cred(&r.password)), (s("user@x"), s("päss:")));
    // A literal '@' in the password: the userinfo ends at the last '@'.
    let r = one(r#"{"proxy_url": "http://u:p@ss@a.example:1"}"#).unwrap();
    assert_eq!(r.proxy_url, "http://a.example:1");
    assert_eq!((cred(&r.username), cred(&r.password)), (s("u"), s("p@ss")));
    // Only a username; only a password; non-ASCII is percent-encoded by the parser.
    let r = one(r#"{"proxy_url": "http://ü@a.example:1"}"#).unwrap();
    assert_eq!((cred(&r.username), cred(&r.password)), (s("ü"), None));
    let r = one(r#"{"proxy_url": "http://:pw@a.example:1"}"#).unwrap();
    assert_eq!((cred(&r.username), cred(&r.password)), (None, s("pw")));
    // An invalid % sequence stays as written.
    let r = one(r#"{"proxy_url": "http://u%zz:p%4@a.example:1"}"#).unwrap();
    assert_eq!((cred(&r.username), cred(&r.password)), (s("u%zz"), s("p%4")));

    assert_eq!(
        one(r#"{"proxy_url": "http://u%ff:p@a.example:1"}"#).unwrap_err(),
        "`proxy_url` userinfo is not valid UTF-8 once percent-decoded"
    );
    for other in [
        r#""username": "bob""#,
        r#""password": "x""#,
        r#""password_encrypted": "6141""#,
    ] {
        let line = format!(r#"{{"proxy_url": "http://u:p@a.example:1", {other}}}"#);
        assert_eq!(
            one(&line).unwrap_err(),
            "credentials given both in `proxy_url` and in `username`/`password`"
        );
    }
}

#[test]
fn credentials_never_shown() {
    let secret = "HuNtEr2";
    let text = [
        // Valid rows: credentials from fields and from the URL.
        format!(r#"{{"proxy_url": "http://a.example:1", "username": "{secret}u", "password": "{secret}p"}}"#),
        format!(r#"{{"proxy_url": "http://{secret}x:{secret}y@a.example:1"}}"#),
        // Refused rows whose URL holds credentials: every kind of URL problem.
        format!(r#"{{"proxy_url": "socks5://u:{secret}@a.example"}}"#),
        format!(r#"{{"proxy_url": "http://u:{secret}@a.example:99999"}}"#),
        format!(r#"{{"proxy_url": "ftp://u:{secret}@a.example:1"}}"#),
        format!(r#"{{"proxy_url": "http://u:{secret}@a.example:1/path?q#f"}}"#),
        format!(r#"{{"proxy_url": "http://u:{secret}@a.example:1", "password": "{secret}"}}"#),
        format!(r#"{{"proxy_url": "http://a.example:1", "password": true, "username": "{secret}"}}"#),
        format!(r#"{{"proxy_url": "http://u:{secret}%ff@a.example:1"}}"#),
        format!(r#"{{"proxy_url": "http://u:{secret} @a.example:1"}}"#),
        // Unreadable lines.
        format!(r#"{{"proxy_url": "http://a.example:1", "password": "{secret}"#),
        format!(r#"{{"password": "{secret}\q"}}"#),
    ]
    .join("\n");
    let file = parse(WarmFormat::Jsonl, &text);
    assert_eq!((file.rows.len(), file.skipped(), file.failed()), (2, 8, 2), "{file:?}");
    assert_hidden(&file, &[secret]);
    let r = &file.rows[1];
    assert_eq!(r.proxy_url, "http://a.example:1");
    assert_eq!(cred(&r.password), Some(format!("{secret}y")));
}

// --- reading a row at a time ---------------------------------------------------------------

/// Gives its bytes a few at a time (1 to `max`), and `Interrupted` now and then, then fails with
/// `fail` (if any) instead of ending.
struct Trickle<'a> {
    bytes: &'a [u8],
    state: u64,
    max: u64,
    fail: Option<io::ErrorKind>,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.state = self
            .state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let roll = self.state >> 33;
        if roll.is_multiple_of(11) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        if self.bytes.is_empty()
            && let Some(kind) = self.fail
        {
            return Err(kind.into());
        }
        let n = usize::try_from(1 + roll % self.max)
            .unwrap()
            .min(buf.len())
            .min(self.bytes.len());
        let (now, rest) = self.bytes.split_at(n);
        buf[..n].copy_from_slice(now);
        self.bytes = rest;
        Ok(n)
    }
}

/// Every row and issue of a reader, or its first error.
fn drain<R: Read>(reader: Result<WarmReader<R>, WarmFileError>) -> Result<WarmFile, String> {
    let reader = reader.map_err(|e| e.to_string())?;
    let mut file = WarmFile {
        format: reader.format(),
        rows: Vec::new(),
        issues: Vec::new(),
    };
    for item in reader {
        match item.map_err(|e| e.to_string())? {
            WarmItem::Row(row) => file.rows.push(row),
            WarmItem::Issue(issue) => file.issues.push(issue),
        }
    }
    Ok(file)
}

#[test]
fn reading_a_few_bytes_at_a_time_gives_the_same_rows() {
    let bom = "\u{feff}";
    let mut inputs: Vec<(WarmFormat, Vec<u8>)> = Vec::new();
    for name in [
        "warm_input.json",
        "warm_input.jsonl",
        "warm_input.csv",
        "warm_bom.csv",
        "warm_abort.json",
        "warm_abort.jsonl",
        "warm_invalid.json",
        "warm_not_array.json",
        "warm_no_url_column.csv",
    ] {
        let path = fixture(name);
        inputs.push((WarmFormat::from_path(&path).unwrap(), std::fs::read(&path).unwrap()));
    }
    for (format, text) in [
        // Byte order marks: one is skipped; a CSV file's header and first record may have one more.
        (
            WarmFormat::Csv,
            format!("{bom}{bom}proxy_url\r\n{bom}http://a.example:1\r\n"),
        ),
        (
            WarmFormat::Csv,
            format!("proxy_url\r{bom}http://a.example:1\n\r\n\"x\r\ny\"\r\n"),
        ),
        (WarmFormat::Csv, bom.to_owned()),
        (WarmFormat::Csv, format!("{bom}{bom}")),
        (
            WarmFormat::Jsonl,
            format!("{bom}{bom}{{}}\r\n\r\n{{\"proxy_url\": \"http://a.example:1\"}}"),
        ),
        (WarmFormat::Jsonl, "\r\r\n{}\r".to_owned()),
        (
            WarmFormat::Json,
            format!("{bom}[{{\"proxy_url\": \"http://a.example:1\"}}, 1]"),
        ),
    ] {
        inputs.push((format, text.into_bytes()));
    }
    for (format, bytes) in inputs {
        let whole = parse_warm_bytes(format, &bytes, Path::new("t")).map_err(|e| e.to_string());
        for max in [1, 2, 3, 5, 4096] {
            let trickle = Trickle {
                bytes: &bytes,
                state: max,
                max,
                fail: None,
            };
            let read = drain(WarmReader::from_reader(format, trickle, Path::new("t")));
            assert_eq!(read, whole, "{format} read {max} bytes at a time: {bytes:?}");
        }
    }
}

#[test]
fn lines_and_records_at_the_line_limit() {
    // JSONL: the limit counts a line without its `\n` and one `\r` before it.
    let line = |len: usize| {
        let mut line = br#"{"proxy_url": "http://a.example:1", "x": ""#.to_vec();
        line.resize(len - 2, b'x');
        line.extend_from_slice(b"\"}");
        line
    };
    // `None` for an ending: the line ends the file.
    for (len, ending, long) in [
        (MAX_LINE_BYTES, Some(&b"\r\n"[..]), None),
        (MAX_LINE_BYTES, None, None),
        (MAX_LINE_BYTES + 1, Some(b"\n"), Some(MAX_LINE_BYTES + 1)),
        (MAX_LINE_BYTES + 1, Some(b"\r\n"), Some(MAX_LINE_BYTES + 1)),
        (MAX_LINE_BYTES + 1, Some(b"\r\r\n"), Some(MAX_LINE_BYTES + 2)),
        (MAX_LINE_BYTES + 1, None, Some(MAX_LINE_BYTES + 1)),
        (3 * MAX_LINE_BYTES + 7, Some(b"\r\n"), Some(3 * MAX_LINE_BYTES + 7)),
        (3 * MAX_LINE_BYTES + 7, None, Some(3 * MAX_LINE_BYTES + 7)),
    ] {
        let mut bytes = line(len);
        let mut rows = Vec::new();
        if let Some(ending) = ending {
            bytes.extend_from_slice(ending);
            bytes.extend_from_slice(b"{\"proxy_url\": \"http://b.example:1\"}\n");
            rows.push(row(RowLocation::Line(2), "http://b.example:1"));
        }
        let file = parse_warm_bytes(WarmFormat::Jsonl, &bytes, Path::new("t.jsonl")).unwrap();
        match long {
            None => {
                assert_eq!(file.rows.len(), 1 + rows.len(), "{len}");
                assert!(file.issues.is_empty(), "{len}: {:?}", file.issues);
            }
            Some(long) => {
                let reason = too_long("line", long);
                assert_eq!(
                    issues(&file),
                    vec![(RowLocation::Line(1), IssueKind::Failed, reason.as_str())],
                    "{len} {ending:?}"
                );
                assert_eq!(summary(&file), rows, "{len} {ending:?}");
            }
        }
    }
    // CSV: the limit counts a record's fields (without quotes and separators); a record whose
    // fields fill the buffer exactly is already read past.
    for (fields, long) in [
        (MAX_LINE_BYTES - 1, false),
        (MAX_LINE_BYTES, true),
        (MAX_LINE_BYTES + 1, true),
    ] {
        let mut bytes = b"proxy_url,x\nhttp://a.example:1,\"".to_vec();
        bytes.resize(bytes.len() + fields - "http://a.example:1".len(), b'\n');
        bytes.extend_from_slice(b"\"\r\nhttp://b.example:1\r\n");
        let file = parse_warm_bytes(WarmFormat::Csv, &bytes, Path::new("t.csv")).unwrap();
        let second = RowLocation::Row {
            record: 2,
            line: 3 + u64::try_from(fields - "http://a.example:1".len()).unwrap(),
        };
        assert_eq!(file.rows.last().map(|r| r.location), Some(second), "{fields}");
        assert_eq!(file.issues.len(), usize::from(long), "{fields}");
    }
}

#[test]
fn a_json_document_growing_past_the_limit_is_read_no_further() {
    // No size to look at: a reader of more than the limit is read up to one byte past it.
    let endless = io::repeat(b' ').take(MAX_WARM_JSON_BYTES + 4096);
    let err = WarmReader::from_reader(WarmFormat::Json, endless, Path::new("grows.json")).unwrap_err();
    assert!(
        matches!(err, WarmFileError::TooLarge { len, limit, .. } if len == limit + 1 && limit == MAX_WARM_JSON_BYTES),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("grows.json: the JSON warm file is 67108865 bytes long"),
        "{err}"
    );
    // Bytes over the limit are refused by their length before they are parsed.
    let bytes = vec![b' '; usize::try_from(MAX_WARM_JSON_BYTES).unwrap() + 1];
    let err = parse_warm_bytes(WarmFormat::Json, &bytes, Path::new("big.json")).unwrap_err();
    assert!(
        matches!(err, WarmFileError::TooLarge { len, .. } if len == MAX_WARM_JSON_BYTES + 1),
        "{err:?}"
    );
}

#[test]
fn a_read_failing_midway_is_an_io_error_after_the_rows_before_it() {
    for (format, text) in [
        (
            WarmFormat::Jsonl,
            "{\"proxy_url\": \"http://a.example:1\"}\n{\"proxy_url\": \"http://b.exa",
        ),
        (WarmFormat::Csv, "proxy_url\nhttp://a.example:1\nhttp://b.exa"),
    ] {
        let failing = Trickle {
            bytes: text.as_bytes(),
            state: 7,
            max: 3,
            fail: Some(io::ErrorKind::ConnectionReset),
        };
        let mut reader = WarmReader::from_reader(format, failing, Path::new("cut")).unwrap();
        let first = reader.next().unwrap().unwrap();
        assert!(
            matches!(&first, WarmItem::Row(row) if row.proxy_url == "http://a.example:1"),
            "{first:?}"
        );
        let err = reader.next().unwrap().unwrap_err();
        assert!(
            matches!(&err, WarmFileError::Io { source, .. } if source.kind() == io::ErrorKind::ConnectionReset),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("cut: cannot read the warm file"), "{err}");
        assert!(reader.next().is_none(), "nothing after the error");
        assert_eq!(reader.bytes_read(), u64::try_from(text.len()).unwrap());
    }
}

#[test]
fn bytes_read_follow_the_file() {
    let dir = TempDir::new("bytes-read");
    let path = dir.0.join("w.jsonl");
    let line = "{\"proxy_url\": \"http://a.example:1\"}\n";
    std::fs::write(&path, line.repeat(5000)).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let mut reader = WarmReader::open(&path).unwrap();
    assert_eq!((reader.format(), reader.file_len()), (WarmFormat::Jsonl, Some(size)));
    let mut seen = Vec::new();
    while let Some(item) = reader.next() {
        assert!(matches!(item, Ok(WarmItem::Row(_))));
        seen.push(reader.bytes_read());
    }
    assert_eq!(seen.len(), 5000);
    assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    // Read through a buffer: ahead of the rows, never all at once.
    assert!(seen[0] < size && seen[0] >= 1, "{}", seen[0]);
    assert_eq!(seen.last(), Some(&size));
}
