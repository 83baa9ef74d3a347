//! No key configured: the key file makes credentials survive restarts and be shared by the
//! processes of one cache directory (proxywhirl makes a fresh key per process instead).

use std::path::{Path, PathBuf};

use pw_cache::Secret;
use pw_cache::crypto::{DEFAULT_KEY_FILE_NAME, EnvKeys, KeyOrigin, KeyRing, Token};
use pw_cache_tests::child_process::spawn_self;

const CHILD_VAR: &str = "PW_CACHE_TEST_KEYFILE_CHILD";
const TEST_NAME: &str = "separate_processes_share_one_key_file";

fn open(dir: &Path) -> KeyRing {
    KeyRing::resolve(None, &EnvKeys::default(), &dir.join(DEFAULT_KEY_FILE_NAME)).unwrap()
}

/// In a child process: `encrypt DIR ID` writes a token of `secret-ID` to DIR/token-ID;
/// `decrypt DIR FILE EXPECTED` exits 0 only if FILE's token decrypts to EXPECTED.
fn child(spec: &str) {
    let args: Vec<&str> = spec.split('|').collect();
    let ring = open(Path::new(args[1]));
    match args[0] {
        "encrypt" => {
            let token = ring.encrypt(&Secret::new(format!("secret-{}", args[2])));
            std::fs::write(Path::new(args[1]).join(format!("token-{}", args[2])), token.as_bytes()).unwrap();
        }
        "decrypt" => {
            let token = Token::from_bytes(&std::fs::read(args[2]).unwrap()).unwrap();
            assert_eq!(ring.decrypt(&token).unwrap().expose_secret(), args[3]);
        }
        other => panic!("unknown child command {other}"),
    }
}

#[test]
fn separate_processes_share_one_key_file() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        return child(&spec);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| -> PathBuf { dir.path().join(name) };

    // Two processes race to create the key file; each encrypts with what it got.
    let children: Vec<_> = (1..=2)
        .map(|id| {
            spawn_self(
                module_path!(),
                TEST_NAME,
                CHILD_VAR,
                format!("encrypt|{}|{id}", dir.path().display()),
            )
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    // A third open (this process) reads both: one key file, one key.
    let ring = open(dir.path());
    assert!(matches!(ring.origin(), KeyOrigin::KeyFile { created: false, .. }));
    assert_eq!(ring.len(), 1);
    for id in 1..=2 {
        let token = Token::from_bytes(&std::fs::read(path(&format!("token-{id}"))).unwrap()).unwrap();
        assert_eq!(ring.decrypt(&token).unwrap().expose_secret(), format!("secret-{id}"));
    }
    // And a new process reads what this one writes.
    std::fs::write(
        path("token-parent"),
        ring.encrypt(&Secret::new("from-parent")).as_bytes(),
    )
    .unwrap();
    let spec = format!(
        "decrypt|{}|{}|from-parent",
        dir.path().display(),
        path("token-parent").display()
    );
    assert!(
        spawn_self(module_path!(), TEST_NAME, CHILD_VAR, spec)
            .wait()
            .unwrap()
            .success()
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path(DEFAULT_KEY_FILE_NAME))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn concurrent_opens_in_one_process_agree() {
    let dir = tempfile::tempdir().unwrap();
    let rings: Vec<KeyRing> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| open(dir.path()))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = rings
        .iter()
        .filter(|r| matches!(r.origin(), KeyOrigin::KeyFile { created: true, .. }))
        .count();
    assert_eq!(created, 1, "exactly one open creates the file");
    let token = rings[0].encrypt(&Secret::new("shared"));
    for ring in &rings {
        assert_eq!(ring.current(), rings[0].current());
        assert_eq!(ring.decrypt(&token).unwrap().expose_secret(), "shared");
    }
}
